"""The ``payam`` command: serve, migrate, local setup, and operator tasks on the database.

Operator commands (agency, key, number, admin-token) go straight to the database through the same
services as the admin API, and are audited as ``cli:<os user>``. Output is JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import os
import secrets
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import asyncpg
import jwt
import orjson

from gateway.audit_chain import load_signing_key, write_new_signing_key
from gateway.cli_audit import add_audit_commands
from gateway.cli_keys import add_keys_commands
from gateway.config import Config, ConfigError, load_config
from gateway.embedded_pg import EmbeddedPostgres, EmbeddedPostgresError
from gateway.errors import Problem
from gateway.letters.evidence import write_new_evidence_key
from gateway.numbering import KINDS, Request
from gateway.sealing import Sealer, SealError, write_new_key
from gateway.services import Services, build_services
from gateway.store import Store
from gateway.store.db import create_pool
from gateway.store.migrate import migrate


def _print(data: Any) -> None:
    sys.stdout.write(orjson.dumps(data, option=orjson.OPT_INDENT_2).decode() + "\n")


def _actor() -> str:
    return f"cli:{getpass.getuser()}"


def embedded(cfg: Config) -> EmbeddedPostgres:
    return EmbeddedPostgres(cfg.database.embedded_dir, cfg.database.embedded_port)


def database_url(cfg: Config) -> str:
    """The configured URL, or the embedded server's (started on demand) when none is set."""
    return cfg.database.url or embedded(cfg).ensure_running()


def load_sealer(cfg: Config) -> Sealer:
    path = cfg.security.master_key_file
    if not Path(path).exists():
        raise ConfigError(
            "security.master_key_file", f"{path!r} does not exist (run 'payam init' to create it)"
        )
    try:
        return Sealer.from_file(path)
    except SealError as exc:
        raise ConfigError("security.master_key_file", str(exc)) from None


async def _with_services(cfg: Config, fn: Callable[[Services], Awaitable[Any]]) -> Any:
    dsn = database_url(cfg)
    pool = await create_pool(dsn, 1, 2, cfg.database.command_timeout_seconds)
    try:
        return await fn(build_services(cfg, Store(pool), load_sealer(cfg), dsn))
    finally:
        await pool.close()


# -- commands --------------------------------------------------------------------------------
def cmd_serve(cfg: Config, args: argparse.Namespace) -> int:
    from gateway.server import run

    load_signing_key(cfg.security.audit_signing_key_file)  # fail fast, naming the key
    return run(cfg, database_url(cfg), load_sealer(cfg), args.role)


def cmd_migrate(cfg: Config, args: argparse.Namespace) -> int:
    async def go() -> list[int]:
        conn = await asyncpg.connect(database_url(cfg))
        try:
            return await migrate(conn)
        finally:
            await conn.close()

    applied = asyncio.run(go())
    _print({"applied": applied})
    return 0


