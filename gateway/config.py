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
# Sections of the same file that other processes read with their own typed modules (the
# reference e-box service: adapters/kartpooshe/ebox/config.py); the gateway leaves them alone.
OTHER_SECTIONS = frozenset({"ebox"})


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
    # The gateway's own VACUUM of its queue-like tables (gateway/maintenance.py): how often it
    # looks (0: never), and from how many dead rows in one table it vacuums it.
    vacuum_seconds: float = 30.0
    vacuum_dead_rows: int = 20000


@dataclass(frozen=True, slots=True)
class HttpConfig:
    host: str = "127.0.0.1"
    port: int = 8040
    max_body_bytes: int = 1_048_576
    # Batches (JSON or CSV with up to 100,000 recipients) may be this large.
    max_batch_bytes: int = 33_554_432
    # Behind a reverse proxy, the client address comes from X-Forwarded-For only when the direct
    # peer is one of these (so a client cannot forge its address into the audit log).
    trusted_proxies: tuple[str, ...] = ()
    shutdown_drain_seconds: float = 10.0
    # Processes serving HTTP on the port (SO_REUSEPORT): one per core on a machine that does
    # nothing else. The first also runs dispatch and the SMPP binds (gateway/workers.py).
    workers: int = 1
    # Slow clients (slowloris): a connection must send a whole request head within this many
    # seconds of opening or of its last response (aiohttp's keep-alive timer), and a request
    # its whole body within this many seconds of its head, else it is closed / answered 408.
    client_timeout_seconds: float = 30.0


@dataclass(frozen=True, slots=True)
class LogConfig:
    level: str = "INFO"
    json: bool = False


@dataclass(frozen=True, slots=True)
class AuthConfig:
    # GOV.UK Notify's window: a token is valid for 30 s either side of its iat.
    iat_skew_seconds: int = 30
    admin_token_file: str = "var/admin.token"
    # Per agency API key and node: sustained requests per second and the burst above it
    # (gateway/api/ratelimit.py); 0 = no limit. Generous: quotas bound volume, this bounds
    # a runaway client. Batches carry up to 100,000 messages in one request.
    key_requests_per_second: float = 5000.0
    key_burst: int = 10000


@dataclass(frozen=True, slots=True)
class SecurityConfig:
    # 32-byte key that seals secrets the gateway must be able to use again (API key secrets for
    # HS256 verification, webhook signing secrets). Lives outside the database so a dump alone
    # cannot forge tokens.
    master_key_file: str = "var/master.key"
    # Ed25519 private key (PEM) that signs the audit log's checkpoints (docs/TRUST.md). Kept
    # outside the database: whoever can rewrite the audit table cannot forge a checkpoint.
    audit_signing_key_file: str = "var/audit-signing.key"
    # How often the chain's head is signed (a deleted tail shows up against the last one).
    audit_checkpoint_seconds: int = 300


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
class SmsConfig:
    # A message not delivered within this many hours expires unless the agency sets valid_until.
    default_validity_hours: int = 24
    # The longest valid_until an agency may ask for.
    max_validity_hours: int = 72
    # Quiet hours for `bulk` messages, Tehran wall time (HH:MM); start == end disables them.
    quiet_hours_start: str = "22:00"
    quiet_hours_end: str = "07:00"
    # Same agency, recipient and text within this window is refused as a duplicate (0 = off).
    duplicate_window_seconds: int = 600
    # Submit attempts per message for retryable errors, with exponential backoff from the base.
    max_attempts: int = 6
    retry_base_seconds: float = 2.0
    # Messages claimed from the queue per round, and how long a claim is held before another
    # node may take it back (a crashed node's claims return after this).
    claim_batch: int = 256
    lease_seconds: int = 60
    # Concurrent claim-send-record loops per node; they overlap database and SMSC round trips.
    dispatch_workers: int = 4
    # Several nodes on one database: each SMPP bind is held by one node through a lease in
    # PostgreSQL renewed every third of this many seconds; a dead node's binds move after it.
    # 0 = one node, every bind on it, no leases (gateway/leases.py).
    bind_lease_seconds: float = 0.0
    # Replies are threaded to the agency's last message to that citizen within this window.
    reply_thread_hours: int = 72
    # Appended to every non-mandatory message (Persian: "reply 11 to stop").
    opt_out_hint: str = "لغو۱۱"
    opt_out_keywords: tuple[str, ...] = ("11", "لغو", "STOP")
    opt_in_keywords: tuple[str, ...] = ("12", "START")
    opt_out_confirmation: str = (
        "ارسال پیامک‌های غیرضروری این دستگاه برای شما متوقف شد. برای فعال‌سازی ۱۲ را بفرستید."
    )
    opt_in_confirmation: str = "دریافت پیامک‌های این دستگاه برای شما دوباره فعال شد."
    # Callbacks: retried with exponential backoff on network errors, 5xx and 429 for this long.
    callback_timeout_seconds: float = 5.0
    callback_retry_hours: int = 24
    # An unmatched receipt is kept this long waiting for its submit before it is dropped; a
    # submitted message without a final receipt this long after valid_until ends as expired.
    receipt_wait_seconds: int = 600


