"""The ``[ebox]`` configuration section of the reference e-box service.

Same TOML file as the gateway (``--config`` or $PAYAM_CONFIG) and the same override scheme,
``PAYAM_EBOX_<KEY>``, read once into a frozen dataclass. Unknown keys, wrong types and missing
secrets stop the service at start with the key's dotted name (``ebox.gateway_url``).
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gateway.config import CONFIG_ENV, ENV_PREFIX, ConfigError, _build_section

SECTION = "ebox"


@dataclass(frozen=True, slots=True)
class EboxConfig:
    # The e-box's own PostgreSQL database (never the gateway's: the e-box is a separate party).
    database_url: str = ""
    pool_min_size: int = 1
    pool_max_size: int = 8
    command_timeout_seconds: float = 10.0
    host: str = "127.0.0.1"
    port: int = 8050
    # Base URL of the gateway, for POST /kartpooshe/v1/events and /kartpooshe/v1/otp.
    gateway_url: str = "http://127.0.0.1:8040"
    # EBOX-PROTOCOL "Authentication": two distinct bearer secrets, 32+ characters each, from a
    # file (preferred: kept out of the config file and the environment) or directly; a value
    # wins over a file.
    gateway_to_ebox_token_file: str = ""
    gateway_to_ebox_token: str = ""
    ebox_to_gateway_token_file: str = ""
    ebox_to_gateway_token: str = ""
    # Largest deposit (metadata plus attachments); larger gets 413 too_large.
    max_deposit_bytes: int = 26_214_400
    max_attachments: int = 20
    # A citizen's reply: text length and the one attachment's size.
    reply_max_chars: int = 4000
    reply_max_attachment_bytes: int = 5_242_880
    # One-time login codes: lifetime, wrong tries allowed, and the pause before a new code.
    otp_ttl_seconds: int = 300
    otp_max_attempts: int = 5
    otp_resend_seconds: int = 60
    # A web session ends this long after login.
    session_ttl_seconds: int = 3600
    # Set when the inbox is served over HTTPS (behind a proxy): cookies get the Secure flag.
    cookie_secure: bool = False
    # Event outbox: per-request timeout and exponential backoff between tries.
    event_timeout_seconds: float = 10.0
    event_retry_base_seconds: float = 2.0
    event_retry_max_seconds: float = 300.0
    # How often the outbox looks for due events when nothing new woke it.
    event_poll_seconds: float = 1.0
    log_level: str = "INFO"
    shutdown_drain_seconds: float = 5.0


def _validate(cfg: EboxConfig) -> None:
    def positive(key: str, value: float) -> None:
        if value <= 0:
            raise ConfigError(f"{SECTION}.{key}", f"must be positive, got {value}")

    if not cfg.database_url:
        raise ConfigError(
            f"{SECTION}.database_url", "required (the e-box's own PostgreSQL database)"
        )
    if not cfg.database_url.startswith(("postgres://", "postgresql://")):
        raise ConfigError(f"{SECTION}.database_url", "must start with postgresql://")
    if not cfg.gateway_url.startswith(("http://", "https://")):
        raise ConfigError(f"{SECTION}.gateway_url", "must start with http:// or https://")
    for key in ("gateway_to_ebox_token", "ebox_to_gateway_token"):
        if len(getattr(cfg, key)) < 32:
            raise ConfigError(
                f"{SECTION}.{key}",
                f"required, 32+ characters (in ebox.{key}_file or PAYAM_EBOX_{key.upper()})",
            )
    if cfg.gateway_to_ebox_token == cfg.ebox_to_gateway_token:
        raise ConfigError(f"{SECTION}.ebox_to_gateway_token", "must differ from the other token")
    if not 0 <= cfg.port <= 65535:
        raise ConfigError(f"{SECTION}.port", "must be a TCP port (0 picks a free one)")
    if cfg.pool_max_size < cfg.pool_min_size:
        raise ConfigError(f"{SECTION}.pool_max_size", "must be >= ebox.pool_min_size")
    for key in (
        "pool_min_size",
        "command_timeout_seconds",
        "max_deposit_bytes",
        "max_attachments",
        "reply_max_chars",
        "reply_max_attachment_bytes",
        "otp_ttl_seconds",
        "otp_max_attempts",
        "session_ttl_seconds",
        "event_timeout_seconds",
        "event_retry_base_seconds",
        "event_retry_max_seconds",
        "event_poll_seconds",
    ):
        positive(key, getattr(cfg, key))
    if cfg.otp_resend_seconds < 0:
        raise ConfigError(f"{SECTION}.otp_resend_seconds", "must be >= 0")
    if cfg.log_level.upper() not in {"DEBUG", "INFO", "WARNING", "ERROR"}:
        raise ConfigError(f"{SECTION}.log_level", "must be DEBUG, INFO, WARNING or ERROR")


def _secret(cfg: EboxConfig, key: str) -> str:
    value: str = getattr(cfg, key)
    file: str = getattr(cfg, f"{key}_file")
    if value or not file:
        return value
    try:
        return Path(file).read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise ConfigError(f"{SECTION}.{key}_file", f"cannot read: {exc.strerror}") from None


def load_ebox_config(
    path: str | os.PathLike[str] | None = None, env: Mapping[str, str] | None = None
) -> EboxConfig:
    """The ``[ebox]`` table of the TOML file (``path``, else $PAYAM_CONFIG) plus env overrides."""
    env = dict(os.environ) if env is None else dict(env)
    if path is None:
        path = env.get(CONFIG_ENV) or None
    raw: dict[str, Any] = {}
    if path is not None:
        p = Path(path)
        try:
            raw = tomllib.loads(p.read_text(encoding="utf-8")).get(SECTION, {})
        except FileNotFoundError:
            raise ConfigError(CONFIG_ENV, f"file {str(p)!r} does not exist") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(CONFIG_ENV, f"{p}: invalid TOML: {exc}") from None
        if not isinstance(raw, dict):
            raise ConfigError(SECTION, "must be a table")
    names = {f.name for f in dataclasses.fields(EboxConfig)}
    prefix = f"{ENV_PREFIX}{SECTION.upper()}_"
    for env_name in env:
        if env_name.startswith(prefix) and env_name[len(prefix) :].lower() not in names:
            key = env_name[len(prefix) :].lower()
            raise ConfigError(f"{SECTION}.{key}", f"unknown key (from {env_name})")
    cfg: EboxConfig = _build_section(SECTION, EboxConfig, raw, env)
    cfg = dataclasses.replace(
        cfg,
        gateway_to_ebox_token=_secret(cfg, "gateway_to_ebox_token"),
        ebox_to_gateway_token=_secret(cfg, "ebox_to_gateway_token"),
    )
    _validate(cfg)
    return cfg


def ebox_fields() -> list[str]:
    """Every key of ``[ebox]``: used to prove the example file documents each one."""
    return [f.name for f in dataclasses.fields(EboxConfig)]
