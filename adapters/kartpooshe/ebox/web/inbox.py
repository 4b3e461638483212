"""The inbox pages: a box's letters, one letter (records the first opening), downloads, replies.

Every request re-checks the caller's role on the box (access.boxes_for), so a revoked attorney
or a removed representative loses access at their next click.
"""

from __future__ import annotations

import logging
import re
import unicodedata
import urllib.parse

from aiohttp import web

from adapters.kartpooshe.ebox.access import BoxAccess, boxes_for
from adapters.kartpooshe.ebox.context import ebox
from adapters.kartpooshe.ebox.metrics import OPENINGS, REPLIES
from adapters.kartpooshe.ebox.models import Letter
from adapters.kartpooshe.ebox.web.html import csrf_field, esc, fa_date, fa_num, message, page
from adapters.kartpooshe.ebox.web.security import (
    PageError,
    User,
    check_csrf,
    html_response,
    require_user,
)
from adapters.kartpooshe.ebox.web.uploads import sniff
from gateway.persian import normalize_letters

log = logging.getLogger(__name__)

ROLE_FA = {"owner": "صندوق من", "attorney": "وکالتی", "representative": "شرکت"}
# Served with their own type; anything else is a download of application/octet-stream.
_SAFE_TYPES = frozenset(
    {"application/pdf", "image/png", "image/jpeg", "image/gif", "image/webp", "text/plain"}
)
_UNSAFE_NAME_CHARS = re.compile(r'[\x00-\x1f\x7f"\\/;:*?<>|]')
# Bidirectional controls and invisible characters (Unicode TR36 §2.3: "invoice<U+202E>fdp.exe"
# reads "invoiceexe.pdf"); ZWNJ (U+200C) stays, Persian spelling needs it.
_INVISIBLE = re.compile("[\u061c\u200b\u200d-\u200f\u202a-\u202e\u2060-\u2069\ufeff]")


def safe_filename(name: str) -> str:
    """A download name that cannot traverse paths or break the header: last path segment only,
    no control characters (CR/LF would inject headers), quotes, or separators."""
    name = unicodedata.normalize("NFC", name).replace("\\", "/").rsplit("/", 1)[-1]
    name = _UNSAFE_NAME_CHARS.sub("_", _INVISIBLE.sub("", name)).strip(" .")
    return name[:150] or "attachment"


def content_disposition(name: str) -> str:
    safe = safe_filename(name)
    stem, dot, ext = safe.rpartition(".")
    ascii_stem = (stem if dot else safe).encode("ascii", "ignore").decode().strip(" ._")
    ascii_ext = ext.encode("ascii", "ignore").decode() if dot else ""
    ascii_name = (ascii_stem or "attachment") + (f".{ascii_ext}" if ascii_ext else "")
    quoted = urllib.parse.quote(safe, safe="")
    # RFC 6266: an ASCII fallback plus the UTF-8 name (Persian file names) in filename*.
    return f"attachment; filename=\"{ascii_name}\"; filename*=UTF-8''{quoted}"


async def _box(request: web.Request) -> tuple[User, BoxAccess, list[BoxAccess]]:
    user = await require_user(request)
    owner_id = request.match_info["owner"]
    boxes = await boxes_for(ebox(request).store, user.national_code)
    box = next((b for b in boxes if b.owner_id == owner_id), None)
    if box is None:
        raise PageError(403, "شما به این صندوق دسترسی ندارید.", "You have no access to this box.")
    return user, box, boxes


def header(user: User, boxes: list[BoxAccess], current: str) -> str:
    links = "".join(
        f'<a href="/box/{b.owner_id}" class="{"current" if b.owner_id == current else ""}">'
        f'{esc(ROLE_FA[b.role])} <span class="ltr">{fa_num(b.owner_id)}</span></a>'
        for b in boxes
    )
    return (
        f'<form method="post" action="/logout">{csrf_field(user.csrf)}'
        '<button class="quiet" type="submit">خروج</button></form>'
        f'<nav class="boxes" aria-label="صندوق‌ها">{links}</nav>'
    )


def _box_tools(box: BoxAccess) -> str:
    tools = []
    if box.may_manage_attorneys:
        tools.append(f'<a href="/box/{box.owner_id}/attorneys">وکیل‌ها (Attorneys)</a>')
    if box.is_company:
        tools.append(
            f'<a href="/box/{box.owner_id}/representatives">نمایندگان (Representatives)</a>'
        )
    return f"<p>{' · '.join(tools)}</p>" if tools else ""