@dataclass(frozen=True, slots=True)
class UssdConfig:
    # A dialog untouched this long is over (operators drop theirs after about 180 s).
    idle_timeout_seconds: int = 180
    # Characters per screen, counting option numbers and paging lines (MISSION §3: one screen
    # carries 160 octets; 72 Persian characters leaves room for the operator's own framing).
    page_chars_ucs2: int = 72
    page_chars_gsm7: int = 160
    # A remote screen whose agency endpoint is slower than this shows its fallback text.
    remote_timeout_seconds: float = 3.0
    # Operators allowed on POST /ussd/{operator}, each "name=secret"; the caller sends the
    # secret in the X-Payam-Ussd-Secret header. Set through PAYAM_USSD_HTTP_SECRETS in production.
    http_secrets: tuple[str, ...] = ()
    # SMPP USSD codec per operator, each "name=codec" (adapters/ussd/codec.py: "standard" is
    # SMPP 3.4 ussd_service_op + its_session_info; "vendor_session_tag" keeps the session number
    # in vendor TLV 0x1403). Operators not listed use "standard".
    smpp_codecs: tuple[str, ...] = ()
    # A push (USSN/USSR) with no confirmation from the phone this long ends as "timeout" and
    # its SMS fallback goes out; a USSR waits for the citizen's answer as long.
    push_timeout_seconds: float = 60.0
    # Menus loaded at start (adapters/ussd/menu_files.py): one JSON/YAML file per agency code
    # (412.yaml for *412#) and platform.yaml, the platform root on the bare prefix (*4#).
    # "" = none (menus come from the admin API only).
    menus_dir: str = ""

    def smpp_codec_map(self) -> dict[str, str]:
        return dict(entry.split("=", 1) for entry in self.smpp_codecs)

    def http_secret_map(self) -> dict[str, str]:
        return dict(entry.split("=", 1) for entry in self.http_secrets)


@dataclass(frozen=True, slots=True)
class OpsConfig:
    """Operators' view and controls (issue 8): metric sampling, crisis mode, SLA defaults."""

    # How often gateway/ops_metrics.py samples quota use, SLA latency and the database. Each
    # sample reads only the messages finished since the last one (gateway/delivery_window.py).
    sample_seconds: float = 30.0
    # The window (seconds) over which per-agency delivery latency and ratio are sampled.
    sample_window_seconds: int = 900
    # How often a node re-reads the operations flags (paused operators, crisis mode) that an
    # administrator may have set on another node.
    refresh_seconds: float = 1.0
    # Crisis mode (the Council's goal "reach people fast in a crisis"): the non-crisis lanes
    # together get at most this share of the operators' contract capacity; crisis has the rest.
    crisis_share: float = 0.2
    # Capacity (messages/s) assumed when no operator has a contract TPS (tps = 0).
    crisis_capacity_tps: float = 100.0
    # Default SLA (Art 9) for agencies without their own: p95 accept to delivered, and ratio.
    sla_latency_seconds: float = 60.0
    sla_delivery_ratio: float = 0.95
    # Tariff table (Art 6) for usage statements: a TOML file, see config/tariffs.example.toml.
    tariffs_file: str = ""


