"""Reading one deposit (EBOX-PROTOCOL §1): multipart metadata + attachments, checked and hashed.

The metadata part comes first; each ``attachment`` part follows in the order of
``metadata.attachments`` and is streamed through SHA-256 while it is read, so a mismatch is found
without trusting the sender's sizes. Nothing is stored until the whole request checks out.
"""

from __future__ import annotations

import dataclasses
import hashlib
import re
import uuid
from datetime import datetime
from typing import Any

import orjson
from aiohttp import BodyPartReader, web
from aiohttp.http_exceptions import HttpProcessingError

from adapters.kartpooshe.ebox.errors import EboxProblem
from adapters.kartpooshe.ebox.models import Attachment, AttachmentMeta, NewLetter
from gateway.identity import is_valid_legal_id, is_valid_national_code, normalize_digits

_LETTER_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_CHUNK = 65536


def valid_letter_id(letter_id: str) -> bool:
    return _LETTER_ID.fullmatch(letter_id) is not None


def recipient_box(raw: Any) -> tuple[str, str]:
    """``(owner_id, kind)`` of a protocol recipient, or 422 invalid_recipient."""
    if not isinstance(raw, dict) or not isinstance(raw.get("id"), str):
        raise EboxProblem("invalid_recipient", "recipient must be {kind, id}")
    kind, owner = raw.get("kind"), normalize_digits(raw["id"])
    if kind == "person" and is_valid_national_code(owner):
        return owner, kind
    if kind == "company" and is_valid_legal_id(owner):
        return owner, kind
    if kind not in ("person", "company"):
        raise EboxProblem("invalid_recipient", "recipient.kind must be person or company")
    raise EboxProblem("invalid_recipient", "recipient.id fails its checksum")


def _text(meta: dict[str, Any], key: str, max_len: int, *, required: bool = True) -> str:
    value = meta.get(key)
    if not isinstance(value, str) or (required and not value.strip()):
        raise EboxProblem("invalid_letter", f"{key} must be a non-empty string")
    if len(value) > max_len:
        raise EboxProblem("invalid_letter", f"{key} is longer than {max_len} characters")
    return value


def _instant(meta: dict[str, Any], key: str) -> datetime:
    value = meta.get(key)
    problem = EboxProblem("invalid_letter", f"{key} must be ISO 8601 UTC ending in Z")
    if not isinstance(value, str) or not value.endswith("Z"):
        raise problem
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        raise problem from None


def _attachment_metas(raw: Any, max_count: int) -> list[AttachmentMeta]:
    if not isinstance(raw, list):
        raise EboxProblem("invalid_letter", "attachments must be a list")
    if len(raw) > max_count:
        raise EboxProblem("invalid_letter", f"at most {max_count} attachments")
    metas = []
    for i, a in enumerate(raw):
        ok = (
            isinstance(a, dict)
            and isinstance(a.get("name"), str)
            and 0 < len(a["name"]) <= 255
            and isinstance(a.get("content_type"), str)
            and 0 < len(a["content_type"]) <= 255
            and isinstance(a.get("size"), int)
            and not isinstance(a.get("size"), bool)
            and a["size"] >= 0
            and isinstance(a.get("sha256"), str)
            and _SHA256.fullmatch(a["sha256"]) is not None
        )
        if not ok:
            raise EboxProblem(
                "invalid_letter",
                f"attachments[{i}] needs name, content_type, size >= 0 and a lowercase hex sha256",
            )
        metas.append(AttachmentMeta(i, a["name"], a["content_type"], a["size"], a["sha256"]))
    return metas


