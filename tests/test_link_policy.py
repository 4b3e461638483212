"""Link policy (gateway/link_policy.py): the table of links an agency may and may not send,
then the same rules through POST /v1/messages, POST /v1/batches and the domains admin route."""

from __future__ import annotations

from typing import Any

import idna
import pytest

from gateway.errors import Problem
from gateway.link_policy import LinkPolicy, check_notice_has_no_link, find_links, skeleton
from gateway.services import Services
from tests.conftest import auth, make_key
from tests.test_messages_api import MSISDN, _agency

DOMAINS = ("tax.gov.ir", "sanjesh.org", idna.encode("مالیات.ایران").decode())
CYRILLIC_O = "\u043e"
PUNY_LOOKALIKE = idna.encode(f"tax.g{CYRILLIC_O}v.ir", uts46=True).decode()

CASES: list[tuple[str, str, str | None]] = [
    # (what, text, expected problem code or None when allowed)
    ("allowed with scheme", "پرداخت: https://tax.gov.ir/pay?id=12 مهلت تا فردا.", None),
    ("allowed, bare", "به tax.gov.ir مراجعه کنید", None),
    ("allowed, www form", "نتایج در www.sanjesh.org/results، منتشر شد", None),
    ("subdomain", "https://my.tax.gov.ir/login", None),
    ("upper case", "HTTPS://TAX.GOV.IR/", None),
    ("trailing Persian punctuation", "«https://tax.gov.ir/x»؛ سپاس", None),
    ("registered IDN, Unicode", "https://مالیات.ایران/قبض", None),
    ("registered IDN, punycode", f"https://{DOMAINS[2]}/x", None),
    ("e-mail at a registered domain", "پاسخ به info@tax.gov.ir", None),
    ("no link at all", "قبض شما ۱۲۰۰۰ ریال است. ساعت ۱۰.۳۰ مراجعه کنید. نسخه 1.2.3.4.5", None),
    ("other domain", "https://evil.com/pay", "link_domain_not_registered"),
    ("suffix trick", "https://tax.gov.ir.evil.com/", "link_domain_not_registered"),
    ("glued suffix", "https://eviltax.gov.ir/", "link_domain_not_registered"),
    ("full-width dot", "evil\uff0ecom/pay", "link_domain_not_registered"),
    ("ideographic dot", "evil\u3002com", "link_domain_not_registered"),
    ("full-width letters", "\uff57\uff57\uff57.evil.com", "link_domain_not_registered"),
    ("zero-width space inside", "https://evil\u200b.com", "link_domain_not_registered"),
    ("look-alike Cyrillic o", f"https://tax.g{CYRILLIC_O}v.ir/", "link_lookalike_domain"),
    ("look-alike punycode", f"https://{PUNY_LOOKALIKE}/", "link_lookalike_domain"),
    ("look-alike digit zero", "https://tax.g0v.ir/", "link_lookalike_domain"),
    ("look-alike rn for m", "sanjesh.org", None),
    ("mixed script label", "https://p\u0430yp\u0430l.com", "link_lookalike_domain"),
    ("invalid punycode", "https://xn--invalid--.com/", "link_invalid_host"),
    ("shortener", "https://bit.ly/3abc", "link_shortener"),
    ("shortener bare", "yun.ir/x1", "link_shortener"),
    ("shortener subdomain", "http://www.tinyurl.com/x", "link_shortener"),
    ("IPv4 dotted", "http://192.168.1.10/login", "link_ip_address"),
    ("IPv4 bare with port", "برو به 10.0.0.1:8080/pay", "link_ip_address"),
    ("IPv4 decimal", "http://3232235786/", "link_ip_address"),
    ("IPv4 hex", "http://0xC0A8010A/", "link_ip_address"),
    ("IPv4 octal", "http://0300.0250.01.012/", "link_ip_address"),
    ("IPv4 mixed short form", "http://127.1/", "link_ip_address"),
    ("IPv6", "http://[2001:db8::1]:443/", "link_ip_address"),
    ("userinfo trick", "https://tax.gov.ir@evil.com/pay", "link_userinfo"),
    ("userinfo trick, bare", "tax.gov.ir@evil.com", "link_userinfo"),
    ("userinfo with password", "https://user:pw@tax.gov.ir/", "link_userinfo"),
    ("userinfo hidden by zero width", "https://tax.gov.ir\u200b@evil.com", "link_userinfo"),
    ("one bad among good", "tax.gov.ir و evil.ir", "link_domain_not_registered"),
    ("broken scheme", "http:/evil.com/x", "link_domain_not_registered"),
    ("backslash authority", "https://evil.com\\@tax.gov.ir/", "link_domain_not_registered"),
    ("domain in a registered path", "https://tax.gov.ir/r/evil.com", None),
]


