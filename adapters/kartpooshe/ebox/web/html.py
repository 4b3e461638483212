"""Server-rendered HTML for the citizen inbox: Persian, right-to-left, phone-first, self-contained.

No external assets of any kind (no web fonts, scripts or images from elsewhere): the page must
work on a slow or filtered connection and must not tell a third party who reads their mail.
Everything user-supplied goes through ``esc``.
"""

from __future__ import annotations

import html
from datetime import datetime

from gateway.persian import jalali, persian_digits

CSS = """
*,*::before,*::after{box-sizing:border-box}
html{-webkit-text-size-adjust:100%}
body{margin:0;font-family:Vazirmatn,"Noto Sans Arabic",Tahoma,"DejaVu Sans",sans-serif;
 font-size:16px;line-height:1.7;color:#1c2430;background:#f3f5f8;overflow-wrap:anywhere}
header{background:#0b4f6c;color:#fff;padding:.75rem 1rem}
header a{color:#fff}
header .brand{font-weight:bold;font-size:1.1rem}
header form{display:inline}
nav.boxes{display:flex;flex-wrap:wrap;gap:.4rem;margin-top:.5rem}
nav.boxes a{background:#ffffff22;border-radius:.4rem;padding:.15rem .6rem;text-decoration:none}
nav.boxes a.current{background:#fff;color:#0b4f6c}
main{max-width:48rem;margin:0 auto;padding:1rem}
h1{font-size:1.3rem;margin:.2rem 0 1rem}
.card{background:#fff;border-radius:.6rem;padding:1rem;margin-bottom:.8rem;
 box-shadow:0 1px 3px #0002}
ul.letters{list-style:none;margin:0;padding:0}
ul.letters li{margin-bottom:.6rem}
ul.letters a{display:block;text-decoration:none;color:inherit}
.unread{border-inline-start:.35rem solid #d97706}
.meta{color:#5b6675;font-size:.9rem}
.subject{font-weight:bold}
.body{white-space:pre-wrap}
label{display:block;margin:.6rem 0 .2rem}
input[type=text],input[type=file],textarea{width:100%;max-width:100%;font:inherit;
 padding:.5rem;border:1px solid #9aa5b1;border-radius:.4rem;background:#fff}
textarea{min-height:8rem}
.ltr{direction:ltr;text-align:left;unicode-bidi:plaintext}
button{font:inherit;padding:.5rem 1.1rem;border:0;border-radius:.4rem;background:#0b4f6c;
 color:#fff;margin-top:.7rem;cursor:pointer}
button.quiet{background:#fff;color:#0b4f6c;border:1px solid #0b4f6c;margin:0}
header button.quiet{padding:.1rem .6rem}
.error{background:#fde8e8;border:1px solid #e3a0a0;color:#7a1b1b}
.ok{background:#e6f6ea;border:1px solid #9fd3ad}
.en{color:#5b6675;font-size:.85rem;direction:ltr;display:block}
ul.plain{padding-inline-start:1.2rem}
"""

CSP = (
    "default-src 'none'; style-src 'unsafe-inline'; img-src 'self'; form-action 'self'; "
    "frame-ancestors 'none'; base-uri 'none'"
)


def esc(text: str) -> str:
    return html.escape(text, quote=True)


def fa_date(at: datetime) -> str:
    """Jalali date and Tehran time with Persian digits, e.g. ۱۴۰۵/۰۹/۱۲ ۱۴:۰۵."""
    return persian_digits(jalali(at))


def fa_num(text: str) -> str:
    return persian_digits(text)


def csrf_field(token: str) -> str:
    return f'<input type="hidden" name="csrf" value="{esc(token)}">'


def message(kind: str, fa: str, en: str = "") -> str:
    en_html = f'<span class="en">{esc(en)}</span>' if en else ""
    return f'<div class="card {kind}" role="alert"><span>{esc(fa)}</span>{en_html}</div>'


def page(
    title: str,
    body: str,
    *,
    header_extra: str = "",
) -> str:
    return (
        '<!DOCTYPE html><html lang="fa" dir="rtl"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{esc(title)} · صندوق الکترونیکی</title><style>{CSS}</style></head><body>"
        '<header><div class="brand">صندوق الکترونیکی پیام ایران</div>'
        f"{header_extra}</header><main>{body}</main></body></html>"
    )
