"""The two bearer secrets of the e-box protocol, from config values or files."""

from __future__ import annotations

import hmac
from pathlib import Path

from gateway.config import ConfigError, KartpoosheConfig


def _read(value: str, file: str, key: str) -> str:
    if value:
        return value
    if not file:
        return ""
    try:
        return Path(file).read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise ConfigError(f"kartpooshe.{key}_file", f"cannot read: {exc.strerror}") from None


def gateway_to_ebox(cfg: KartpoosheConfig) -> str:
    return _read(cfg.gateway_to_ebox_token, cfg.gateway_to_ebox_token_file, "gateway_to_ebox_token")


def ebox_to_gateway(cfg: KartpoosheConfig) -> str:
    return _read(cfg.ebox_to_gateway_token, cfg.ebox_to_gateway_token_file, "ebox_to_gateway_token")


def bearer_ok(header: str | None, expected: str) -> bool:
    """Constant-time check of ``Authorization: Bearer <token>``; no token configured = refuse."""
    if not expected or not header or not header.startswith("Bearer "):
        return False
    return hmac.compare_digest(header[7:].strip().encode(), expected.encode())