async def inbox(request: web.Request) -> web.StreamResponse:
    """GET /inbox: the person's own box."""
    user = await require_user(request)
    raise web.HTTPSeeOther(f"/box/{user.national_code}")


async def box_page(request: web.Request) -> web.StreamResponse:
    """GET /box/{owner}: the letters of one box, newest first."""
    user, box, boxes = await _box(request)
    letters = await ebox(request).store.letters.list_for_box(box.owner_id)
    items = "".join(
        f'<li class="card{"" if s.first_opened_at else " unread"}">'
        f'<a href="/box/{box.owner_id}/letter/{urllib.parse.quote(s.letter_id)}">'
        f'<div class="subject">{esc(s.subject)}</div>'
        f'<div class="meta">{esc(s.agency_name_fa)} · <time>{fa_date(s.deposited_at)}</time>'
        f' · شماره پیگیری <span class="ltr">{esc(fa_num(s.tracking_number))}</span>'
        f"{'' if s.first_opened_at else ' · <b>خوانده‌نشده</b>'}</div></a></li>"
        for s in letters
    )
    body = (
        f'<h1>{esc(ROLE_FA[box.role])} <span class="ltr">{fa_num(box.owner_id)}</span></h1>'
        + _box_tools(box)
        + (
            f'<ul class="letters">{items}</ul>'
            if items
            else message("ok", "نامه‌ای نیست.", "No letters.")
        )
    )
    return html_response(page("نامه‌ها", body, header_extra=header(user, boxes, box.owner_id)))


async def _letter(request: web.Request, box: BoxAccess) -> Letter:
    letter = await ebox(request).store.letters.get(box.owner_id, request.match_info["letter_id"])
    if letter is None:
        raise PageError(404, "چنین نامه‌ای در این صندوق نیست.", "No such letter in this box.")
    return letter