def cmd_init(cfg: Config, args: argparse.Namespace) -> int:
    """Local setup, idempotent: master key, migrations, and a first admin token in a file."""
    created_key = write_new_key(cfg.security.master_key_file)
    created_evidence_key = write_new_evidence_key(cfg.kartpooshe.evidence_key_file)
    created_audit_key = write_new_signing_key(cfg.security.audit_signing_key_file)
    cmd_migrate_quiet(cfg)
    token_file = Path(cfg.auth.admin_token_file)
    have_file = token_file.exists()

    async def bootstrap(svc: Services) -> str | None:
        if have_file or await svc.store.credentials.count_active_admin_tokens() > 0:
            return None
        issued = await svc.credentials.create_admin_token(
            name="bootstrap", role="admin", actor=_actor()
        )
        return issued.value

    token = asyncio.run(_with_services(cfg, bootstrap))
    if token is not None:
        token_file.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(token_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(token + "\n")
    _print(
        {
            "master_key_file": cfg.security.master_key_file,
            "master_key_created": created_key,
            "evidence_key_file": cfg.kartpooshe.evidence_key_file,
            "evidence_key_created": created_evidence_key,
            "audit_signing_key_file": cfg.security.audit_signing_key_file,
            "audit_signing_key_created": created_audit_key,
            "admin_token_file": str(token_file) if token_file.exists() else None,
            "admin_token_created": token is not None,
        }
    )
    return 0


def cmd_migrate_quiet(cfg: Config) -> None:
    async def go() -> None:
        conn = await asyncpg.connect(database_url(cfg))
        try:
            await migrate(conn)
        finally:
            await conn.close()

    asyncio.run(go())


def cmd_db(cfg: Config, args: argparse.Namespace) -> int:
    if cfg.database.url:
        _print({"database": "external", "note": "database.url is set; nothing embedded to manage"})
        return 0
    pg = embedded(cfg)
    if args.action == "up":
        _print({"url": pg.ensure_running()})
    elif args.action == "stop":
        _print({"stopped": pg.stop()})
    else:
        _print({"running": pg.is_running(), "url": pg.url})
    return 0


def _agency_body(args: argparse.Namespace) -> dict[str, Any]:
    body: dict[str, Any] = {}
    for name in (
        "name_fa",
        "name_en",
        "legal_id",
        "contact_name",
        "contact_email",
        "contact_phone",
        "tps",
        "daily_fragment_quota",
        "callback_url",
    ):
        value = getattr(args, name, None)
        if value is not None:
            body[name] = value
    if getattr(args, "domain", None):
        body["link_domains"] = args.domain
    return body


def cmd_agency(cfg: Config, args: argparse.Namespace) -> int:
    from gateway.api.views import agency_view
    from gateway.persian import jalali

    def view(a: Any) -> dict[str, Any]:
        return {**agency_view(a), "created_at_jalali": jalali(a.created_at)}

    async def go(svc: Services) -> Any:
        if args.action == "create":
            agency, secret = await svc.agencies.create(_agency_body(args), actor=_actor())
            return {"agency": view(agency), "webhook_secret": secret}
        if args.action == "list":
            rows = await svc.store.agencies.list(status=args.status, limit=10_000, after=None)
            return {"agencies": [view(a) for a in rows]}
        agency_id = uuid.UUID(args.agency_id)
        if args.action == "show":
            return {"agency": view(await svc.agencies.get(agency_id))}
        status = "suspended" if args.action == "suspend" else "active"
        agency = await svc.agencies.set_status(agency_id, status, args.reason, actor=_actor())
        return {"agency": view(agency)}

    _print(asyncio.run(_with_services(cfg, go)))
    return 0


def cmd_key(cfg: Config, args: argparse.Namespace) -> int:
    from gateway.api.views import key_view

    async def go(svc: Services) -> Any:
        agency_id = uuid.UUID(args.agency_id)
        if args.action == "create":
            issued = await svc.credentials.create_key(
                agency_id, name=args.name, key_type=args.type, actor=_actor()
            )
            return {"key": key_view(issued.key), "secret": issued.secret}
        if args.action == "list":
            await svc.agencies.get(agency_id)
            return {"keys": [key_view(k) for k in await svc.store.credentials.list_keys(agency_id)]}
        key = await svc.credentials.revoke_key(agency_id, args.key_id, actor=_actor())
        return {"key": key_view(key)}

    _print(asyncio.run(_with_services(cfg, go)))
    return 0


def cmd_number(cfg: Config, args: argparse.Namespace) -> int:
    from gateway.api.views import allocation_view

    async def go(svc: Services) -> Any:
        if args.action == "allocate":
            agency = await svc.agencies.get(uuid.UUID(args.agency_id))
            allocation = await svc.numbering.allocate(
                agency,
                Request(args.kind, args.value, args.digits, args.parent_id, args.label),
                actor=_actor(),
            )
            return {"allocation": allocation_view(allocation)}
        if args.action == "list":
            rows = await svc.store.numbering.for_agency(
                uuid.UUID(args.agency_id), include_released=args.all
            )
            return {"allocations": [allocation_view(a) for a in rows]}
        if args.action == "release":
            released = await svc.numbering.release(args.allocation_id, actor=_actor())
            return {"released": [allocation_view(a) for a in released]}
        return {"history": [allocation_view(a) for a in await svc.numbering.history(args.value)]}

    _print(asyncio.run(_with_services(cfg, go)))
    return 0


def cmd_admin_token(cfg: Config, args: argparse.Namespace) -> int:
    from gateway.api.views import admin_token_view

    async def go(svc: Services) -> Any:
        if args.action == "create":
            issued = await svc.credentials.create_admin_token(
                name=args.name, role=args.role, actor=_actor()
            )
            return {"admin_token": admin_token_view(issued.token), "token": issued.value}
        if args.action == "list":
            return {
                "admin_tokens": [
                    admin_token_view(t) for t in await svc.store.credentials.list_admin_tokens()
                ]
            }
        token = await svc.credentials.revoke_admin_token(uuid.UUID(args.token_id), actor=_actor())
        return {"admin_token": admin_token_view(token)}

    _print(asyncio.run(_with_services(cfg, go)))
    return 0


def cmd_smsc_sim(cfg: Config, args: argparse.Namespace) -> int:
    """The SMSC simulator: a real SMPP server that answers, sends receipts and injects MO."""
    from adapters.sms import simulator

    return simulator.main(args.sim_args)


def cmd_jwt(cfg: Config, args: argparse.Namespace) -> int:
    """Mint one agency token, for trying the API with curl (each token works once)."""
    secret = sys.stdin.readline().strip() if args.secret == "-" else args.secret
    if not secret:
        sys.stderr.write("payam jwt: give the key secret with --secret SECRET or --secret -\n")
        return 2
    claims = {"iss": args.key_id, "iat": int(time.time()), "jti": secrets.token_hex(16)}
    sys.stdout.write(jwt.encode(claims, secret, algorithm="HS256") + "\n")
    return 0


def cmd_traffic(cfg: Config, args: argparse.Namespace) -> int:
    """Demo traffic for the dashboards (gateway/traffic.py); runs until stopped."""
    from gateway import traffic

    demo = asyncio.run(_with_services(cfg, traffic.setup))
    sys.stderr.write(f"payam traffic: demo agency {demo.agency_id}, {args.rate}/s\n")
    asyncio.run(
        traffic.generate(
            args.gateway,
            demo,
            rate=args.rate,
            seconds=args.seconds,
            ussd_operator=args.ussd_operator,
            ussd_secret=args.ussd_secret,
        )
    )
    return 0


def cmd_letters(cfg: Config, args: argparse.Namespace) -> int:
    """Letter settings and office-automation SMTP credentials of an agency."""

    async def go(svc: Services) -> Any:
        agency_id = uuid.UUID(args.agency_id)
        settings = svc.letter_settings
        if args.action == "settings":
            body: dict[str, Any] = {}
            if args.from_address:
                body["from_addresses"] = args.from_address
            if args.office_mailbox is not None:
                body["office_mailbox"] = args.office_mailbox
            if args.reply_webhook_url is not None:
                body["reply_webhook_url"] = args.reply_webhook_url
            if args.deemed is not None:
                body["deemed_delivery"] = (
                    "on_open" if args.deemed == "on_open" else {"after_days": int(args.deemed)}
                )
            if not body:
                await svc.agencies.get(agency_id)
                return {"settings": await settings.get(agency_id)}
            return {"settings": await settings.update(agency_id, body, actor=_actor())}
        if args.action == "smtp-credential":
            username, password = await settings.create_smtp_credential(
                agency_id, args.username, actor=_actor()
            )
            return {"username": username, "password": password}
        await settings.revoke_smtp_credential(agency_id, args.username, actor=_actor())
        return {"revoked": args.username}

    _print(asyncio.run(_with_services(cfg, go)))
    return 0


def cmd_verify_receipt(cfg: Config, args: argparse.Namespace) -> int:
    from gateway.letters.receipt_cli import verify_receipt_file

    return verify_receipt_file(args.file, args.public_key)


def cmd_phone(cfg: Config, args: argparse.Namespace) -> int:
    """A terminal phone dialling through the HTTP front or the SMSC simulator (adapters/ussd/
    phone.py)."""
    from adapters.ussd import phone

    secret = args.secret or cfg.ussd.http_secret_map().get(args.operator, "")
    if not args.sim and not secret:
        sys.stderr.write(
            f"payam phone: no secret for operator {args.operator!r}: give --secret or set "
            "ussd.http_secrets\n"
        )
        return 2
    url = args.http or f"http://{cfg.http.host}:{cfg.http.port}"
    return asyncio.run(
        phone.run(
            args.code,
            http_url=url,
            sim_url=args.sim,
            operator=args.operator,
            secret=secret,
            number=args.number,
        )
    )


# -- parser ----------------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="payam", description="Payam Iran gateway")
    p.add_argument("--config", help="TOML file (default: $PAYAM_CONFIG, else built-in defaults)")
    sub = p.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run the HTTP gateway")
    serve.set_defaults(fn=cmd_serve)
    # Set by the supervisor of http.workers > 1 (gateway/workers.py), not by people.
    serve.add_argument(
        "--role", choices=("single", "primary", "api"), default="single", help=argparse.SUPPRESS
    )
    sub.add_parser("migrate", help="apply database migrations").set_defaults(fn=cmd_migrate)
    sub.add_parser(
        "init", help="local setup: master and audit keys, migrations, first admin token"
    ).set_defaults(fn=cmd_init)
    db = sub.add_parser("db", help="the embedded development PostgreSQL")
    db.add_argument("action", choices=["up", "stop", "status"])
    db.set_defaults(fn=cmd_db)

    ag = sub.add_parser("agency", help="agencies").add_subparsers(dest="action", required=True)
    c = ag.add_parser("create")
    c.add_argument("--name-fa", dest="name_fa", required=True)
    c.add_argument("--name-en", dest="name_en", required=True)
    c.add_argument("--legal-id", dest="legal_id", required=True)
    c.add_argument("--contact-name", dest="contact_name")
    c.add_argument("--contact-email", dest="contact_email")
    c.add_argument("--contact-phone", dest="contact_phone")
    c.add_argument("--tps", type=int)
    c.add_argument("--daily-fragment-quota", dest="daily_fragment_quota", type=int)
    c.add_argument("--domain", action="append", help="allowed link domain (repeatable)")
    c.add_argument("--callback-url", dest="callback_url")
    lst = ag.add_parser("list")
    lst.add_argument("--status", choices=["active", "suspended"])
    ag.add_parser("show").add_argument("agency_id")
    for action in ("suspend", "resume"):
        s = ag.add_parser(action)
        s.add_argument("agency_id")
        s.add_argument("--reason", default="")
    for parser in (c, lst):
        parser.set_defaults(fn=cmd_agency)
    for name in ("show", "suspend", "resume"):
        ag.choices[name].set_defaults(fn=cmd_agency)

    key = sub.add_parser("key", help="agency API keys").add_subparsers(dest="action", required=True)
    kc = key.add_parser("create")
    kc.add_argument("agency_id")
    kc.add_argument("--name", required=True)
    kc.add_argument("--type", choices=["live", "test"], default="live")
    key.add_parser("list").add_argument("agency_id")
    kr = key.add_parser("revoke")
    kr.add_argument("agency_id")
    kr.add_argument("key_id")
    for name in ("create", "list", "revoke"):
        key.choices[name].set_defaults(fn=cmd_key)

    num = sub.add_parser("number", help="numbering plan").add_subparsers(
        dest="action", required=True
    )
    na = num.add_parser("allocate")
    na.add_argument("agency_id")
    na.add_argument("--kind", choices=KINDS, required=True)
    na.add_argument("--value")
    na.add_argument("--digits", type=int)
    na.add_argument("--parent-id", dest="parent_id", type=int)
    na.add_argument("--label", default="")
    nl = num.add_parser("list")
    nl.add_argument("agency_id")
    nl.add_argument("--all", action="store_true", help="include released allocations")
    num.add_parser("release").add_argument("allocation_id", type=int)
    num.add_parser("history").add_argument("value")
    for name in ("allocate", "list", "release", "history"):
        num.choices[name].set_defaults(fn=cmd_number)

    at = sub.add_parser("admin-token", help="operator tokens").add_subparsers(
        dest="action", required=True
    )
    ac = at.add_parser("create")
    ac.add_argument("--name", required=True)
    ac.add_argument("--role", choices=["admin", "viewer"], default="admin")
    at.add_parser("list")
    at.add_parser("revoke").add_argument("token_id")
    for name in ("create", "list", "revoke"):
        at.choices[name].set_defaults(fn=cmd_admin_token)

    sim = sub.add_parser(
        "smsc-sim",
        help="SMSC simulator (SMPP 3.4 server); --help for its options",
        add_help=False,
    )
    sim.add_argument("sim_args", nargs=argparse.REMAINDER)
    sim.set_defaults(fn=cmd_smsc_sim)
    app_sim = sub.add_parser(
        "app-sim",
        help="app provider simulator (pushes, citizens' sign-ins); --help for its options",
        add_help=False,
    )
    app_sim.add_argument("sim_args", nargs=argparse.REMAINDER)

    lt = sub.add_parser("letters", help="agency letter settings, SMTP credentials").add_subparsers(
        dest="action", required=True
    )
    ls = lt.add_parser("settings", help="show, or change the given fields")
    ls.add_argument("agency_id")
    ls.add_argument(
        "--from",
        dest="from_address",
        action="append",
        help="office-automation From address (repeatable; replaces the list)",
    )
    ls.add_argument("--office-mailbox", dest="office_mailbox")
    ls.add_argument("--reply-webhook-url", dest="reply_webhook_url")
    ls.add_argument("--deemed", help="on_open, or a number of days after deposit")
    lc = lt.add_parser("smtp-credential", help="create SMTP AUTH credentials (shown once)")
    lc.add_argument("agency_id")
    lc.add_argument("--username")
    lr = lt.add_parser("revoke-smtp-credential")
    lr.add_argument("agency_id")
    lr.add_argument("username")
    for name in ("settings", "smtp-credential", "revoke-smtp-credential"):
        lt.choices[name].set_defaults(fn=cmd_letters)

    vr = sub.add_parser("verify-receipt", help="verify a letter receipt offline (exit 0 = valid)")
    vr.add_argument("file", help="receipt JSON (GET /v1/letters/{id}/receipt)")
    vr.add_argument(
        "--public-key",
        dest="public_key",
        help="the platform key: PEM, base64, or the JSON of GET /v1/keys/evidence",
    )
    vr.set_defaults(fn=cmd_verify_receipt)
    ph = sub.add_parser("phone", help="a terminal phone that dials *4… (USSD)")
    ph.add_argument("code", help="what to dial, e.g. '*412#' or '*412*1#'")
    ph.add_argument("--http", help="gateway URL of the HTTP front (default: http.host:port)")
    ph.add_argument("--sim", help="SMSC simulator control URL: dial over SMPP instead")
    ph.add_argument("--operator", default="mci", help="operator name on the HTTP front")
    ph.add_argument("--secret", default="", help="its secret (default: ussd.http_secrets)")
    ph.add_argument("--number", default="09121234567", help="the phone's mobile number")
    ph.set_defaults(fn=cmd_phone)
    add_audit_commands(sub)
    add_keys_commands(sub)

    # The reference e-box service (adapters/kartpooshe/ebox): its own config section and database.
    eb = sub.add_parser(
        "ebox", help="reference e-box service (serve, migrate, company …)", add_help=False
    )
    eb.add_argument("ebox_args", nargs=argparse.REMAINDER)

    j = sub.add_parser("jwt", help="mint one agency JWT for trying the API")
    j.add_argument("key_id")
    j.add_argument("--secret", default="", help="the key secret, or - to read it from stdin")
    j.set_defaults(fn=cmd_jwt)

    tr = sub.add_parser("traffic", help="demo traffic for the dashboards (docker compose)")
    tr.add_argument("--gateway", default="http://127.0.0.1:8040", help="the gateway's base URL")
    tr.add_argument("--rate", type=float, default=5.0, help="messages per second")
    tr.add_argument("--seconds", type=float, default=None, help="stop after this long")
    tr.add_argument("--ussd-operator", default="mci", help="POST /ussd/{operator} as this one")
    tr.add_argument(
        "--ussd-secret", default="", help="its ussd.http_secrets secret (no USSD if empty)"
    )
    tr.set_defaults(fn=cmd_traffic)
    return p


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["verify-receipt"]:
        # Offline: needs no gateway configuration, database or keys of its own.
        args = build_parser().parse_args(argv)
        return cmd_verify_receipt(load_config(None, env={}), args)

    # `payam [--config FILE] ebox …`: a separate service with its own [ebox] section and its own
    # arguments (and --help); it needs no gateway configuration.
    from adapters.kartpooshe.ebox.cli import main as ebox_main
    from adapters.kartpooshe.ebox.cli import split_argv

    if (ebox_argv := split_argv(argv)) is not None:
        return ebox_main(*ebox_argv)
    if argv[:1] == ["smsc-sim"]:
        # The simulator has its own options (and needs no gateway configuration).
        from adapters.sms import simulator

        return simulator.main(argv[1:])
    if argv[:1] == ["app-sim"]:
        # The app provider simulator: its own options, no gateway configuration.
        from adapters.app import simulator as app_simulator

        return app_simulator.main(argv[1:])
    args = build_parser().parse_args(argv)
    try:
        cfg = load_config(args.config)
        fn: Callable[[Config, argparse.Namespace], int] = args.fn
        return fn(cfg, args)
    except ConfigError as exc:
        sys.stderr.write(f"payam: {exc}\n")
        return 2
    except Problem as exc:
        sys.stderr.write(orjson.dumps(exc.body(), option=orjson.OPT_INDENT_2).decode() + "\n")
        return 1
    except (EmbeddedPostgresError, OSError, asyncpg.PostgresError, ValueError) as exc:
        sys.stderr.write(f"payam: {exc}\n")
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
