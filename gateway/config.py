"""Configuration: one TOML file plus ``PAYAM_<SECTION>_<KEY>`` environment overrides.

Read once at start into frozen, typed sections. Any unknown key, wrong type or out-of-range value
fails immediately with the dotted name of the key (``numbering.quarantine_days``), so a typo in a
deployment never silently falls back to a default.
"""

from __future__ import annotations

import dataclasses
import json
import os
import tomllib
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

CONFIG_ENV = "PAYAM_CONFIG"
ENV_PREFIX = "PAYAM_"


class ConfigError(ValueError):
    """A configuration value is missing, unknown or invalid; the message names the key."""

    def __init__(self, key: str, problem: str) -> None:
        super().__init__(f"configuration key {key!r}: {problem}")
        self.key = key


@dataclass(frozen=True, slots=True)
class DatabaseConfig:
    # An explicit URL always wins; with none, the gateway runs an embedded PostgreSQL under
    # ``embedded_dir`` (development and the quick start only).
    url: str = ""
    embedded_dir: str = "var/pg"
    embedded_port: int = 54329
    pool_min_size: int = 2
    pool_max_size: int = 10
    command_timeout_seconds: float = 10.0


@dataclass(frozen=True, slots=True)
class HttpConfig:
    host: str = "127.0.0.1"
    port: int = 8040
    max_body_bytes: int = 1_048_576
    # Behind a reverse proxy, the client address comes from X-Forwarded-For only when the direct
    # peer is one of these (so a client cannot forge its address into the audit log).
    trusted_proxies: tuple[str, ...] = ()
    shutdown_drain_seconds: float = 10.0


@dataclass(frozen=True, slots=True)
class LogConfig:
    level: str = "INFO"
    json: bool = False


@dataclass(frozen=True, slots=True)
class AuthConfig:
    # GOV.UK Notify's window: a token is valid for 30 s either side of its iat.
    iat_skew_seconds: int = 30
    admin_token_file: str = "var/admin.token"


@dataclass(frozen=True, slots=True)
class SecurityConfig:
    # 32-byte key that seals secrets the gateway must be able to use again (API key secrets for
    # HS256 verification, webhook signing secrets). Lives outside the database so a dump alone
    # cannot forge tokens.
    master_key_file: str = "var/master.key"


@dataclass(frozen=True, slots=True)
class NumberingConfig:
    shortcode_prefix: str = "4040"
    shortcode_min_digits: int = 2
    shortcode_max_digits: int = 4
    sub_number_max_digits: int = 4
    ussd_prefix: str = "*4"
    ussd_min_digits: int = 1
    ussd_max_digits: int = 3
    mask_max_length: int = 11
    quarantine_days: int = 180
    reserved_shortcodes: tuple[str, ...] = ("404000",)
    reserved_ussd_codes: tuple[str, ...] = ("*40#",)
    reserved_masks: tuple[str, ...] = (
        "PAYAM",
        "PAYAMIRAN",
        "GOV",
        "IRAN",
        "POLICE",
        "BANK",
        "ADMIN",
        "SUPPORT",
        "VERIFY",
        "SHAPARAK",
    )


@dataclass(frozen=True, slots=True)
class Config:
    database: DatabaseConfig = field(default_factory=DatabaseConfig)
    http: HttpConfig = field(default_factory=HttpConfig)
    log: LogConfig = field(default_factory=LogConfig)
    auth: AuthConfig = field(default_factory=AuthConfig)
    security: SecurityConfig = field(default_factory=SecurityConfig)
    numbering: NumberingConfig = field(default_factory=NumberingConfig)


def _sections() -> dict[str, type[Any]]:
    hints = typing.get_type_hints(Config)
    return {f.name: hints[f.name] for f in dataclasses.fields(Config)}


def _coerce(key: str, tp: Any, value: Any, from_env: bool) -> Any:
    """Convert ``value`` to the field type ``tp`` or raise ConfigError naming ``key``."""
    origin = typing.get_origin(tp)
    if tp is bool:
        if isinstance(value, bool):
            return value
        if from_env and isinstance(value, str) and value.lower() in {"1", "true", "yes", "on"}:
            return True
        if from_env and isinstance(value, str) and value.lower() in {"0", "false", "no", "off"}:
            return False
        raise ConfigError(key, f"expected true or false, got {value!r}")
    if tp is int:
        if from_env and isinstance(value, str):
            try:
                return int(value)
            except ValueError:
                raise ConfigError(key, f"expected an integer, got {value!r}") from None
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(key, f"expected an integer, got {value!r}")
        return value
    if tp is float:
        if from_env and isinstance(value, str):
            try:
                return float(value)
            except ValueError:
                raise ConfigError(key, f"expected a number, got {value!r}") from None
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(key, f"expected a number, got {value!r}")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(key, f"expected a string, got {value!r}")
        return value
    if origin is tuple:
        if from_env and isinstance(value, str):
            stripped = value.strip()
            if stripped.startswith("["):
                try:
                    value = json.loads(stripped)
                except json.JSONDecodeError:
                    raise ConfigError(
                        key, "expected a JSON list or comma-separated values"
                    ) from None
            else:
                value = [v.strip() for v in stripped.split(",") if v.strip()]
        if not isinstance(value, list | tuple) or not all(isinstance(v, str) for v in value):
            raise ConfigError(key, f"expected a list of strings, got {value!r}")
        return tuple(value)
    raise ConfigError(key, f"unsupported type {tp!r}")  # pragma: no cover - programming error