@dataclass(frozen=True, slots=True)
class KartpoosheConfig:
    # The e-box service (docs/KARTPOOSHE_PROTOCOL.md). Empty = letters are accepted and kept,
    # but no delivery worker runs (nothing is deposited until a base URL is configured).
    base_url: str = ""
    # Bearer token the gateway presents to the e-box, and the one the e-box presents to us.
    # From a file (preferred) or directly (PAYAM_KARTPOOSHE_*_TOKEN); the value wins if both.
    gateway_to_ebox_token_file: str = ""
    gateway_to_ebox_token: str = ""
    ebox_to_gateway_token_file: str = ""
    ebox_to_gateway_token: str = ""
    # Mail domain of the e-box: office automation writes to <national-code>@<mail_domain>.
    mail_domain: str = "ebox.payam.ir"
    # Attachments: PDF and images only (checked by magic bytes), per file and per letter.
    max_attachment_bytes: int = 10_485_760
    max_total_bytes: int = 20_971_520
    max_attachments: int = 10
    # Deposit attempts (network errors, 5xx, 429, 401) with exponential backoff; after the
    # last one the letter ends as "failed", never pending forever.
    max_attempts: int = 10
    retry_base_seconds: float = 2.0
    retry_max_seconds: float = 900.0
    request_timeout_seconds: float = 15.0
    # Deemed-delivery default for agencies that set none: days after deposit (MISSION §3).
    default_deemed_days: int = 10
    # Ed25519 platform key that signs the evidence chain (PEM, PKCS#8). `payam init` creates it.
    evidence_key_file: str = "var/evidence.key"
    # Public keys (PEM) of retired evidence keys, still published so old receipts verify.
    evidence_retired_public_key_files: tuple[str, ...] = ()
    # Platform sender of one-time login codes (a 4040 number reserved for the platform).
    otp_sender: str = "404000"
    # One-time codes per national code per hour.
    otp_max_per_hour: int = 5
    # SMTP ingestion from agencies' office automation (aiosmtpd); port 0 = off.
    smtp_host: str = "127.0.0.1"
    smtp_port: int = 0
    # TLS certificate and key for STARTTLS; empty = a self-signed pair under var/ (dev, tests).
    smtp_cert_file: str = ""
    smtp_key_file: str = ""
    # Replies to office automation by outgoing SMTP: relay host and port, envelope sender.
    reply_smtp_host: str = "127.0.0.1"
    reply_smtp_port: int = 25
    reply_from: str = "replies@ebox.payam.ir"
    # Reply deliveries (webhook, SMTP) are retried with backoff for this many hours.
    reply_retry_hours: int = 24
    # SMTP ingestion: a session that sends nothing for this long is closed (421). RFC 5321
    # §4.5.3.2.7 asks a server to wait at least 5 minutes for the next command.
    smtp_timeout_seconds: float = 300.0


@dataclass(frozen=True, slots=True)
class OperatorConfig:
    # Short name used in routing, metrics and receipts: mci, irancell, rightel, …
    name: str = ""
    # National-number prefixes (after +98) that default to this operator, e.g. "91", "990".
    prefixes: tuple[str, ...] = ()
    host: str = "127.0.0.1"
    port: int = 2775
    system_id: str = ""
    password: str = ""
    system_type: str = ""
    # Number of SMPP connections, each a transceiver ("trx") or a tx+rx pair ("tx_rx").
    binds: int = 1
    mode: str = "trx"
    window: int = 10
    # Messages per second in the operator contract (0 = no limit).
    tps: float = 0.0
    # -1 = choose per message (0 for GSM 03.38, 8 for UCS2); else force this data_coding.
    data_coding: int = -1
    # How this operator writes message ids in submit_sm_resp and in receipts.
    resp_id_format: str = "str"
    dlr_id_format: str = "str"
    status_table: str = "default"
    enquire_link_seconds: float = 30.0
    response_timeout_seconds: float = 10.0


# Link shorteners refused in SMS (gateway/link_policy.py): they hide where a link leads.
DEFAULT_SHORTENERS: tuple[str, ...] = (
    "bit.ly",
    "bitly.com",
    "tinyurl.com",
    "goo.gl",
    "t.co",
    "ow.ly",
    "is.gd",
    "v.gd",
    "buff.ly",
    "cutt.ly",
    "rebrand.ly",
    "shorturl.at",
    "tiny.cc",
    "rb.gy",
    "s.id",
    "t.ly",
    "bl.ink",
    "short.io",
    "lnkd.in",
    "tr.im",
    "shorte.st",
    "adf.ly",
    "yun.ir",
    "b2n.ir",
    "l1l.ir",
    "kutah.ir",
    "zaya.io",
)


