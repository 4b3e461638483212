"""What a citizen may attach to a reply: PDF and images, recognised by their bytes.

The agency's office automation receives the file (through the gateway, which refuses anything
else with 422 invalid_event), so the e-box checks first and tells the citizen at once rather
than accepting a reply that could never be delivered. The type is taken from the bytes, never
from the browser's claim.
"""

from __future__ import annotations

_SIGNATURES: tuple[tuple[bytes, str], ...] = (
    (b"%PDF-", "application/pdf"),
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"GIF87a", "image/gif"),
    (b"GIF89a", "image/gif"),
    (b"II*\x00", "image/tiff"),
    (b"MM\x00*", "image/tiff"),
)


def sniff(data: bytes) -> str | None:
    """The media type the bytes are (PDF, PNG, JPEG, GIF, WebP, TIFF), else None."""
    for magic, media_type in _SIGNATURES:
        if data.startswith(magic):
            return media_type
    if len(data) >= 12 and data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    return None
