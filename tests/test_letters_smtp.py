"""SMTP ingestion over real TCP with STARTTLS: office automation sends letters with smtplib and
with swaks (Debian's SMTP test tool); refusals with their codes: 530 unauthenticated, 535 bad
password, 550 invalid recipient, 552 too large, 553 foreign From, 554 refused content."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import re
import smtplib
import ssl
import subprocess
import uuid
from collections.abc import AsyncIterator
from email import policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from prometheus_client import REGISTRY

from adapters.kartpooshe.smtp_ingest import start_smtp
from gateway.api.app import build_app
from gateway.config import Config, load_config
from gateway.letters.tracking_numbers import parse_tracking
from gateway.numbering import Request
from gateway.sealing import Sealer
from gateway.services import Services, build_services
from gateway.store import Store
from tests.conftest import auth, make_agency
from tests.letters_harness import (
    COMPANY,
    EXE,
    PDF,
    PERSON,
    PNG,
    ensure_swaks_with_tls,
    letters_env,
)

DOMAIN = "ebox.test.ir"
OA_FROM = "dabirkhane@tax.gov.ir"


class Smtp:
    def __init__(self, svc: Services, port: int, agency_id: uuid.UUID, user: str, password: str):
        self.svc, self.port, self.agency_id, self.user, self.password = (
            svc,
            port,
            agency_id,
            user,
            password,
        )

    def connect(self, *, tls: bool = True, login: bool = True) -> smtplib.SMTP:
        s = smtplib.SMTP("127.0.0.1", self.port, timeout=30)
        s.ehlo("oa.tax.gov.ir")
        if tls:
            ctx = ssl.create_default_context()
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
            s.starttls(context=ctx)
            s.ehlo("oa.tax.gov.ir")
        if login:
            s.login(self.user, self.password)
        return s


def mail(
    to: list[str],
    *,
    sender: str = OA_FROM,
    files: list[tuple[str, str, bytes]] | None = None,
    **headers: str,
) -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = ", ".join(to)
    msg["Subject"] = "ابلاغیه شماره ۱۲۳/۴۵"
    msg["Message-ID"] = f"<oa-{uuid.uuid4().hex}@tax.gov.ir>"
    for k, v in headers.items():
        msg[k.replace("_", "-")] = v
    msg.set_content("متن ابلاغیه رسمی؛ پیوست را ببینید.")
    for name, ctype, data in files or []:
        main, _, sub = ctype.partition("/")
        msg.add_attachment(data, maintype=main, subtype=sub, filename=name)
    return msg


def send_raw(
    s: smtplib.SMTP, msg: EmailMessage, rcpts: list[str], mail_from: str = OA_FROM
) -> tuple[int, str]:
    code, text = s.mail(mail_from)
    if code != 250:
        return code, text.decode()
    for r in rcpts:
        code, text = s.rcpt(r)
        if code != 250:
            return code, text.decode()
    code, text = s.data(msg.as_bytes(policy=policy.SMTP))
    return code, text.decode()


@pytest.fixture
async def smtp(
    config: Config,
    pool: asyncpg.Pool,
    sealer: Sealer,
    tmp_path: Path,
    aiohttp_client: Any,
    admin_token: str,
) -> AsyncIterator[Smtp]:
    cfg = load_config(
        None,
        env=letters_env(
            tmp_path,
            {
                "PAYAM_DATABASE_URL": config.database.url,
                "PAYAM_SECURITY_MASTER_KEY_FILE": config.security.master_key_file,
            },
        ),
    )
    svc = build_services(cfg, Store(pool), sealer)
    client = await aiohttp_client(build_app(svc))
    agency_id = await make_agency(svc)
    agency = await svc.agencies.get(agency_id)
    await svc.numbering.allocate(agency, Request("shortcode", "404012"), actor="t")
    base = f"/admin/v1/agencies/{agency_id}/letters"
    resp = await client.patch(
        f"{base}/settings",
        json={"from_addresses": [OA_FROM.upper()], "office_mailbox": "inbox@tax.gov.ir"},
        headers=auth(admin_token),
    )
    assert resp.status == 200, await resp.text()
    assert (await resp.json())["settings"]["from_addresses"] == [OA_FROM]
    resp = await client.post(
        f"{base}/smtp-credentials", json={"username": "oa.tax"}, headers=auth(admin_token)
    )
    assert resp.status == 201
    cred = await resp.json()
    resp = await client.post(
        f"{base}/smtp-credentials", json={"username": "oa.tax"}, headers=auth(admin_token)
    )
    assert (await resp.json())["code"] == "smtp_username_taken"
    stored = await pool.fetchval("SELECT password_hash FROM letter_smtp_credentials")
    assert cred["password"] not in stored
    assert stored.startswith("scrypt$")
    server = await start_smtp(svc, port=0)
    port = server.sockets[0].getsockname()[1]
    yield Smtp(svc, port, agency_id, cred["username"], cred["password"])
    server.close()
    await server.wait_closed()


def rejections(code: str) -> float:
    return REGISTRY.get_sample_value("payam_letters_smtp_rejections_total", {"reason": code}) or 0.0


async def test_smtplib_letter_with_attachments_to_a_person_and_a_company(
    smtp: Smtp, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    msg = mail(
        [f"{PERSON}@{DOMAIN}", f"{COMPANY}@{DOMAIN}"],
        files=[("برگ.pdf", "application/pdf", PDF), ("scan.png", "image/png", PNG)],
        X_Payam_Reply_Allowed="no",
        X_Payam_Deemed_Delivery="after_days=7",
    )

    def go() -> tuple[int, str]:
        with smtp.connect() as s:
            return send_raw(s, msg, [f"{PERSON}@{DOMAIN}", f"{COMPANY}@{DOMAIN.upper()}"])

    sessions = REGISTRY.get_sample_value("payam_letters_smtp_sessions_total") or 0.0
    code, text = await asyncio.to_thread(go)
    assert code == 250, text
    # One session, though STARTTLS makes aiosmtpd see the connection twice.
    assert REGISTRY.get_sample_value("payam_letters_smtp_sessions_total") == sessions + 1
    numbers = re.findall(r"KP-\d{4}-\d{4}-\d{4}", text)
    assert len(numbers) == 2
    assert all(parse_tracking(n) == n for n in numbers)
    rows = [
        dataclasses.asdict(letter)
        for letter in sorted(
            [
                await smtp.svc.store.letters.by_tracking(smtp.agency_id, n)  # type: ignore[misc]
                for n in numbers
            ],
            key=lambda x: x.recipient_kind if x else "",
            reverse=True,
        )
    ]
    assert [(r["recipient_kind"], r["recipient_id"]) for r in rows] == [
        ("person", PERSON),
        ("company", COMPANY),
    ]
    for r in rows:
        assert r["source"] == "smtp"
        assert r["agency_id"] == smtp.agency_id
        assert r["subject"] == "ابلاغیه شماره ۱۲۳/۴۵"
        assert "متن ابلاغیه رسمی" in r["body"]
        assert r["mail_message_id"] == msg["Message-ID"]
        assert r["reply_allowed"] is False
        assert r["deemed_days"] == 7
        files = await smtp.svc.store.letters.attachments(r["id"])
        assert [(f.name, f.content_type, f.data) for f in files] == [
            ("برگ.pdf", "application/pdf", PDF),
            ("scan.png", "image/png", PNG),
        ]
    # Privacy: the session's national codes and legal IDs never reach the logs.
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert PERSON not in logged
    assert COMPANY not in logged


@pytest.mark.parametrize(
    ("case", "code", "reason"),
    [
        ("no_tls", 530, "STARTTLS"),
        ("no_auth", 530, "Authentication required"),
        ("bad_password", 535, ""),
        ("bad_checksum", 550, "check digit"),
        ("foreign_domain", 550, "not an e-box address"),
        ("foreign_envelope_from", 553, "not a From address"),
        ("foreign_header_from", 553, "not an address this agency registered"),
        ("too_large", 552, "at most 4096 bytes"),
        ("executable", 554, "only PDF and images"),
    ],
)
async def test_refusals(smtp: Smtp, case: str, code: int, reason: str) -> None:
    before = rejections(str(code))
    rcpt = f"{PERSON}@{DOMAIN}"

    def go() -> tuple[int, str]:
        if case == "bad_password":
            with smtp.connect(login=False) as s:
                try:
                    s.login(smtp.user, smtp.password + "x")
                except smtplib.SMTPAuthenticationError as exc:
                    return exc.smtp_code, exc.smtp_error.decode()
                return 0, "logged in"
        with smtp.connect(tls=case != "no_tls", login=case not in ("no_tls", "no_auth")) as s:
            if case == "bad_checksum":
                return send_raw(s, mail(["x"]), ["0076229646@" + DOMAIN])
            if case == "foreign_domain":
                return send_raw(s, mail(["x"]), [f"{PERSON}@gmail.com"])
            if case == "foreign_envelope_from":
                return send_raw(s, mail([rcpt]), [rcpt], mail_from="someone@evil.example")
            if case == "foreign_header_from":
                return send_raw(s, mail([rcpt], sender="boss@evil.example"), [rcpt])
            if case == "too_large":
                big = [("big.pdf", "application/pdf", PDF + b"0" * 5000)]
                return send_raw(s, mail([rcpt], files=big), [rcpt])
            if case == "executable":
                return send_raw(s, mail([rcpt], files=[("a.pdf", "application/pdf", EXE)]), [rcpt])
            return send_raw(s, mail([rcpt]), [rcpt])

    got, text = await asyncio.to_thread(go)
    assert got == code, text
    assert reason in text
    assert rejections(str(code)) >= before + 1  # smtplib tries PLAIN, then LOGIN
    assert await smtp.svc.store.pool.fetchval("SELECT count(*) FROM letters") == 0


def _swaks(smtp: Smtp, tmp_path: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    swaks = ensure_swaks_with_tls()
    pdf = tmp_path / "notice.pdf"
    pdf.write_bytes(PDF)
    return subprocess.run(
        [
            swaks,
            "--server", f"127.0.0.1:{smtp.port}",
            "--from", OA_FROM,
            "--to", f"{PERSON}@{DOMAIN}",
            "--header", "Subject: Notice 2026/77",
            "--header", "X-Payam-Notify-SMS: no",
            "--body", "Official notice, see the attachment.",
            "--attach-type", "application/pdf",
            "--attach", f"@{pdf}",
            *extra,
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )  # fmt: skip


async def test_swaks_sends_a_letter_and_is_refused_without_auth(smtp: Smtp, tmp_path: Path) -> None:
    tls_auth = (
        "--tls",
        "--auth",
        "PLAIN",
        "--auth-user",
        smtp.user,
        "--auth-password",
        smtp.password,
    )
    done = await asyncio.to_thread(_swaks, smtp, tmp_path, *tls_auth)
    assert done.returncode == 0, done.stdout + done.stderr
    tracking = re.search(r"250 2\.0\.0 Accepted: (KP-\d{4}-\d{4}-\d{4})", done.stdout)
    assert tracking is not None, done.stdout
    row = await smtp.svc.store.letters.by_tracking(smtp.agency_id, tracking.group(1))
    assert row is not None
    assert row.subject == "Notice 2026/77"
    assert row.notify_sms is False
    files = await smtp.svc.store.letters.attachments(row.id)
    assert [(f.name, f.content_type, f.data) for f in files] == [
        ("notice.pdf", "application/pdf", PDF)
    ]
    done = await asyncio.to_thread(_swaks, smtp, tmp_path, "--tls")
    assert done.returncode != 0
    assert "530" in done.stdout
    login = ("--tls", "--auth", "LOGIN", "--auth-user", smtp.user, "--auth-password", "nope")
    done = await asyncio.to_thread(_swaks, smtp, tmp_path, *login)
    assert done.returncode != 0
    assert "535" in done.stdout
    assert await smtp.svc.store.pool.fetchval("SELECT count(*) FROM letters") == 1


async def test_a_resent_message_is_the_same_letter(smtp: Smtp) -> None:
    rcpt = f"{PERSON}@{DOMAIN}"
    msg = mail([rcpt], files=[("a.pdf", "application/pdf", PDF)])

    def go(m: EmailMessage) -> tuple[int, str]:
        with smtp.connect() as s:
            return send_raw(s, m, [rcpt])

    first = await asyncio.to_thread(go, msg)
    again = await asyncio.to_thread(go, msg)
    assert first[0] == again[0] == 250
    assert first[1] == again[1]  # the same tracking number
    assert await smtp.svc.store.pool.fetchval("SELECT count(*) FROM letters") == 1
    other = mail([rcpt])
    del other["Message-ID"]
    other["Message-ID"] = msg["Message-ID"]
    code, text = await asyncio.to_thread(go, other)
    assert code == 554
    assert "Message-ID was already used" in text
    assert await smtp.svc.store.pool.fetchval("SELECT count(*) FROM letters") == 1