@dataclass(frozen=True, slots=True)
class LinksConfig:
    shorteners: tuple[str, ...] = DEFAULT_SHORTENERS


@dataclass(frozen=True, slots=True)
class VerificationConfig:
    # The platform's own number: a citizen sends a code (or forwards a whole message) here.
    root_number: str = "404000"
    code_digits: int = 6
    # How long a code can be verified after its message was accepted.
    keep_days: int = 90
    # Verification attempts per citizen number per hour, on all paths together.
    attempts_per_hour: int = 10


@dataclass(frozen=True, slots=True)
class PrivacyConfig:
    # Encryption at rest and retention (issue 7 parts 4-5, docs/TRUST.md). Key-encryption keys
    # (files of 64 hex characters) that wrap the data keys: the first wraps new ones, all unwrap.
    # Empty: one KEK derived from security.master_key_file. Rotation: docs/TRUST.md.
    data_kek_files: tuple[str, ...] = ()
    # Days a text (SMS, reply) and a letter's content are kept, unless the agency has its own
    # (PUT /admin/v1/agencies/{id}/retention). Letters are legal evidence (MISSION §3): years.
    retention_sms_days: int = 30
    retention_letter_days: int = 1825
    # How often the primary process runs the purge.
    purge_seconds: int = 3600


@dataclass(frozen=True, slots=True)
class AppConfig:
    # The app channel (docs/APP_CHANNEL.md): how long a notice may wait for the provider's
    # confirmation before the next channel (SMS) is tried.
    confirm_timeout_seconds: float = 30.0
    # One push request to a provider.
    push_timeout_seconds: float = 5.0
    # Backoff between push attempts: base, doubled per attempt, capped.
    retry_base_seconds: float = 1.0
    retry_max_seconds: float = 8.0
    # How often the push worker looks for due pushes queued by other processes and nodes.
    poll_seconds: float = 0.5


@dataclass(frozen=True, slots=True)
class Config:
    database: DatabaseConfig = field(default_factory=DatabaseConfig)
    http: HttpConfig = field(default_factory=HttpConfig)
    log: LogConfig = field(default_factory=LogConfig)
    auth: AuthConfig = field(default_factory=AuthConfig)
    security: SecurityConfig = field(default_factory=SecurityConfig)
    numbering: NumberingConfig = field(default_factory=NumberingConfig)
    sms: SmsConfig = field(default_factory=SmsConfig)
    ussd: UssdConfig = field(default_factory=UssdConfig)
    ops: OpsConfig = field(default_factory=OpsConfig)
    kartpooshe: KartpoosheConfig = field(default_factory=KartpoosheConfig)
    links: LinksConfig = field(default_factory=LinksConfig)
    verification: VerificationConfig = field(default_factory=VerificationConfig)
    privacy: PrivacyConfig = field(default_factory=PrivacyConfig)
    app: AppConfig = field(default_factory=AppConfig)
    # [[operators]] tables in the file, or PAYAM_OPERATORS as a JSON array of objects.
    operators: tuple[OperatorConfig, ...] = ()


