"""Letter attachments: PDF and images only, recognised by their magic bytes.

The declared Content-Type is a claim of the sender; what the citizen's device will open is
decided by the bytes. So the type is sniffed from the first bytes and an attachment whose
bytes are not PDF, PNG, JPEG, GIF, WebP or TIFF is refused, as is one whose declared type says
something else than its bytes (an executable renamed .pdf).
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from dataclasses import dataclass
from urllib.parse import unquote

from gateway.errors import Problem

ALLOWED_TYPES = (
    "application/pdf",
    "image/png",
    "image/jpeg",
    "image/gif",
    "image/webp",
    "image/tiff",
)
_ALIASES = {
    "image/jpg": "image/jpeg",
    "image/pjpeg": "image/jpeg",
    "application/x-pdf": "application/pdf",
}
_UNSAFE = re.compile(r"[\x00-\x1f\x7f/\\:*?\"<>|]")
# Bidirectional controls and invisible characters: "invoice<U+202E>fdp.exe" shows as
# "invoiceexe.pdf" (Unicode TR36 §2.3, "bidirectional text spoofing"). ZWNJ (U+200C) stays:
# Persian spelling needs it (می‌خواهم).
_INVISIBLE = re.compile("[\u061c\u200b\u200d-\u200f\u202a-\u202e\u2060-\u2069\ufeff]")
MAX_NAME = 200


def sniff(data: bytes) -> str | None:
    """The media type the bytes are, among ALLOWED_TYPES, else None."""
    if data.startswith(b"%PDF-"):
        return "application/pdf"
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if data.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if data.startswith((b"GIF87a", b"GIF89a")):
        return "image/gif"
    if len(data) >= 12 and data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    if data.startswith((b"II*\x00", b"MM\x00*")):
        return "image/tiff"
    return None


def safe_name(raw: str, index: int) -> str:
    """A file name without directories or control characters, at most 200 characters."""
    # Some clients (aiohttp among them) percent-encode non-ASCII names in Content-Disposition.
    if "%" in raw:
        raw = unquote(raw)
    name = unicodedata.normalize("NFC", raw).replace("\\", "/").rsplit("/", 1)[-1]
    name = _UNSAFE.sub("_", _INVISIBLE.sub("", name)).strip(" .")
    if len(name) > MAX_NAME:  # keep the extension of a long name
        _, dot, ext = name.rpartition(".")
        ext = dot + ext if dot and len(ext) <= 10 else ""
        name = name[: MAX_NAME - len(ext)].rstrip(" .") + ext
    return name or f"attachment-{index + 1}"


@dataclass(frozen=True, slots=True)
class Attachment:
    name: str
    content_type: str
    data: bytes
    sha256: str

    @property
    def size(self) -> int:
        return len(self.data)

    def meta(self) -> dict[str, object]:
        return {
            "name": self.name,
            "content_type": self.content_type,
            "size": self.size,
            "sha256": self.sha256,
        }


def check_attachment(
    name: str, declared: str, data: bytes, index: int, max_bytes: int
) -> Attachment:
    label = f"attachment {index + 1}"
    if not data:
        raise Problem("invalid_attachment", f"{label} is empty")
    if len(data) > max_bytes:
        raise Problem("attachment_too_large", f"{label}: at most {max_bytes} bytes")
    actual = sniff(data)
    if actual is None:
        raise Problem(
            "unsupported_attachment", f"{label}: only PDF and images (PNG, JPEG, GIF, WebP, TIFF)"
        )
    declared = _ALIASES.get(declared.lower().strip(), declared.lower().strip())
    if declared and declared not in ("application/octet-stream", actual):
        raise Problem(
            "unsupported_attachment", f"{label}: declared {declared} but the content is {actual}"
        )
    return Attachment(safe_name(name, index), actual, data, hashlib.sha256(data).hexdigest())


def check_total(attachments: list[Attachment], max_count: int, max_total: int) -> None:
    if len(attachments) > max_count:
        raise Problem("too_many_attachments", f"at most {max_count} attachments")
    total = sum(a.size for a in attachments)
    if total > max_total:
        raise Problem("attachment_too_large", f"at most {max_total} bytes of attachments in all")
