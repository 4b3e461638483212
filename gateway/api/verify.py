"""Citizens' verification routes: the web page ``/verify`` and ``POST /v1/verify`` (JSON).

Public (no token): a citizen asks with the number a message came to and its code. The page is
Persian, right to left, one self-contained document (no script, font or style from anywhere
else), so it works on any phone and leaks nothing to third parties.
"""

from __future__ import annotations

import html
from typing import Any

from aiohttp import web

from gateway.api.http import json_response, read_json, services
from gateway.api.views import iso
from gateway.errors import Problem
from gateway.persian import ascii_digits
from gateway.recipients import normalize_msisdn
from gateway.validation import Field, parse_object
from gateway.verification import Answer

_FIELDS = {
    "msisdn": Field(str, required=True, max_length=32),
    "code": Field(str, required=True, max_length=32),
}
_MAX_FORM = 4096
_CSP = "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; base-uri 'none'"


def answer_view(a: Answer) -> dict[str, Any]:
    return {
        "status": a.status,
        "genuine": a.genuine,
        "agency": {"name_fa": a.agency_name_fa, "name_en": a.agency_name_en} if a.genuine else None,
        "sender": a.sender or None,
        "sent_at": iso(a.sent_at),
        "sent_at_jalali": a.sent_at_jalali or None,
        "message_fa": a.text_fa(),
        "message_en": a.text_en(),
    }


async def verify_json(request: web.Request) -> web.Response:
    """POST /v1/verify: {msisdn, code} → genuine (agency, sender, Jalali date) or not."""
    data = parse_object(await read_json(request), _FIELDS)
    msisdn = normalize_msisdn(ascii_digits(data["msisdn"]))
    if msisdn is None:
        raise Problem("invalid_recipient", "msisdn: not an Iranian mobile number")
    answer = await services(request).verification.verify(data["code"], msisdn)
    if answer.status == "rate_limited":
        raise Problem("verification_rate_limited", answer.text_en(), message_fa=answer.text_fa())
    return json_response(answer_view(answer))


_STYLE = """
body{font-family:Tahoma,"Vazirmatn",sans-serif;background:#f4f6f8;color:#1b1f23;margin:0}
main{max-width:28rem;margin:2rem auto;background:#fff;padding:1.5rem;border-radius:.5rem;
box-shadow:0 1px 3px rgba(0,0,0,.15)}
h1{font-size:1.3rem;margin-top:0}label{display:block;margin:.8rem 0 .3rem}
input{width:100%;box-sizing:border-box;padding:.6rem;font-size:1.1rem;direction:ltr;
text-align:left}button{margin-top:1rem;padding:.6rem 1.2rem;font-size:1rem}
.result{margin-top:1.2rem;padding:1rem;border-radius:.4rem}
.genuine{background:#e6f4ea;border:1px solid #34a853}
.not_genuine,.rate_limited,.error{background:#fce8e6;border:1px solid #d93025}
.en{direction:ltr;text-align:left;color:#555;font-size:.9rem}
"""


def _page(result: str = "", msisdn: str = "", code: str = "") -> str:
    return f"""<!doctype html>
<html lang="fa" dir="rtl"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>بررسی اصالت پیام — پیام ایران</title><style>{_STYLE}</style></head>
<body><main>
<h1>بررسی اصالت پیام</h1>
<p>شماره همراهی که پیام را دریافت کرده و کد تأیید انتهای پیام را وارد کنید.</p>
<p class="en">Check a message: the mobile number it came to, and the code at its end.</p>
<form method="post" action="/verify">
<label for="msisdn">شماره همراه شما</label>
<input id="msisdn" name="msisdn" inputmode="tel" autocomplete="tel" required
 value="{html.escape(msisdn)}" placeholder="09121234567">
<label for="code">کد تأیید</label>
<input id="code" name="code" inputmode="numeric" required value="{html.escape(code)}">
<button type="submit" id="check">بررسی</button>
</form>{result}
</main></body></html>"""


def _result(kind: str, fa: str, en: str) -> str:
    return (
        f'<section class="result {kind}" id="result" data-status="{kind}">'
        f'<p>{html.escape(fa)}</p><p class="en">{html.escape(en)}</p></section>'
    )


def _html(body: str, status: int = 200) -> web.Response:
    resp = web.Response(text=body, status=status, content_type="text/html", charset="utf-8")
    resp.headers["Content-Security-Policy"] = _CSP
    resp.headers["X-Content-Type-Options"] = "nosniff"
    resp.headers["Referrer-Policy"] = "no-referrer"
    return resp


async def verify_page(request: web.Request) -> web.Response:
    """GET /verify: the form."""
    return _html(_page())


async def verify_form(request: web.Request) -> web.Response:
    """POST /verify (form): the same answer as the JSON route, as a page."""
    if (request.content_length or 0) > _MAX_FORM or request.content_length is None:
        # Two short fields; the app's body limit is sized for batches, not for this form.
        return _html(_page(_result("error", "درخواست نامعتبر است.", "Bad request.")), status=413)
    form = await request.post()
    msisdn_raw = str(form.get("msisdn", ""))[:32]
    code = str(form.get("code", ""))[:32]
    msisdn = normalize_msisdn(ascii_digits(msisdn_raw))
    if msisdn is None:
        result = _result(
            "error", "شماره همراه معتبر نیست.", "That is not an Iranian mobile number."
        )
        return _html(_page(result, msisdn_raw, code), status=422)
    answer = await services(request).verification.verify(code, msisdn)
    status = 429 if answer.status == "rate_limited" else 200
    return _html(
        _page(_result(answer.status, answer.text_fa(), answer.text_en()), msisdn_raw, code),
        status=status,
    )


def register(app: web.Application) -> None:
    r = app.router
    r.add_get("/verify", verify_page)
    r.add_post("/verify", verify_form)
    r.add_post("/v1/verify", verify_json)
