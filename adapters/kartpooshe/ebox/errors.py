"""The e-box API's closed catalogue of errors (EBOX-PROTOCOL v1), as RFC 9457 problem+json.

Same shape as the gateway's (gateway/errors.py): stable ``code``, English ``title``, Persian
``title_fa``; ``detail`` names the field at fault and never echoes an identifier.
"""

from __future__ import annotations

from typing import Any

import orjson
from aiohttp import web

from gateway.errors import PROBLEM_CONTENT_TYPE, TYPE_BASE, ErrorKind

CATALOGUE: dict[str, ErrorKind] = {
    "unauthorised": ErrorKind(401, "Missing or wrong bearer token", "توکن نادرست است"),
    "letter_conflict": ErrorKind(
        409,
        "This letter_id was deposited with other content",
        "این نامه پیش‌تر با محتوای دیگری تحویل شده است",
    ),
    "invalid_recipient": ErrorKind(
        422,
        "The recipient is not a valid national code or legal-entity id",
        "گیرنده، کد ملی یا شناسه ملی معتبر نیست",
    ),
    "invalid_letter": ErrorKind(422, "The letter is malformed", "نامه نادرست است"),
    "too_large": ErrorKind(413, "The deposit is too large", "حجم نامه بیش از حد مجاز است"),
    "not_found": ErrorKind(404, "No such resource", "چنین منبعی وجود ندارد"),
    "method_not_allowed": ErrorKind(405, "Method not allowed here", "این روش مجاز نیست"),
    "internal_error": ErrorKind(500, "Internal error", "خطای داخلی"),
}


class EboxProblem(Exception):
    def __init__(self, code: str, detail: str = "") -> None:
        if code not in CATALOGUE:
            raise KeyError(f"unknown problem code {code!r}")
        super().__init__(f"{code}: {detail}" if detail else code)
        self.code = code
        self.detail = detail

    @property
    def status(self) -> int:
        return CATALOGUE[self.code].status

    def response(self, instance: str = "") -> web.Response:
        kind = CATALOGUE[self.code]
        body: dict[str, Any] = {
            "type": TYPE_BASE + "ebox/" + self.code,
            "title": kind.title,
            "title_fa": kind.title_fa,
            "status": kind.status,
            "code": self.code,
        }
        if self.detail:
            body["detail"] = self.detail
        if instance:
            body["instance"] = instance
        resp = web.Response(body=orjson.dumps(body), status=kind.status)
        resp.headers["Content-Type"] = PROBLEM_CONTENT_TYPE
        if kind.status == 401:
            resp.headers["WWW-Authenticate"] = 'Bearer realm="ebox"'
        return resp
