"""Login with national code and a one-time code sent by SMS through the gateway (protocol §3).

The e-box never learns the phone number: it makes the code, keeps its hash, and asks the
gateway to text it to whatever number the gateway's citizen directory holds for that code.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from datetime import timedelta

from aiohttp import web

from adapters.kartpooshe.ebox import otp
from adapters.kartpooshe.ebox.context import ebox
from adapters.kartpooshe.ebox.gateway_client import OtpAnswer
from adapters.kartpooshe.ebox.metrics import LOGINS
from adapters.kartpooshe.ebox.web.html import csrf_field, message, page
from adapters.kartpooshe.ebox.web.security import (
    LOGIN_COOKIE,
    PRE_CSRF_COOKIE,
    SESSION_COOKIE,
    check_csrf,
    clear_cookie,
    current_user,
    html_response,
    new_session,
    pre_login_csrf,
    require_user,
    set_cookie,
)
from gateway.identity import is_valid_national_code, normalize_digits

log = logging.getLogger(__name__)

_OTP_ERRORS = {
    OtpAnswer.UNKNOWN_CITIZEN: (
        "برای این کد ملی شماره همراهی ثبت نشده است.",
        "No mobile number is registered for this national code.",
    ),
    OtpAnswer.TOO_MANY: (
        "کدهای زیادی درخواست شده است؛ چند دقیقه دیگر دوباره تلاش کنید.",
        "Too many codes requested; try again in a few minutes.",
    ),
    OtpAnswer.INVALID: ("کد ملی نامعتبر است.", "Invalid national code."),
    OtpAnswer.UNAVAILABLE: (
        "ارسال پیامک اکنون ممکن نیست؛ کمی بعد دوباره تلاش کنید.",
        "The SMS could not be sent now; try again shortly.",
    ),
}


def _login_form(csrf: str, error: str = "") -> str:
    return page(
        "ورود",
        f"""<h1>ورود به صندوق</h1>{error}<form method="post" action="/login" class="card">
{csrf_field(csrf)}
<label for="national_code">کد ملی <span class="en">National code</span></label>
<input type="text" id="national_code" name="national_code" inputmode="numeric"
 autocomplete="username" maxlength="20" required class="ltr">
<button type="submit">دریافت کد یک‌بارمصرف</button>
<p class="meta">کد شش‌رقمی با پیامک به شماره همراهی که به نام شما ثبت است فرستاده می‌شود.
پیامک‌های صندوق هرگز پیوند ندارند.</p></form>""",
    )


def _code_form(csrf: str, error: str = "") -> str:
    return page(
        "کد ورود",
        f"""<h1>کد ورود</h1>{error}<form method="post" action="/login/code" class="card">
{csrf_field(csrf)}
<label for="code">کد شش‌رقمی پیامک‌شده <span class="en">6-digit code from the SMS</span></label>
<input type="text" id="code" name="code" inputmode="numeric" autocomplete="one-time-code"
 maxlength="12" required class="ltr">
