"""``payam audit verify|checkpoint``: the tamper-evident audit log from the command line."""

from __future__ import annotations

import argparse
import asyncio
import sys
from typing import Any

import orjson

from gateway import audit_chain
from gateway.config import Config
from gateway.store import Store
from gateway.store.db import create_pool


async def _with_store(cfg: Config, fn: Any) -> Any:
    from gateway.cli import database_url

    pool = await create_pool(database_url(cfg), 1, 2, cfg.database.command_timeout_seconds)
    try:
        return await fn(Store(pool))
    finally:
        await pool.close()


def cmd_audit(cfg: Config, args: argparse.Namespace) -> int:
    key = audit_chain.load_signing_key(cfg.security.audit_signing_key_file)
    if args.action == "checkpoint":
        made = asyncio.run(_with_store(cfg, lambda s: audit_chain.checkpoint(s, key)))
        sys.stdout.write(orjson.dumps({"checkpoint_id": made}).decode() + "\n")
        return 0
    report: audit_chain.Report = asyncio.run(
        _with_store(cfg, lambda s: audit_chain.verify(s, key.public_key()))
    )
    out = {
        "ok": report.ok,
        "rows": report.rows,
        "checkpoints": report.checkpoints,
        "findings": [
            {
                "kind": f.kind,
                "row_id": f.row_id,
                "checkpoint_id": f.checkpoint_id,
                "message": f.message,
            }
            for f in report.findings
        ],
    }
    sys.stdout.write(orjson.dumps(out, option=orjson.OPT_INDENT_2).decode() + "\n")
    for f in report.findings:
        sys.stderr.write(f"payam audit: {f.message}\n")
    return 0 if report.ok else 3


def add_audit_commands(sub: Any) -> None:
    au = sub.add_parser("audit", help="the tamper-evident audit log").add_subparsers(
        dest="action", required=True
    )
    au.add_parser(
        "verify", help="check the hash chain and signed checkpoints; exit 3 when tampered"
    ).set_defaults(fn=cmd_audit)
    au.add_parser("checkpoint", help="sign the chain's head now").set_defaults(fn=cmd_audit)