async def letter_page(request: web.Request) -> web.StreamResponse:
    """GET /box/{owner}/letter/{letter_id}: show it; the first opening queues an "opened" event."""
    user, box, boxes = await _box(request)
    ctx = ebox(request)
    letter = await _letter(request, box)
    if letter.first_opened_at is None:
        event = await ctx.store.letters.mark_opened(letter.letter_id, box.role, ctx.clock())
        if event is not None:
            OPENINGS.labels(box.role).inc()
            ctx.outbox.wake()
    base = f"/box/{box.owner_id}/letter/{urllib.parse.quote(letter.letter_id)}"
    atts = "".join(
        f'<li><a href="{base}/attachment/{a.position}" download>{esc(safe_filename(a.name))}</a> '
        f'<span class="meta">({fa_num(str(max(1, a.size // 1024)))} کیلوبایت)</span></li>'
        for a in letter.attachments
    )
    replies = await ctx.store.letters.replies(letter.letter_id)
    sent = message("ok", "پاسخ شما ثبت و فرستاده شد.", "Your reply was sent.")
    replies_html = "".join(
        f'<div class="card"><div class="meta">پاسخ · {fa_date(r.created_at)}</div>'
        f'<div class="body">{esc(r.text)}</div>'
        f"{f'<div class=meta>پیوست: {esc(r.attachment_name)}</div>' if r.attachment_name else ''}"
        "</div>"
        for r in replies
    )
    if letter.reply_allowed and box.may_reply:
        cfg = ctx.config
        max_mb = fa_num(str(cfg.reply_max_attachment_bytes // 1048576))
        reply_form = f"""<form method="post" action="{base}/reply" enctype="multipart/form-data"
 class="card">{csrf_field(user.csrf)}<h2>پاسخ <span class="en">Reply</span></h2>
<label for="text">متن پاسخ</label>
<textarea id="text" name="text" maxlength="{cfg.reply_max_chars}" required></textarea>
<label for="attachment">پیوست (اختیاری، PDF یا تصویر، حداکثر {max_mb} مگابایت)</label>
<input type="file" id="attachment" name="attachment"
 accept="application/pdf,image/png,image/jpeg,image/gif,image/webp,image/tiff">
<button type="submit">ارسال پاسخ</button></form>"""
    elif letter.reply_allowed:
        reply_form = message("ok", "وکیل نمی‌تواند پاسخ دهد.", "Attorneys may read, not reply.")
    else:
        reply_form = message("ok", "این نامه پاسخ نمی‌پذیرد.", "This letter takes no reply.")
    body = (
        f'<article class="card"><h1>{esc(letter.subject)}</h1>'
        f'<div class="meta">{esc(letter.agency_name_fa)}'
        f"{' · ' + esc(letter.agency_name_en) if letter.agency_name_en else ''}<br>"
        f"تاریخ: <time>{fa_date(letter.deposited_at)}</time> · شماره پیگیری "
        f'<span class="ltr">{esc(fa_num(letter.tracking_number))}</span></div>'
        f'<div class="body">{esc(letter.body)}</div>'
        + (f'<h2>پیوست‌ها</h2><ul class="plain">{atts}</ul>' if atts else "")
        + "</article>"
        + replies_html
        + (sent if request.query.get("sent") else "")
        + reply_form
        + f'<p><a href="/box/{box.owner_id}">بازگشت به فهرست نامه‌ها</a></p>'
    )
    return html_response(page(letter.subject, body, header_extra=header(user, boxes, box.owner_id)))


async def attachment(request: web.Request) -> web.StreamResponse:
    """GET /box/{owner}/letter/{letter_id}/attachment/{n}: always a download, never inline."""
    _, box, _ = await _box(request)
    try:
        position = int(request.match_info["n"])
    except ValueError:
        raise PageError(404, "چنین پیوستی نیست.", "No such attachment.") from None
    att = await ebox(request).store.letters.attachment(
        box.owner_id, request.match_info["letter_id"], position
    )
    if att is None:
        raise PageError(404, "چنین پیوستی نیست.", "No such attachment.")
    ctype = att.meta.content_type.split(";")[0].strip().lower()
    resp = web.Response(
        body=att.data,
        content_type=ctype if ctype in _SAFE_TYPES else "application/octet-stream",
    )
    resp.headers["Content-Disposition"] = content_disposition(att.meta.name)
    return resp


async def reply(request: web.Request) -> web.StreamResponse:
    """POST /box/{owner}/letter/{letter_id}/reply: text and at most one attachment."""
    user, box, _ = await _box(request)
    ctx = ebox(request)
    letter = await _letter(request, box)
    if not (letter.reply_allowed and box.may_reply):
        raise PageError(
            403, "پاسخ به این نامه مجاز نیست.", "Replying to this letter is not allowed."
        )
    try:
        form = await request.post()
    except web.HTTPRequestEntityTooLarge:
        raise PageError(413, "پیوست بیش از حد بزرگ است.", "The attachment is too large.") from None
    check_csrf(user.csrf, form.get("csrf"))
    text = form.get("text")
    text = normalize_letters(text).strip() if isinstance(text, str) else ""
    if not text or len(text) > ctx.config.reply_max_chars:
        raise PageError(
            422,
            f"متن پاسخ لازم است و حداکثر {fa_num(str(ctx.config.reply_max_chars))} نویسه.",
            "The reply needs text, within the length limit.",
        )
    file = form.get("attachment")
    upload: tuple[str, str, bytes] | None = None
    if isinstance(file, web.FileField) and file.filename:
        data = file.file.read()
        if len(data) > ctx.config.reply_max_attachment_bytes:
            raise PageError(413, "پیوست بیش از حد بزرگ است.", "The attachment is too large.")
        if data:
            media_type = sniff(data)
            if media_type is None:
                raise PageError(
                    415,
                    "پیوست باید PDF یا تصویر (PNG، JPEG، GIF، WebP، TIFF) باشد.",
                    "The attachment must be a PDF or an image.",
                )
            upload = (safe_filename(file.filename), media_type, data)
    await ctx.store.letters.add_reply(letter.letter_id, box.role, text, upload, ctx.clock())
    REPLIES.labels(box.role).inc()
    ctx.outbox.wake()
    log.info("reply to letter %s stored", letter.letter_id)
    raise web.HTTPSeeOther(
        f"/box/{box.owner_id}/letter/{urllib.parse.quote(letter.letter_id)}?sent=1"
    )


def register(app: web.Application) -> None:
    app.router.add_get("/inbox", inbox)
    app.router.add_get("/box/{owner}", box_page)
    app.router.add_get("/box/{owner}/letter/{letter_id}", letter_page)
    app.router.add_get("/box/{owner}/letter/{letter_id}/attachment/{n}", attachment)
    app.router.add_post("/box/{owner}/letter/{letter_id}/reply", reply)