def _sections() -> dict[str, type[Any]]:
    hints = typing.get_type_hints(Config)
    return {f.name: hints[f.name] for f in dataclasses.fields(Config) if f.name != "operators"}


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
    if db.vacuum_seconds < 0:
        raise ConfigError("database.vacuum_seconds", "must be >= 0 (0 turns it off)")
    positive("database.vacuum_dead_rows", db.vacuum_dead_rows)
    if not 1 <= db.embedded_port <= 65535:
        raise ConfigError("database.embedded_port", "must be a TCP port")
    if not 0 <= http.port <= 65535:
        raise ConfigError("http.port", "must be a TCP port (0 picks a free one)")
    positive("http.max_body_bytes", http.max_body_bytes)
    if not 1 <= http.workers <= 64:
        raise ConfigError("http.workers", f"must be 1..64, got {http.workers}")
    if cfg.log.level.upper() not in {"DEBUG", "INFO", "WARNING", "ERROR"}:
        raise ConfigError("log.level", "must be DEBUG, INFO, WARNING or ERROR")
    positive("auth.iat_skew_seconds", cfg.auth.iat_skew_seconds)
    if cfg.security.audit_checkpoint_seconds < 1:
        raise ConfigError("security.audit_checkpoint_seconds", "must be at least 1")
    v = cfg.verification
    if not 4 <= v.code_digits <= 9:
        raise ConfigError("verification.code_digits", f"must be 4..9, got {v.code_digits}")
    if not v.root_number.isdigit():
        raise ConfigError("verification.root_number", "must be digits")
    positive("verification.keep_days", v.keep_days)
    positive("verification.attempts_per_hour", v.attempts_per_hour)
    positive("privacy.retention_sms_days", cfg.privacy.retention_sms_days)
    positive("privacy.retention_letter_days", cfg.privacy.retention_letter_days)
    positive("privacy.purge_seconds", cfg.privacy.purge_seconds)
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
    sms = cfg.sms
    for key in ("quiet_hours_start", "quiet_hours_end"):
        value = getattr(sms, key)
        hh, _, mm = value.partition(":")
        if not (hh.isdigit() and mm.isdigit() and int(hh) < 24 and int(mm) < 60):
            raise ConfigError(f"sms.{key}", f"expected HH:MM, got {value!r}")
    positive("sms.default_validity_hours", sms.default_validity_hours)
    if sms.max_validity_hours < sms.default_validity_hours:
        raise ConfigError("sms.max_validity_hours", "must be >= sms.default_validity_hours")
    positive("sms.max_attempts", sms.max_attempts)
    positive("sms.claim_batch", sms.claim_batch)
    positive("sms.lease_seconds", sms.lease_seconds)
    positive("http.client_timeout_seconds", cfg.http.client_timeout_seconds)
    positive("sms.callback_timeout_seconds", sms.callback_timeout_seconds)
    u = cfg.ussd
    positive("ussd.idle_timeout_seconds", u.idle_timeout_seconds)
    if not 20 <= u.page_chars_ucs2 <= 80:
        raise ConfigError("ussd.page_chars_ucs2", "one USSD screen holds 20..80 UCS2 characters")
    if not 20 <= u.page_chars_gsm7 <= 182:
        raise ConfigError("ussd.page_chars_gsm7", "one USSD screen holds 20..182 GSM7 characters")
    positive("ussd.remote_timeout_seconds", u.remote_timeout_seconds)
    for entry in u.http_secrets:
        name, _, secret = entry.partition("=")
        if not name.isidentifier() or len(secret) < 16:
            raise ConfigError(
                "ussd.http_secrets", "each entry is operator=secret, the secret 16+ characters"
            )
    for entry in u.smpp_codecs:
        name, _, codec = entry.partition("=")
        if not name.isidentifier() or codec not in ("standard", "vendor_session_tag", "vendor_ops"):
            raise ConfigError(
                "ussd.smpp_codecs",
                "each entry is operator=codec (standard, vendor_session_tag, vendor_ops)",
            )
    positive("ussd.push_timeout_seconds", u.push_timeout_seconds)
    if u.menus_dir and not Path(u.menus_dir).is_dir():
        raise ConfigError("ussd.menus_dir", f"{u.menus_dir!r} is not a directory")
    o = cfg.ops
    positive("ops.sample_seconds", o.sample_seconds)
    positive("ops.sample_window_seconds", o.sample_window_seconds)
    positive("ops.refresh_seconds", o.refresh_seconds)
    positive("ops.crisis_capacity_tps", o.crisis_capacity_tps)
    positive("ops.sla_latency_seconds", o.sla_latency_seconds)
    if not 0.0 < o.crisis_share < 1.0:
        raise ConfigError("ops.crisis_share", "must be between 0 and 1 (exclusive)")
    if not 0.0 <= o.sla_delivery_ratio <= 1.0:
        raise ConfigError("ops.sla_delivery_ratio", "must be between 0 and 1")
    app = cfg.app
    for key in ("confirm_timeout_seconds", "push_timeout_seconds", "retry_base_seconds"):
        positive(f"app.{key}", getattr(app, key))
    positive("app.poll_seconds", app.poll_seconds)
    if app.retry_max_seconds < app.retry_base_seconds:
        raise ConfigError("app.retry_max_seconds", "must be >= app.retry_base_seconds")