@pytest.mark.parametrize(("what", "text", "code"), CASES, ids=[c[0] for c in CASES])
def test_link_table(what: str, text: str, code: str | None) -> None:
    policy = LinkPolicy()
    if code is None:
        policy.check(text, DOMAINS)
    else:
        with pytest.raises(Problem) as exc:
            policy.check(text, DOMAINS)
        assert exc.value.code == code, (what, exc.value.detail)
        assert "host" in exc.value.extra


def test_links_are_found_in_persian_text() -> None:
    hosts = [f.host for f in find_links("سلام،https://a.tax.gov.ir/x؟ و (www.sanjesh.org).")]
    assert hosts == ["a.tax.gov.ir", "www.sanjesh.org"]


def test_skeleton_folds_confusables() -> None:
    assert skeleton(f"g{CYRILLIC_O}v.ir") == skeleton("gov.ir") == skeleton("g0v.ir")
    assert skeleton("tax.gov.ir") != skeleton("tux.gov.ir")


def test_shortener_list_is_configurable() -> None:
    LinkPolicy(shorteners=()).check("https://bit.ly/x", ("bit.ly",))
    with pytest.raises(Problem) as exc:
        LinkPolicy(shorteners=("go.example.ir",)).check("go.example.ir/a", ("example.ir",))
    assert exc.value.code == "link_shortener"


@pytest.mark.parametrize(
    ("template", "shaped"),
    [
        ("https://{host}/pay", True),
        ("به {name}.ir سر بزنید", True),
        ("evil.{tld}", True),
        ("1.2.3.{n}", True),
        ("{user}@evil.com", True),
        ("{name} عزیز، قسط شما {amount} ریال است.", False),
        ("مهلت {date}: پرداخت در tax.gov.ir", True),
    ],
)
def test_templates_that_let_parameters_complete_a_link(template: str, shaped: bool) -> None:
    from gateway.link_policy import template_shapes_links

    assert template_shapes_links(template) is shaped


def test_parameters_that_may_carry_a_link() -> None:
    from gateway.link_policy import may_carry_link

    assert not may_carry_link("علی رضایی")
    assert not may_carry_link("1200000")
    for value in ("evil.com", "evil\uff0ecom", "evil\u3002com", "a@b", "http:", "x\uff1a"):
        assert may_carry_link(value), value


def test_letter_notices_never_carry_links() -> None:
    check_notice_has_no_link("نامه‌ای در کارت‌پوشه شما دارید.")
    with pytest.raises(Problem) as exc:
        check_notice_has_no_link("نامه‌ای دارید: tax.gov.ir/letters")
    assert exc.value.code == "link_in_notice"


async def test_messages_api_applies_link_policy(services: Services, client: Any) -> None:
    a = await _agency(services, client, link_domains=["tax.gov.ir"])
    status, body = await a.send({"to": MSISDN, "text": "قبض: https://my.tax.gov.ir/p/1"})
    assert status == 202, body
    for text, code in [
        ("قبض: https://tax.gov.ir@evil.com/p", "link_userinfo"),
        (f"https://tax.g{CYRILLIC_O}v.ir/p", "link_lookalike_domain"),
        ("https://bit.ly/x", "link_shortener"),
        ("http://0x7f000001/", "link_ip_address"),
        ("evil\uff0ecom", "link_domain_not_registered"),
    ]:
        status, body = await a.send({"to": MSISDN, "text": text})
        assert status == 422, (text, body)
        assert body["code"] == code
        assert body["title_fa"]
    assert await a.messages() == 1  # nothing refused was written
    # Each refusal is a security event in the audit log: host and code, never the text.
    entries = await services.store.audit.list(
        action="sms.link_refused", since=None, limit=10, before_id=None
    )
    assert [e.outcome for e in reversed(entries)] == [
        "link_userinfo",
        "link_lookalike_domain",
        "link_shortener",
        "link_ip_address",
        "link_domain_not_registered",
    ]
    assert entries[-1].detail == {"host": "evil.com", "count": 1}
    assert entries[0].actor == f"key:{a.key.key.key_id}"


