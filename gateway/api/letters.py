"""Agency routes for letters to the e-box: send (multipart), read with evidence, receipt,
replies; and the public evidence keys. docs/KARTPOOSHE.md is the integrator's guide."""

from __future__ import annotations

import uuid

import orjson
from aiohttp import BodyPartReader, web
from aiohttp.http_exceptions import HttpProcessingError

from gateway.api.http import agency_auth, json_response, query_int, services
from gateway.errors import Problem
from gateway.letters.attachments import Attachment, check_attachment, check_total
from gateway.letters.chain import utc_iso
from gateway.letters.service import Draft, letter_view, parse_metadata, request_digest
from gateway.letters.tracking_numbers import parse_tracking
from gateway.store.letters import LetterReply, StoredAttachment

# 100,000 characters of body, \u-escaped by some JSON encoders, fit in this.
_METADATA_LIMIT = 1024 * 1024


def _letter_id(request: web.Request) -> uuid.UUID:
    try:
        return uuid.UUID(request.match_info["letter_id"])
    except ValueError:
        raise Problem("not_found", "no such letter") from None


async def _read_part(part: BodyPartReader, limit: int, what: str) -> bytes:
    """Read one part, refusing it as soon as it passes ``limit`` (never buffer more)."""
    chunks: list[bytes] = []
    size = 0
    while chunk := await part.read_chunk(65536):
        size += len(chunk)
        if size > limit:
            raise Problem("attachment_too_large", f"{what}: at most {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


async def _read_letter(request: web.Request) -> tuple[bytes, Draft, list[Attachment]]:
    cfg = services(request).config.kartpooshe
    if request.content_type != "multipart/form-data":
        raise Problem(
            "malformed_multipart", f"expected multipart/form-data, got {request.content_type}"
        )
    try:
        reader = await request.multipart()
    except (ValueError, AssertionError) as exc:
        raise Problem("malformed_multipart", str(exc)) from None
    metadata: bytes | None = None
    attachments: list[Attachment] = []
    total = 0
    while True:
        try:
            part = await reader.next()
        except HttpProcessingError:
            # aiohttp's header parser refuses a part header (control characters, bad quoting).
            raise Problem("malformed_multipart", "a part's headers are malformed") from None
        except (ValueError, AssertionError) as exc:
            raise Problem("malformed_multipart", str(exc)[:200]) from None
        if part is None:
            break
        if not isinstance(part, BodyPartReader):
            raise Problem("malformed_multipart", "nested multipart is not accepted")
        if part.name == "metadata":
            if metadata is not None:
                raise Problem("malformed_multipart", "one 'metadata' part only")
            metadata = await _read_part(part, _METADATA_LIMIT, "metadata")
        elif part.name == "attachment":
            if len(attachments) >= cfg.max_attachments:
                raise Problem("too_many_attachments", f"at most {cfg.max_attachments}")
            index = len(attachments)
            data = await _read_part(part, cfg.max_attachment_bytes, f"attachment {index + 1}")
            total += len(data)
            if total > cfg.max_total_bytes:
                raise Problem("attachment_too_large", f"at most {cfg.max_total_bytes} bytes in all")
            attachments.append(
                check_attachment(
                    part.filename or "",
                    part.headers.get("Content-Type", ""),
                    data,
                    index,
                    cfg.max_attachment_bytes,
                )
            )
        else:
            raise Problem("malformed_multipart", f"unknown part {part.name!r}")
    if metadata is None:
        raise Problem("malformed_multipart", "the 'metadata' part (application/json) is missing")
    try:
        body = orjson.loads(metadata)
    except orjson.JSONDecodeError as exc:
        raise Problem("malformed_json", f"metadata: {exc}") from None
    check_total(attachments, cfg.max_attachments, cfg.max_total_bytes)
    return metadata, parse_metadata(body), attachments


async def send_letter(request: web.Request) -> web.Response:
    """POST /v1/letters: accept one letter; 202 only after it is committed."""
    principal = await agency_auth(request)
    svc = services(request)
    metadata, draft, attachments = await _read_letter(request)
    key = request.headers.get("Idempotency-Key")
    if key is None:
        letter, created = await svc.letters.accept(
            principal.agency, draft, attachments, source="api", is_test=principal.is_test
        )
    else:
        letter, created = await svc.letters.accept_idempotent(
            principal.agency,
            draft,
            attachments,
            key,
            request_digest(metadata, attachments),
            is_test=principal.is_test,
        )
    metas = [
        StoredAttachment(i, a.name, a.content_type, a.size, a.sha256, b"")
        for i, a in enumerate(attachments)
    ]
    return json_response(letter_view(letter, metas, None), status=202 if created else 200)


async def get_letter(request: web.Request) -> web.Response:
    """GET /v1/letters/{letter_id}: status and the evidence chain (the owner agency only)."""
    principal = await agency_auth(request)
    svc = services(request)
    letter = await svc.letters.get(principal.agency.id, _letter_id(request))
    return json_response(await svc.letters.view(letter))


async def get_by_tracking(request: web.Request) -> web.Response:
    """GET /v1/letters/tracking/{tracking_number}: the same, by tracking number."""
    principal = await agency_auth(request)
    svc = services(request)
    tracking = parse_tracking(request.match_info["tracking_number"])
    if tracking is None:
        raise Problem("invalid_tracking_number", "check the number: its check digit does not match")
    letter = await svc.store.letters.by_tracking(principal.agency.id, tracking)
    if letter is None:
        raise Problem("not_found", "no such letter")
    return json_response(await svc.letters.view(letter))


async def get_receipt(request: web.Request) -> web.Response:
    """GET /v1/letters/{letter_id}/receipt: a self-contained, offline-verifiable receipt."""
    principal = await agency_auth(request)
    svc = services(request)
    letter = await svc.letters.get(principal.agency.id, _letter_id(request))
    return json_response(await svc.letters.receipt(letter, principal.agency))


def reply_view(
    r: LetterReply, tracking: str, attachments: list[StoredAttachment]
) -> dict[str, object]:
    return {
        "id": str(r.id),
        "cursor": str(r.seq),
        "letter_id": str(r.letter_id),
        "tracking_number": tracking,
        "reply_id": r.reply_id,
        "text": r.text,
        "actor": {"kind": r.actor_kind},
        "content_sha256": r.content_sha256,
        "attachments": [a.meta() for a in attachments],
        "replied_at": utc_iso(r.replied_at),
        "received_at": utc_iso(r.received_at),
    }


async def list_replies(request: web.Request) -> web.Response:
    """GET /v1/letters/replies?after=CURSOR&limit=N: citizens' replies, oldest first."""
    principal = await agency_auth(request)
    store = services(request).store
    after = query_int(request, "after", 0, 0, 2**62)
    limit = query_int(request, "limit", 100, 1, 500)
    rows = await store.letters.replies(principal.agency.id, after, limit)
    files = await store.letters.reply_attachments([r.id for r in rows])
    trackings: dict[uuid.UUID, str] = {}
    for r in rows:
        if r.letter_id not in trackings:
            letter = await store.letters.get(r.letter_id, principal.agency.id)
            trackings[r.letter_id] = letter.tracking_number if letter else ""
    items = [reply_view(r, trackings[r.letter_id], files.get(r.id, [])) for r in rows]
    return json_response(
        {
            "replies": items,
            "next_cursor": items[-1]["cursor"] if items else str(after),
        }
    )


async def evidence_keys(request: web.Request) -> web.Response:
    """GET /v1/keys/evidence: the platform's public evidence keys (no authentication)."""
    signer = services(request).letters.chain.signer
    return json_response({"keys": [k.view() for k in signer.published()]})


def register(app: web.Application) -> None:
    app.router.add_post("/v1/letters", send_letter)
    app.router.add_get("/v1/letters/replies", list_replies)
    app.router.add_get("/v1/letters/tracking/{tracking_number}", get_by_tracking)
    app.router.add_get("/v1/letters/{letter_id}", get_letter)
    app.router.add_get("/v1/letters/{letter_id}/receipt", get_receipt)
    app.router.add_get("/v1/keys/evidence", evidence_keys)