def parse_metadata(
    letter_id: str, raw: bytes, max_attachments: int
) -> tuple[NewLetter, list[AttachmentMeta]]:
    try:
        meta = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise EboxProblem("invalid_letter", "metadata is not valid JSON") from None
    if not isinstance(meta, dict):
        raise EboxProblem("invalid_letter", "metadata must be a JSON object")
    if meta.get("letter_id") != letter_id:
        raise EboxProblem("invalid_letter", "metadata.letter_id differs from the URL")
    owner_id, kind = recipient_box(meta.get("recipient"))
    agency = meta.get("agency")
    if not isinstance(agency, dict):
        raise EboxProblem("invalid_letter", "agency must be {id, name_fa, name_en}")
    try:
        agency_id = uuid.UUID(str(agency.get("id")))
    except ValueError:
        raise EboxProblem("invalid_letter", "agency.id must be a UUID") from None
    reply_allowed = meta.get("reply_allowed")
    if not isinstance(reply_allowed, bool):
        raise EboxProblem("invalid_letter", "reply_allowed must be true or false")
    content_sha256 = meta.get("content_sha256")
    if not isinstance(content_sha256, str) or _SHA256.fullmatch(content_sha256) is None:
        raise EboxProblem("invalid_letter", "content_sha256 must be 64 lowercase hex digits")
    metas = _attachment_metas(meta.get("attachments", []), max_attachments)
    letter = NewLetter(
        letter_id=letter_id,
        owner_id=owner_id,
        kind=kind,
        tracking_number=_text(meta, "tracking_number", 64),
        agency_id=agency_id,
        agency_name_fa=_text(agency, "name_fa", 300),
        agency_name_en=_text(agency, "name_en", 300, required=False),
        subject=_text(meta, "subject", 500),
        body=_text(meta, "body", 200_000, required=False),
        reply_allowed=reply_allowed,
        accepted_at=_instant(meta, "accepted_at"),
        content_sha256=content_sha256,
        attachments=(),
    )
    return letter, metas


async def _read_limited(part: BodyPartReader, budget: list[int]) -> tuple[bytes, str]:
    """The part's bytes and their SHA-256, charging ``budget[0]``; 413 past it."""
    digest = hashlib.sha256()
    chunks = []
    while True:
        chunk = await part.read_chunk(_CHUNK)
        if not chunk:
            break
        budget[0] -= len(chunk)
        if budget[0] < 0:
            raise EboxProblem("too_large", "the deposit is larger than the e-box accepts")
        digest.update(chunk)
        chunks.append(chunk)
    return b"".join(chunks), digest.hexdigest()


async def read_deposit(
    request: web.Request, letter_id: str, max_bytes: int, max_attachments: int
) -> NewLetter:
    if (request.content_length or 0) > max_bytes:
        raise EboxProblem("too_large", f"at most {max_bytes} bytes")
    if not request.content_type.startswith("multipart/"):
        raise EboxProblem("invalid_letter", "send multipart/form-data with a metadata part")
    budget = [max_bytes]
    try:
        reader = await request.multipart()
        first = await reader.next()
        if not isinstance(first, BodyPartReader) or first.name != "metadata":
            raise EboxProblem("invalid_letter", "the first part must be 'metadata'")
        raw, _ = await _read_limited(first, budget)
        letter, metas = parse_metadata(letter_id, raw, max_attachments)
        attachments: list[Attachment] = []
        while True:
            part = await reader.next()
            if part is None:
                break
            if not isinstance(part, BodyPartReader) or part.name != "attachment":
                raise EboxProblem("invalid_letter", "only 'attachment' parts may follow metadata")
            index = len(attachments)
            if index >= len(metas):
                raise EboxProblem("invalid_letter", "more attachment parts than in metadata")
            data, sha = await _read_limited(part, budget)
            expected = metas[index]
            if sha != expected.sha256 or len(data) != expected.size:
                raise EboxProblem(
                    "invalid_letter", f"attachment {index}: size or sha256 differs from metadata"
                )
            attachments.append(Attachment(expected, data))
    except (ValueError, HttpProcessingError) as exc:  # malformed framing or part headers
        raise EboxProblem(
            "invalid_letter", f"malformed multipart body: {type(exc).__name__}"
        ) from None
    if len(attachments) != len(metas):
        raise EboxProblem("invalid_letter", "fewer attachment parts than in metadata")
    return dataclasses.replace(letter, attachments=tuple(attachments))