async def test_batches_api_applies_link_policy(services: Services, client: Any) -> None:
    a = await _agency(services, client, link_domains=["tax.gov.ir"])
    # A link in the template refuses the whole batch.
    resp = await a.client.post(
        "/v1/batches",
        json={"template": "https://evil.com/{n}", "recipients": [{"to": MSISDN, "params": {}}]},
        headers=a.headers(),
    )
    assert resp.status == 422
    assert (await resp.json(content_type=None))["code"] == "link_domain_not_registered"
    # Parameters that complete a link are checked per recipient.
    resp = await a.client.post(
        "/v1/batches",
        json={
            "template": "پرداخت در https://{host}/pay",
            "recipients": [
                {"to": MSISDN, "params": {"host": "tax.gov.ir"}},
                {"to": "+989121234568", "params": {"host": "bit.ly"}},
                {"to": "+989121234569", "params": {"host": "tax.gov.ir@evil.com"}},
            ],
        },
        headers=a.headers(),
    )
    got = await resp.json(content_type=None)
    assert resp.status == 202, got
    assert got["accepted"] == 1
    assert [(r["index"], r["code"]) for r in got["rejected"]] == [
        (1, "link_shortener"),
        (2, "link_userinfo"),
    ]
    # A template without link syntax: a parameter that is itself a link is still caught.
    resp = await a.client.post(
        "/v1/batches",
        json={
            "template": "{name} عزیز، پیام ما را ببینید",
            "recipients": [
                {"to": MSISDN, "params": {"name": "علی"}},
                {"to": "+989121234568", "params": {"name": "evil\uff0ecom"}},
            ],
        },
        headers=a.headers(),
    )
    got = await resp.json(content_type=None)
    assert resp.status == 202, got
    assert [(r["index"], r["code"]) for r in got["rejected"]] == [(1, "link_domain_not_registered")]
    entries = await services.store.audit.list(
        action="sms.link_refused", since=None, limit=10, before_id=None
    )
    assert sorted(e.outcome for e in entries) == [
        "link_domain_not_registered",
        "link_domain_not_registered",
        "link_shortener",
        "link_userinfo",
    ]


async def test_domains_admin_route(services: Services, client: Any, admin_token: str) -> None:
    a = await _agency(services, client, link_domains=["tax.gov.ir"])
    url = f"/admin/v1/agencies/{a.id}/domains"
    resp = await client.put(
        url, json={"domains": ["Sanjesh.ORG", "مالیات.ایران"]}, headers=auth(admin_token)
    )
    assert resp.status == 200
    assert (await resp.json())["domains"] == sorted(["sanjesh.org", DOMAINS[2]])
    resp = await client.get(url, headers=auth(admin_token))
    assert (await resp.json())["domains"] == sorted(["sanjesh.org", DOMAINS[2]])
    for bad in (["https://x.ir/"], ["1.2.3.4"], ["nodot"]):
        resp = await client.put(url, json={"domains": bad}, headers=auth(admin_token))
        assert resp.status == 422, bad
    entries = await services.store.audit.list(
        action="agency.set_domains", since=None, limit=10, before_id=None
    )
    assert len(entries) == 1
    assert entries[0].detail == {
        "before": ["tax.gov.ir"],
        "after": sorted(["sanjesh.org", DOMAINS[2]]),
    }
    # The new domains apply to the next principal loaded (a fresh key is not in the cache).
    a.key = await make_key(services, a.id)
    status, body = await a.send({"to": MSISDN, "text": "https://tax.gov.ir/x"})
    assert status == 422
    assert body["code"] == "link_domain_not_registered"
    status, body = await a.send({"to": MSISDN, "text": "https://www.sanjesh.org/x"})
    assert status == 202, body