def _validate_kartpooshe(k: KartpoosheConfig) -> None:
    if k.base_url and not k.base_url.startswith(("http://", "https://")):
        raise ConfigError("kartpooshe.base_url", "must start with http:// or https://")
    for key in ("max_attachment_bytes", "max_total_bytes", "max_attachments", "max_attempts"):
        if getattr(k, key) <= 0:
            raise ConfigError(f"kartpooshe.{key}", "must be positive")
    if k.max_total_bytes < k.max_attachment_bytes:
        raise ConfigError("kartpooshe.max_total_bytes", "must be >= max_attachment_bytes")
    for key in ("retry_base_seconds", "retry_max_seconds", "request_timeout_seconds"):
        if getattr(k, key) <= 0:
            raise ConfigError(f"kartpooshe.{key}", "must be positive")
    if not 1 <= k.default_deemed_days <= 365:
        raise ConfigError("kartpooshe.default_deemed_days", "must be 1..365")
    if "@" in k.mail_domain or "." not in k.mail_domain:
        raise ConfigError("kartpooshe.mail_domain", "a domain name like ebox.payam.ir")
    if not k.otp_sender.isdigit():
        raise ConfigError("kartpooshe.otp_sender", "a 4040 number (digits)")
    if k.otp_max_per_hour < 1:
        raise ConfigError("kartpooshe.otp_max_per_hour", "must be >= 1")
    if not 0 <= k.smtp_port <= 65535 or not 1 <= k.reply_smtp_port <= 65535:
        raise ConfigError("kartpooshe.smtp_port", "must be a TCP port (0 = SMTP ingestion off)")
    if bool(k.smtp_cert_file) != bool(k.smtp_key_file):
        raise ConfigError("kartpooshe.smtp_key_file", "give both smtp_cert_file and smtp_key_file")
    if k.reply_retry_hours < 1:
        raise ConfigError("kartpooshe.reply_retry_hours", "must be >= 1")
    if k.smtp_timeout_seconds <= 0:
        raise ConfigError("kartpooshe.smtp_timeout_seconds", "must be positive")


def _operators(raw: Any, env: Mapping[str, str]) -> tuple[OperatorConfig, ...]:
    key = "operators"
    if f"{ENV_PREFIX}OPERATORS" in env:
        key = f"{ENV_PREFIX}OPERATORS"
        try:
            raw = json.loads(env[key])
        except json.JSONDecodeError:
            raise ConfigError(key, "expected a JSON array of operator objects") from None
    if not isinstance(raw, list) or not all(isinstance(t, dict) for t in raw):
        raise ConfigError(key, "expected an array of tables ([[operators]])")
    ops = tuple(
        _build_section(f"operators[{i}]", OperatorConfig, table, {}) for i, table in enumerate(raw)
    )
    names = [o.name for o in ops]
    for i, op in enumerate(ops):
        where = f"operators[{i}]"
        if not op.name or not op.name.isidentifier() or op.name in names[:i]:
            raise ConfigError(f"{where}.name", "a unique short name like 'mci' is required")
        if op.mode not in {"trx", "tx_rx"}:
            raise ConfigError(f"{where}.mode", "must be trx or tx_rx")
        if op.binds < 1 or op.window < 1:
            raise ConfigError(f"{where}.binds", "binds and window must be >= 1")
        for fmt_key in ("resp_id_format", "dlr_id_format"):
            if getattr(op, fmt_key) not in {"hex", "dec", "str"}:
                raise ConfigError(f"{where}.{fmt_key}", "must be hex, dec or str")
        if not all(p.isdigit() for p in op.prefixes):
            raise ConfigError(f"{where}.prefixes", "national-number prefixes are digits")
        if op.data_coding not in {-1, 0, 1, 8}:
            raise ConfigError(f"{where}.data_coding", "must be -1 (auto), 0, 1 or 8")
    return ops


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
    operators = _operators(raw.pop("operators", []), env)
    for name in OTHER_SECTIONS:
        raw.pop(name, None)
    for name, value in raw.items():
        if name not in sections:
            raise ConfigError(name, "unknown section")
        if not isinstance(value, dict):
            raise ConfigError(name, "must be a table")
    _check_env_names(env, sections)
    built = {
        name: _build_section(name, cls, raw.get(name, {}), env) for name, cls in sections.items()
    }
    cfg = Config(**built, operators=operators)
    _validate(cfg)
    _validate_kartpooshe(cfg.kartpooshe)
    return cfg


def section_fields() -> dict[str, list[str]]:
    """Every ``section -> [keys]``: used to prove the example file documents every key."""
    return {name: [f.name for f in dataclasses.fields(cls)] for name, cls in _sections().items()}


__all__ = ["Config", "ConfigError", "load_config", "section_fields"]