def _build_section(
    name: str, cls: type[Any], raw: Mapping[str, Any], env: Mapping[str, str]
) -> Any:
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    for key in raw:
        if key not in names:
            raise ConfigError(f"{name}.{key}", "unknown key")
    values: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        dotted = f"{name}.{f.name}"
        env_name = f"{ENV_PREFIX}{name.upper()}_{f.name.upper()}"
        if env_name in env:
            values[f.name] = _coerce(dotted, hints[f.name], env[env_name], from_env=True)
        elif f.name in raw:
            values[f.name] = _coerce(dotted, hints[f.name], raw[f.name], from_env=False)
    return cls(**values)


def _check_env_names(env: Mapping[str, str], sections: Mapping[str, type[Any]]) -> None:
    """A misspelt override (PAYAM_DATABASE_URLL) is an error, not a silent default."""
    for env_name in env:
        if not env_name.startswith(ENV_PREFIX) or env_name == CONFIG_ENV:
            continue
        rest = env_name[len(ENV_PREFIX) :].lower()
        for section, cls in sections.items():
            if rest.startswith(section + "_"):
                key = rest[len(section) + 1 :]
                if key not in {f.name for f in dataclasses.fields(cls)}:
                    raise ConfigError(f"{section}.{key}", f"unknown key (from {env_name})")


def _validate(cfg: Config) -> None:
    def positive(key: str, value: float) -> None:
        if value <= 0:
            raise ConfigError(key, f"must be positive, got {value}")

    db, http, n = cfg.database, cfg.http, cfg.numbering
    if db.url and not db.url.startswith(("postgres://", "postgresql://")):
        raise ConfigError("database.url", "must start with postgresql://")
    positive("database.pool_min_size", db.pool_min_size)
    positive("database.pool_max_size", db.pool_max_size)
    if db.pool_max_size < db.pool_min_size:
        raise ConfigError("database.pool_max_size", "must be >= database.pool_min_size")
    positive("database.command_timeout_seconds", db.command_timeout_seconds)
    if not 1 <= db.embedded_port <= 65535:
        raise ConfigError("database.embedded_port", "must be a TCP port")
    if not 0 <= http.port <= 65535:
        raise ConfigError("http.port", "must be a TCP port (0 picks a free one)")
    positive("http.max_body_bytes", http.max_body_bytes)
    if cfg.log.level.upper() not in {"DEBUG", "INFO", "WARNING", "ERROR"}:
        raise ConfigError("log.level", "must be DEBUG, INFO, WARNING or ERROR")
    positive("auth.iat_skew_seconds", cfg.auth.iat_skew_seconds)
    if not n.shortcode_prefix.isdigit():
        raise ConfigError("numbering.shortcode_prefix", "must be digits")
    if not 1 <= n.shortcode_min_digits <= n.shortcode_max_digits <= 8:
        raise ConfigError("numbering.shortcode_max_digits", "need 1 <= min <= max <= 8")
    positive("numbering.sub_number_max_digits", n.sub_number_max_digits)
    if not (n.ussd_prefix.startswith("*") and n.ussd_prefix[1:].isdigit()):
        raise ConfigError("numbering.ussd_prefix", "must be '*' followed by digits")
    if not 1 <= n.ussd_min_digits <= n.ussd_max_digits <= 6:
        raise ConfigError("numbering.ussd_max_digits", "need 1 <= min <= max <= 6")
    if not 1 <= n.mask_max_length <= 11:
        raise ConfigError("numbering.mask_max_length", "SMPP alphanumeric senders hold 1..11")
    if n.quarantine_days < 0:
        raise ConfigError("numbering.quarantine_days", "must be >= 0")


def load_config(
    path: str | os.PathLike[str] | None = None, env: Mapping[str, str] | None = None
) -> Config:
    """Load the TOML file (``path``, else $PAYAM_CONFIG, else none) and apply env overrides."""
    env = dict(os.environ) if env is None else dict(env)
    if path is None:
        path = env.get(CONFIG_ENV) or None
    raw: dict[str, Any] = {}
    if path is not None:
        p = Path(path)
        try:
            raw = tomllib.loads(p.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError(CONFIG_ENV, f"file {str(p)!r} does not exist") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(CONFIG_ENV, f"{p}: invalid TOML: {exc}") from None
    sections = _sections()
    for name, value in raw.items():
        if name not in sections:
            raise ConfigError(name, "unknown section")
        if not isinstance(value, dict):
            raise ConfigError(name, "must be a table")
    _check_env_names(env, sections)
    built = {
        name: _build_section(name, cls, raw.get(name, {}), env) for name, cls in sections.items()
    }
    cfg = Config(**built)
    _validate(cfg)
    return cfg


def section_fields() -> dict[str, list[str]]:
    """Every ``section -> [keys]``: used to prove the example file documents every key."""
    return {name: [f.name for f in dataclasses.fields(cls)] for name, cls in _sections().items()}


__all__ = ["Config", "ConfigError", "load_config", "section_fields"]
