"""``payam keys …`` and ``payam privacy purge``: data keys, KEK rotation and the retention purge
from the command line (docs/TRUST.md, "Encryption at rest" and "Retention")."""

from __future__ import annotations

import argparse
import asyncio
import sys
from datetime import UTC, datetime
from typing import Any

import orjson

from gateway.config import Config
from gateway.sealing import write_new_key
from gateway.services import Services
from gateway.vault import rewrap_all


def _print(data: Any) -> None:
    sys.stdout.write(orjson.dumps(data, option=orjson.OPT_INDENT_2).decode() + "\n")


def _run(cfg: Config, fn: Any) -> Any:
    from gateway.cli import _with_services

    return asyncio.run(_with_services(cfg, fn))


def cmd_keys(cfg: Config, args: argparse.Namespace) -> int:
    if args.action == "new-kek":
        if not write_new_key(args.file):
            sys.stderr.write(f"payam keys: {args.file} exists; not overwritten\n")
            return 2
        _print({"file": args.file, "created": True})
        return 0

    async def status(svc: Services) -> dict[str, Any]:
        assert svc.store.vault is not None
        ring = svc.store.vault.keyring
        counts = await svc.store.data_keys.kek_counts()
        return {
            "current_kek": ring.current,
            "held_keks": sorted(ring.ids),
            "data_keys_by_kek": counts,
            "unreadable_here": sorted(k for k in counts if k not in ring.ids),
        }

    async def rotate(svc: Services) -> dict[str, Any]:
        assert svc.store.vault is not None
        ring = svc.store.vault.keyring
        done = await rewrap_all(svc.store.data_keys, ring)
        return {"rewrapped": done, **await status(svc)}

    out = _run(cfg, rotate if args.action == "rotate-master" else status)
    _print(out)
    return 0 if not out["unreadable_here"] else 3


def cmd_privacy(cfg: Config, args: argparse.Namespace) -> int:
    async def purge(svc: Services) -> dict[str, int]:
        r = await svc.privacy.purge(datetime.now(UTC))
        return {
            "messages": r.messages,
            "replies": r.replies,
            "letters": r.letters,
            "keys_shredded": r.keys_shredded,
        }

    _print(_run(cfg, purge))
    return 0


def add_keys_commands(sub: Any) -> None:
    k = sub.add_parser("keys", help="data keys and their key-encryption keys").add_subparsers(
        dest="action", required=True
    )
    k.add_parser("status", help="data keys per KEK; which KEKs this config holds")
    k.add_parser(
        "rotate-master",
        help="re-wrap every data key under the first of privacy.data_kek_files (online)",
    )
    nk = k.add_parser("new-kek", help="write a new KEK file (64 hex characters, mode 0600)")
    nk.add_argument("file")
    for p in k.choices.values():
        p.set_defaults(fn=cmd_keys)
    pv = sub.add_parser("privacy", help="retention").add_subparsers(dest="action", required=True)
    pv.add_parser("purge", help="run the retention purge now").set_defaults(fn=cmd_privacy)
