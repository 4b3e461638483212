"""Granting and revoking attorneys (persons' boxes) and managing a company's representatives."""

from __future__ import annotations

import logging

from aiohttp import web

from adapters.kartpooshe.ebox.context import ebox
from adapters.kartpooshe.ebox.models import Grant
from adapters.kartpooshe.ebox.web.html import csrf_field, fa_date, fa_num, message, page
from adapters.kartpooshe.ebox.web.inbox import _box, header
from adapters.kartpooshe.ebox.web.security import PageError, check_csrf, html_response
from gateway.identity import is_valid_national_code, normalize_digits

log = logging.getLogger(__name__)

_DONE = {
    "granted": ("وکالت ثبت شد.", "Attorney granted."),
    "revoked": ("وکالت لغو شد.", "Attorney revoked."),
    "added": ("نماینده افزوده شد.", "Representative added."),
    "removed": ("نماینده حذف شد.", "Representative removed."),
    "unchanged": ("تغییری لازم نبود.", "Nothing to change."),
}


def _list(grants: list[Grant], path: str, csrf: str, remove_action: str, label: str) -> str:
    if not grants:
        return message("ok", "کسی ثبت نشده است.", "Nobody yet.")
    rows = "".join(
        f'<li class="card"><span class="ltr">{fa_num(g.national_code)}</span> '
        f'<span class="meta">از {fa_date(g.since)}</span>'
        f'<form method="post" action="{path}">{csrf_field(csrf)}'
        f'<input type="hidden" name="action" value="{remove_action}">'
        f'<input type="hidden" name="national_code" value="{g.national_code}">'
        f'<button class="quiet" type="submit">{label}</button></form></li>'
        for g in grants
    )
    return f'<ul class="letters">{rows}</ul>'


def _add_form(path: str, csrf: str, action: str, label: str) -> str:
    return f"""<form method="post" action="{path}" class="card">{csrf_field(csrf)}
<input type="hidden" name="action" value="{action}">
<label for="national_code">کد ملی <span class="en">National code</span></label>
<input type="text" id="national_code" name="national_code" inputmode="numeric" maxlength="20"
 required class="ltr"><button type="submit">{label}</button></form>"""


def _flash(request: web.Request) -> str:
    done = _DONE.get(request.query.get("done", ""))
    return message("ok", *done) if done else ""


def _code(form_value: object) -> str:
    code = normalize_digits(form_value) if isinstance(form_value, str) else ""
    if not is_valid_national_code(code):
        raise PageError(422, "کد ملی نامعتبر است.", "Invalid national code.")
    return code


async def attorneys_page(request: web.Request) -> web.StreamResponse:
    """GET /box/{owner}/attorneys: the owner's attorneys and the form to name one."""
    user, box, boxes = await _box(request)
    if not box.may_manage_attorneys:
        raise PageError(403, "فقط صاحب صندوق وکیل تعیین می‌کند.", "Only the owner names attorneys.")
    path = f"/box/{box.owner_id}/attorneys"
    grants = await ebox(request).store.access.attorneys_of(box.owner_id)
    body = (
        '<h1>وکیل‌ها <span class="en">Attorneys</span></h1>'
        + _flash(request)
        + '<p class="meta">وکیل با کد ملی خود وارد می‌شود و نامه‌های این صندوق را می‌خواند.</p>'
        + _list(grants, path, user.csrf, "revoke", "لغو وکالت")
        + _add_form(path, user.csrf, "grant", "ثبت وکیل")
        + f'<p><a href="/box/{box.owner_id}">بازگشت</a></p>'
    )
    return html_response(page("وکیل‌ها", body, header_extra=header(user, boxes, box.owner_id)))


async def attorneys_submit(request: web.Request) -> web.StreamResponse:
    """POST /box/{owner}/attorneys: action=grant|revoke, national_code."""
    user, box, _ = await _box(request)
    if not box.may_manage_attorneys:
        raise PageError(403, "فقط صاحب صندوق وکیل تعیین می‌کند.", "Only the owner names attorneys.")
    form = await request.post()
    check_csrf(user.csrf, form.get("csrf"))
    code, action, access = (
        _code(form.get("national_code")),
        form.get("action"),
        ebox(request).store.access,
    )
    if action == "grant":
        if code == box.owner_id:
            raise PageError(422, "نمی‌توانید خودتان را وکیل کنید.", "You cannot name yourself.")
        await access.ensure_box(box.owner_id, "person")
        done = "granted" if await access.grant_attorney(box.owner_id, code) else "unchanged"
    elif action == "revoke":
        done = "revoked" if await access.revoke_attorney(box.owner_id, code) else "unchanged"
    else:
        raise PageError(400, "درخواست نامعتبر است.", "Unknown action.")
    log.info("attorney %s on a box", done)
    raise web.HTTPSeeOther(f"/box/{box.owner_id}/attorneys?done={done}")


async def representatives_page(request: web.Request) -> web.StreamResponse:
    """GET /box/{owner}/representatives: who reads a company's box."""
    user, box, boxes = await _box(request)
    if not box.is_company:
        raise PageError(404, "این صندوق متعلق به شرکت نیست.", "Not a company box.")
    path = f"/box/{box.owner_id}/representatives"
    grants = await ebox(request).store.access.representatives_of(box.owner_id)
    manage = box.may_manage_representatives
    body = (
        '<h1>نمایندگان شرکت <span class="en">Representatives</span></h1>'
        + _flash(request)
        + (_list(grants, path, user.csrf, "remove", "حذف") if manage else "")
        + (_add_form(path, user.csrf, "add", "افزودن نماینده") if manage else "")
        + f'<p><a href="/box/{box.owner_id}">بازگشت</a></p>'
    )
    return html_response(page("نمایندگان", body, header_extra=header(user, boxes, box.owner_id)))


async def representatives_submit(request: web.Request) -> web.StreamResponse:
    """POST /box/{owner}/representatives: action=add|remove, national_code."""
    user, box, _ = await _box(request)
    if not (box.is_company and box.may_manage_representatives):
        raise PageError(403, "فقط نمایندگان شرکت.", "Only the company's representatives.")
    form = await request.post()
    check_csrf(user.csrf, form.get("csrf"))
    code, action, access = (
        _code(form.get("national_code")),
        form.get("action"),
        ebox(request).store.access,
    )
    if action == "add":
        added = await access.add_representative(box.owner_id, code, user.national_code)
        done = "added" if added else "unchanged"
    elif action == "remove":
        current = {g.national_code for g in await access.representatives_of(box.owner_id)}
        if code not in current:
            raise web.HTTPSeeOther(f"/box/{box.owner_id}/representatives?done=unchanged")
        if not await access.remove_representative(box.owner_id, code):
            raise PageError(
                409,
                "آخرین نماینده را نمی‌توان حذف کرد.",
                "The last representative cannot be removed.",
            )
        done = "removed"
    else:
        raise PageError(400, "درخواست نامعتبر است.", "Unknown action.")
    raise web.HTTPSeeOther(f"/box/{box.owner_id}/representatives?done={done}")


def register(app: web.Application) -> None:
    app.router.add_get("/box/{owner}/attorneys", attorneys_page)
    app.router.add_post("/box/{owner}/attorneys", attorneys_submit)
    app.router.add_get("/box/{owner}/representatives", representatives_page)
    app.router.add_post("/box/{owner}/representatives", representatives_submit)
