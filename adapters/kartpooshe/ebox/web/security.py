"""Sessions, cookies, CSRF and the security headers of every inbox page.

The session cookie holds 32 random bytes; the database keeps only their SHA-256, so a database
dump opens no session. Cookies are HttpOnly and SameSite=Strict (and Secure behind HTTPS). Every
POST form carries a CSRF token: the session's own once logged in, and before login a random
value that must match the ``ebox_csrf`` cookie (double submit).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import timedelta

from aiohttp import web

from adapters.kartpooshe.ebox.context import ebox
from adapters.kartpooshe.ebox.web.html import CSP, message, page

SESSION_COOKIE = "ebox_session"
PRE_CSRF_COOKIE = "ebox_csrf"
LOGIN_COOKIE = "ebox_login"


@dataclass(frozen=True, slots=True)
class User:
    national_code: str
    csrf: str
    token_hash: bytes


def token_hash(value: str) -> bytes:
    return hashlib.sha256(value.encode()).digest()


def set_cookie(
    request: web.Request, resp: web.StreamResponse, name: str, value: str, max_age: int
) -> None:
    resp.set_cookie(
        name,
        value,
        max_age=max_age,
        path="/",
        httponly=True,
        samesite="Strict",
        secure=ebox(request).config.cookie_secure,
    )


def clear_cookie(resp: web.StreamResponse, name: str) -> None:
    resp.del_cookie(name, path="/")


async def new_session(request: web.Request, resp: web.StreamResponse, national_code: str) -> None:
    ctx = ebox(request)
    value = secrets.token_urlsafe(32)
    ttl = ctx.config.session_ttl_seconds
    await ctx.store.logins.add_session(
        token_hash(value),
        national_code,
        secrets.token_urlsafe(24),
        ctx.clock() + timedelta(seconds=ttl),
    )
    set_cookie(request, resp, SESSION_COOKIE, value, ttl)


async def current_user(request: web.Request) -> User | None:
    value = request.cookies.get(SESSION_COOKIE)
    if not value:
        return None
    th = token_hash(value)
    session = await ebox(request).store.logins.session(th, ebox(request).clock())
    return None if session is None else User(session.national_code, session.csrf_token, th)


async def require_user(request: web.Request) -> User:
    user = await current_user(request)
    if user is None:
        raise web.HTTPSeeOther("/login")
    return user


def check_csrf(expected: str, form_value: object) -> None:
    if (
        not isinstance(form_value, str)
        or not expected
        or not hmac.compare_digest(form_value.encode(), expected.encode())
    ):
        raise PageError(
            403,
            "درخواست نامعتبر است؛ صفحه را دوباره باز کنید و دوباره بفرستید.",
            "Invalid form token (CSRF); reload the page and submit again.",
        )


def pre_login_csrf(request: web.Request, resp: web.StreamResponse) -> str:
    """The pre-login CSRF value: the cookie's, or a new one set on ``resp``."""
    value = request.cookies.get(PRE_CSRF_COOKIE)
    if not value:
        value = secrets.token_urlsafe(24)
        set_cookie(request, resp, PRE_CSRF_COOKIE, value, 3600)
    return value


class PageError(Exception):
    """An error shown to a person as a Persian page (English alongside)."""

    def __init__(self, status: int, fa: str, en: str) -> None:
        super().__init__(en)
        self.status = status
        self.fa = fa
        self.en = en


def html_response(body: str, status: int = 200) -> web.Response:
    return web.Response(text=body, status=status, content_type="text/html", charset="utf-8")


def error_page(exc: PageError) -> web.Response:
    body = message("error", exc.fa, exc.en) + '<p><a href="/">بازگشت به صندوق</a></p>'
    return html_response(page("خطا", body), exc.status)


def harden(resp: web.StreamResponse) -> None:
    resp.headers.setdefault("Content-Security-Policy", CSP)
    resp.headers.setdefault("X-Content-Type-Options", "nosniff")
    resp.headers.setdefault("X-Frame-Options", "DENY")
    resp.headers.setdefault("Referrer-Policy", "no-referrer")
    # Letters are personal: no shared or browser cache may keep a copy.
    resp.headers.setdefault("Cache-Control", "no-store")
