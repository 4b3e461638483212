"""``payam ebox …``: the reference e-box service and its operator commands.

    payam ebox [serve]                                   run the service (migrates first)
    payam ebox migrate                                   apply the e-box migrations only
    payam ebox company add-representative LEGAL_ID NATIONAL_CODE
    payam ebox company remove-representative LEGAL_ID NATIONAL_CODE
    payam ebox company representatives LEGAL_ID

The first representative of a company box comes from this command (an operator who checked the
company's papers); representatives add and remove the others in the inbox.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import sys
from typing import Any

import asyncpg
import orjson

from adapters.kartpooshe.ebox.config import load_ebox_config
from gateway.config import ConfigError
from gateway.identity import is_valid_legal_id, is_valid_national_code, normalize_digits


def _print(data: Any) -> None:
    sys.stdout.write(orjson.dumps(data, option=orjson.OPT_INDENT_2).decode() + "\n")


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="payam ebox", description="reference e-box service")
    sub = p.add_subparsers(dest="command")
    sub.add_parser("serve", help="run the service (default)")
    sub.add_parser("migrate", help="apply the e-box migrations")
    company = sub.add_parser("company", help="company boxes").add_subparsers(
        dest="action", required=True
    )
    for action in ("add-representative", "remove-representative"):
        a = company.add_parser(action)
        a.add_argument("legal_id")
        a.add_argument("national_code")
    company.add_parser("representatives").add_argument("legal_id")
    return p


async def _company(cfg_path: str | None, args: argparse.Namespace) -> Any:
    from adapters.kartpooshe.ebox.outbox import iso
    from adapters.kartpooshe.ebox.server import open_store

    cfg = load_ebox_config(cfg_path)
    legal_id = normalize_digits(args.legal_id)
    if not is_valid_legal_id(legal_id):
        raise ValueError("LEGAL_ID is not a valid 11-digit legal-entity id")
    store = await open_store(cfg)
    try:
        access = store.access
        if args.action == "representatives":
            reps = await access.representatives_of(legal_id)
            return {
                "legal_id": legal_id,
                "representatives": [
                    {"national_code": r.national_code, "since": iso(r.since)} for r in reps
                ],
            }
        code = normalize_digits(args.national_code)
        if not is_valid_national_code(code):
            raise ValueError("NATIONAL_CODE is not a valid 10-digit national code")
        if args.action == "add-representative":
            await access.ensure_box(legal_id, "company")
            added = await access.add_representative(legal_id, code, f"cli:{getpass.getuser()}")
            return {"legal_id": legal_id, "added": added}
        removed = await access.remove_representative(legal_id, code)
        return {"legal_id": legal_id, "removed": removed}
    finally:
        await store.pool.close()


def split_argv(argv: list[str]) -> tuple[str | None, list[str]] | None:
    """``(config path, e-box arguments)`` when ``argv`` is ``[--config FILE] ebox …``."""
    config, rest = None, argv
    if rest[:1] == ["--config"] and len(rest) >= 2:
        config, rest = rest[1], rest[2:]
    elif rest[:1] and rest[0].startswith("--config="):
        config, rest = rest[0].split("=", 1)[1], rest[1:]
    return (config, rest[1:]) if rest[:1] == ["ebox"] else None


def main(config_path: str | None, argv: list[str]) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.command in (None, "serve"):
            from adapters.kartpooshe.ebox.server import run

            run(load_ebox_config(config_path))
            return 0
        if args.command == "migrate":
            from adapters.kartpooshe.ebox.server import open_store

            cfg = load_ebox_config(config_path)

            async def go() -> None:
                store = await open_store(cfg)
                await store.pool.close()

            asyncio.run(go())
            _print({"migrated": True})
            return 0
        _print(asyncio.run(_company(config_path, args)))
        return 0
    except ConfigError as exc:
        sys.stderr.write(f"payam ebox: {exc}\n")
        return 2
    except (OSError, asyncpg.PostgresError, ValueError) as exc:
        sys.stderr.write(f"payam ebox: {exc}\n")
        return 1