<button type="submit">ورود</button></form>
<p><a href="/login">درخواست کد تازه</a></p>""",
    )


async def root(request: web.Request) -> web.StreamResponse:
    """GET /: the inbox when logged in, else the login page."""
    raise web.HTTPSeeOther("/inbox" if await current_user(request) else "/login")


async def login_page(request: web.Request) -> web.StreamResponse:
    """GET /login"""
    resp = html_response("")
    resp.text = _login_form(pre_login_csrf(request, resp))
    return resp


async def login_submit(request: web.Request) -> web.StreamResponse:
    """POST /login: make a code and ask the gateway to text it."""
    ctx = ebox(request)
    form = await request.post()
    csrf = request.cookies.get(PRE_CSRF_COOKIE, "")
    check_csrf(csrf, form.get("csrf"))
    code_raw = form.get("national_code")
    national_code = normalize_digits(code_raw) if isinstance(code_raw, str) else ""
    if not is_valid_national_code(national_code):
        err = message("error", "کد ملی نامعتبر است.", "Invalid national code.")
        return html_response(_login_form(csrf, err), 422)
    now = ctx.clock()
    last = await ctx.store.logins.last_code_at(national_code)
    if last is not None and now - last < timedelta(seconds=ctx.config.otp_resend_seconds):
        LOGINS.labels("code_throttled").inc()
        err = message(
            "error",
            "کدی به‌تازگی فرستاده شده است؛ یک دقیقه صبر کنید.",
            "A code was sent recently; wait a minute before asking again.",
        )
        return html_response(_login_form(csrf, err), 429)
    code, salt, login_id = otp.new_code(), otp.new_salt(), uuid.uuid4()
    await ctx.store.logins.add_code(
        login_id,
        national_code,
        salt,
        # scrypt takes tens of milliseconds of CPU on purpose: off the event loop.
        await asyncio.to_thread(otp.hash_code, code, salt),
        now,
        now + timedelta(seconds=ctx.config.otp_ttl_seconds),
    )
    answer = await ctx.gateway.request_otp(national_code, code)
    if answer is not OtpAnswer.SENT:
        await ctx.store.logins.drop_code(login_id)
        LOGINS.labels(answer.value).inc()
        fa, en = _OTP_ERRORS[answer]
        status = 429 if answer is OtpAnswer.TOO_MANY else 422
        if answer is OtpAnswer.UNAVAILABLE:
            status = 503
        return html_response(_login_form(csrf, message("error", fa, en)), status)
    LOGINS.labels("code_sent").inc()
    resp = web.HTTPSeeOther("/login/code")
    set_cookie(request, resp, LOGIN_COOKIE, str(login_id), ctx.config.otp_ttl_seconds)
    raise resp


async def code_page(request: web.Request) -> web.StreamResponse:
    """GET /login/code"""
    resp = html_response("")
    resp.text = _code_form(pre_login_csrf(request, resp))
    return resp


async def code_submit(request: web.Request) -> web.StreamResponse:
    """POST /login/code: check the code (tries counted), then open a session."""
    ctx = ebox(request)
    form = await request.post()
    csrf = request.cookies.get(PRE_CSRF_COOKIE, "")
    check_csrf(csrf, form.get("csrf"))
    given = form.get("code")
    given = normalize_digits(given) if isinstance(given, str) else ""

    def again(outcome: str, fa: str, en: str, status: int) -> web.Response:
        LOGINS.labels(outcome).inc()
        return html_response(_code_form(csrf, message("error", fa, en)), status)

    try:
        login_id = uuid.UUID(request.cookies.get(LOGIN_COOKIE, ""))
    except ValueError:
        return again(
            "expired", "ابتدا کد ملی را وارد کنید.", "Enter your national code first.", 400
        )
    row = await ctx.store.logins.take_attempt(login_id)
    if row is None or row.used or row.expires_at <= ctx.clock():
        return again(
            "expired",
            "کد منقضی شده است؛ کد تازه بخواهید.",
            "The code expired; ask for a new one.",
            400,
        )
    if row.attempts >= ctx.config.otp_max_attempts:
        return again(
            "too_many_attempts",
            "تعداد تلاش‌ها بیش از حد مجاز است؛ کد تازه بخواهید.",
            "Too many wrong tries; ask for a new code.",
            429,
        )
    if not await asyncio.to_thread(otp.matches, given, row.salt, row.code_hash):
        return again("wrong_code", "کد نادرست است.", "Wrong code.", 422)
    if not await ctx.store.logins.use_code(login_id):
        return again("expired", "این کد پیش‌تر استفاده شده است.", "This code was already used.", 400)
    LOGINS.labels("success").inc()
    resp = web.HTTPSeeOther("/inbox")
    await new_session(request, resp, row.national_code)
    clear_cookie(resp, LOGIN_COOKIE)
    raise resp


async def logout(request: web.Request) -> web.StreamResponse:
    """POST /logout"""
    user = await require_user(request)
    form = await request.post()
    check_csrf(user.csrf, form.get("csrf"))
    await ebox(request).store.logins.drop_session(user.token_hash)
    resp = web.HTTPSeeOther("/login")
    clear_cookie(resp, SESSION_COOKIE)
    raise resp


def register(app: web.Application) -> None:
    app.router.add_get("/", root)
    app.router.add_get("/login", login_page)
    app.router.add_post("/login", login_submit)
    app.router.add_get("/login/code", code_page)
    app.router.add_post("/login/code", code_submit)
    app.router.add_post("/logout", logout)
