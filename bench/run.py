"""Payam Iran benchmarks (``make bench``). Every figure is a ratio to a baseline measured in the
same run on the same machine, because absolute rates on shared machines are noisy.

(a) single-message accept rate, 64 concurrent clients, vs a bare aiohttp JSON handler
(b) batch accept rate (recipients/s) vs a raw COPY of the same rows
(c) end-to-end rate (queued → delivered receipt stored) through the SMSC simulator vs the raw
    SMPP round-trip rate of the same client/simulator pair
(d) p99 accept → submitted latency of crisis messages while a bulk backlog drains
plus the gateway's RSS with the (b) backlog queued. Results go to docs/PERFORMANCE.md.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import signal
import socket
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import jwt

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from adapters.sms.esme import BindSettings, OperatorClient, OperatorSettings, Submit
from gateway.store.messages import MESSAGE_COLUMNS
from gateway.store.migrate import migrate
from tests.conftest import legal_id


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Env:
    admin_url: str
    db_url: str
    key_file: Path


def admin_url() -> str:
    url = os.environ.get("PAYAM_TEST_DATABASE_URL")
    if url:
        return url
    return "postgresql://postgres@127.0.0.1:5432/postgres"


@contextmanager
def process(
    args: list[str], env: dict[str, str] | None = None
) -> Iterator[subprocess.Popen[bytes]]:
    # stderr to a file: a pipe nobody reads fills up and freezes the process that logs.
    log_path = ROOT / "var" / "bench-logs" / f"{Path(args[-1]).name}-{time.time_ns()}.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    log_file = log_path.open("ab")
    proc = subprocess.Popen(args, env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=log_file)
    try:
        yield proc
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log_file.close()


async def wait_http(url: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    async with aiohttp.ClientSession() as s:
        while time.monotonic() < deadline:
            try:
                async with s.get(url) as r:
                    if r.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.1)
    raise RuntimeError(f"{url} never came up")


def gateway_env(
    env: Env, port: int, operators: list[dict[str, Any]] | None = None, **extra: str
) -> dict[str, str]:
    out = {k: v for k, v in os.environ.items() if not k.startswith("PAYAM_")}
    out.update(
        PAYAM_DATABASE_URL=env.db_url,
        PAYAM_HTTP_PORT=str(port),
        PAYAM_LOG_LEVEL="WARNING",
        PAYAM_SECURITY_MASTER_KEY_FILE=str(env.key_file),
        PYTHONPATH=str(ROOT),
        PAYAM_SMS_DUPLICATE_WINDOW_SECONDS="0",
        PAYAM_HTTP_MAX_BATCH_BYTES="67108864",
        PAYAM_DATABASE_POOL_MAX_SIZE="20",
        PAYAM_OPERATORS=json.dumps(operators or []),
    )
    out.update(extra)
    return out


def payam(env: dict[str, str], *args: str) -> Any:
    out = subprocess.run(
        [sys.executable, "-m", "gateway.cli", *args],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(out.stdout)


class Tokens:
    def __init__(self, key_id: str, secret: str) -> None:
        self.key_id, self.secret = key_id, secret

    def mint(self, n: int) -> list[str]:
        now = int(time.time())
        return [
            jwt.encode(
                {"iss": self.key_id, "iat": now, "jti": secrets.token_hex(12)},
                self.secret,
                algorithm="HS256",
            )
            for _ in range(n)
        ]


async def load(url: str, tokens: list[str], seconds: float, concurrency: int = 64) -> float:
    """Requests per second answered 202 by ``url`` with ``concurrency`` clients."""
    done = 0
    errors = 0
    it = iter(range(len(tokens)))
    # Scheduled an hour ahead: this measures accepting, not the dispatcher (which (c) measures).
    later = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    deadline = time.monotonic() + seconds
    conn = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=conn) as s:

        async def worker() -> None:
            nonlocal done, errors
            while time.monotonic() < deadline:
                i = next(it, None)
                if i is None:
                    return
                body = {
                    "to": f"+98912{i:07d}",
                    "text": "بازپرداخت قسط شما سررسید شده است",
                    "priority": "normal",
                    "send_at": later,
                }
                async with s.post(
                    url, json=body, headers={"Authorization": f"Bearer {tokens[i]}"}
                ) as r:
                    await r.read()
                    if r.status == 202:
                        done += 1
                    else:
                        errors += 1

        started = time.monotonic()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.monotonic() - started
    if errors:
        print(f"    ({errors} non-202 answers)")
    return done / elapsed


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


async def setup(env: Env, gw: dict[str, str], tps: int = 100_000) -> Tokens:
    agency = payam(
        gw,
        "agency",
        "create",
        "--name-fa",
        "سازمان سنجش",
        "--name-en",
        "Bench",
        "--legal-id",
        legal_id(),
        "--tps",
        str(tps),
        "--daily-fragment-quota",
        "100000000",
    )
    aid = agency["agency"]["id"]
    payam(gw, "number", "allocate", aid, "--kind", "shortcode", "--digits", "2")
    key = payam(gw, "key", "create", aid, "--name", "bench", "--type", "live")
    return Tokens(key["key"]["key_id"], key["secret"])


async def bench_a(env: Env, seconds: float, workers: int, rounds: int = 3) -> dict[str, Any]:
    """Both servers up at once, with the same number of processes on the port, measured
    alternately ``rounds`` times; medians, so that a slow spell of the shared machine hits
    both sides alike."""
    port, base_port = free_port(), free_port()
    gw = gateway_env(env, port, PAYAM_HTTP_WORKERS=str(workers))
    tokens = await setup(env, gw)
    base_rates: list[float] = []
    gw_rates: list[float] = []
    base_url = f"http://127.0.0.1:{base_port}/v1/messages"
    gw_url = f"http://127.0.0.1:{port}/v1/messages"
    with (
        process([sys.executable, "bench/bare_server.py", str(base_port), str(workers)]),
        process([sys.executable, "-m", "gateway.cli", "serve"], gw),
    ):
        await wait_http(f"http://127.0.0.1:{base_port}/healthz")
        await wait_http(f"http://127.0.0.1:{port}/readyz")
        # Warm-up, not counted: every process started and connected to the database.
        await load(base_url, tokens.mint(5000), 2)
        await load(gw_url, tokens.mint(5000), 2)
        for _ in range(rounds):
            toks = tokens.mint(int(seconds * 12000))
            base_rates.append(await load(base_url, toks, seconds))
            toks = tokens.mint(int(seconds * 6000))
            gw_rates.append(await load(gw_url, toks, seconds))
    out = {
        "workers": workers,
        "baseline_rps": statistics.median(base_rates),
        "gateway_rps": statistics.median(gw_rates),
        "ratios": [g / b for g, b in zip(gw_rates, base_rates, strict=True)],
    }
    out["ratio"] = out["gateway_rps"] / out["baseline_rps"]
    return out


async def bench_b(env: Env, total: int) -> dict[str, float]:
    port = free_port()
    gw = gateway_env(env, port)
    tokens = await setup(env, gw)
    chunk = 100_000
    later = (datetime.now(UTC) + timedelta(hours=6)).isoformat()
    bodies = []
    for start in range(0, total, chunk):
        recipients = [
            {"to": f"+98913{i:07d}", "params": {"n": str(i)}}
            for i in range(start, min(total, start + chunk))
        ]
        bodies.append(
            json.dumps(
                {"template": "قبض شماره {n} صادر شد", "send_at": later, "recipients": recipients}
            ).encode()
        )
    out: dict[str, float] = {}
    with process([sys.executable, "-m", "gateway.cli", "serve"], gw) as proc:
        await wait_http(f"http://127.0.0.1:{port}/readyz")
        accepted = 0
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=600)) as s:
            started = time.monotonic()
            for body in bodies:
                headers = {
                    "Authorization": f"Bearer {tokens.mint(1)[0]}",
                    "Content-Type": "application/json",
                }
                async with s.post(
                    f"http://127.0.0.1:{port}/v1/batches", data=body, headers=headers
                ) as r:
                    got = await r.json()
                    accepted += got["accepted"]
            elapsed = time.monotonic() - started
        out["gateway_recipients_per_s"] = accepted / elapsed
        out["rss_mb_with_backlog"] = rss_mb(proc.pid)
        out["queued"] = float(accepted)
    conn = await asyncpg.connect(env.db_url)
    try:
        # The same rows into the same tables (same columns, defaults and indexes): what the
        # batch writes, loaded the fastest way PostgreSQL offers.
        await conn.execute("CREATE TEMP TABLE copy_messages (LIKE messages INCLUDING ALL)")
        await conn.execute("CREATE TEMP TABLE copy_queue (LIKE queue INCLUDING ALL)")
        agency_id = await conn.fetchval("SELECT id FROM agencies LIMIT 1")
        now = datetime.now(UTC)
        rows = [
            (
                uuid.uuid4(),
                agency_id,
                None,
                "k",
                False,
                f"+98913{i:07d}",
                "404001",
                f"قبض شماره {i} صادر شد\nلغو۱۱",
                "ucs2",
                1,
                2,
                False,
                "scheduled",
                now + timedelta(hours=6),
                now + timedelta(hours=30),
                "",
                "",
            )
            for i in range(total)
        ]
        cols = list(MESSAGE_COLUMNS)
        queue = [(r[0], 2, agency_id, now) for r in rows]
        started = time.monotonic()
        async with conn.transaction():
            await conn.copy_records_to_table("copy_messages", records=rows, columns=cols)
            await conn.copy_records_to_table(
                "copy_queue", records=queue, columns=["message_id", "lane", "agency_id", "vt"]
            )
        out["copy_rows_per_s"] = total / (time.monotonic() - started)
    finally:
        await conn.close()
    out["ratio"] = out["gateway_recipients_per_s"] / out["copy_rows_per_s"]
    return out


async def post_job(
    port: int,
    tokens: Tokens,
    recipients: list[dict[str, str]],
    template: str,
    priority: str,
    send_at: datetime,
) -> None:
    """Send one job as batches of the API's maximum size (100,000), all due at ``send_at``."""
    async with aiohttp.ClientSession() as s:
        for off in range(0, len(recipients), 100_000):
            body = {
                "template": template,
                "priority": priority,
                "send_at": send_at.isoformat(),
                "recipients": recipients[off : off + 100_000],
            }
            headers = {"Authorization": f"Bearer {tokens.mint(1)[0]}"}
            async with s.post(
                f"http://127.0.0.1:{port}/v1/batches", json=body, headers=headers
            ) as r:
                assert r.status == 202, await r.text()


def sim_cmd(port: int) -> list[str]:
    return [
        sys.executable,
        "-m",
        "gateway.cli",
        "smsc-sim",
        "--port",
        str(port),
        "--id-format",
        "hex",
        "--dlr-delay",
        "0",
        "--log-level",
        "WARNING",
    ]


async def raw_smpp_rate(sim_port: int, n: int, binds: int, window: int) -> float:
    settings = OperatorSettings(
        name="raw",
        tps=0,
        burst=None,
        binds=(BindSettings("127.0.0.1", sim_port, "payam", "secret", window=window),) * binds,
    )

    async def ignore(_: Any) -> None:
        return None

    client = OperatorClient(settings, ignore)
    await client.start()
    await client.wait_bound(10)
    sm = "بازپرداخت قسط شما سررسید شده است".encode("utf-16-be")
    sem = asyncio.Semaphore(binds * window * 2)

    async def one(i: int) -> bool:
        async with sem:
            r = await client.submit(
                Submit(
                    source_addr="404001",
                    source_addr_ton=0,
                    source_addr_npi=0,
                    destination_addr=f"98914{i:07d}",
                    esm_class=0,
                    data_coding=8,
                    short_message=sm,
                )
            )
            return r.ok

    started = time.monotonic()
    results = await asyncio.gather(*(one(i) for i in range(n)))
    elapsed = time.monotonic() - started
    await client.stop()
    assert all(results)
    return n / elapsed


async def count_status(db_url: str, status: str) -> int:
    conn = await asyncpg.connect(db_url)
    try:
        return int(await conn.fetchval("SELECT count(*) FROM messages WHERE status = $1", status))
    finally:
        await conn.close()


def operator(sim_port: int) -> dict[str, Any]:
    return {
        "name": "mci",
        "prefixes": ["9"],
        "port": sim_port,
        "system_id": "payam",
        "password": "secret",
        "binds": 2,
        "window": 50,
        "resp_id_format": "hex",
        "dlr_id_format": "hex",
    }


async def bench_c(env: Env, n: int) -> dict[str, float]:
    sim_port, port = free_port(), free_port()
    out: dict[str, float] = {}
    with process(sim_cmd(sim_port)):
        await asyncio.sleep(1.0)
        out["raw_smpp_per_s"] = await raw_smpp_rate(sim_port, n, binds=2, window=50)
    await reset(env)
    with process(sim_cmd(sim_port)):
        await asyncio.sleep(1.0)
        gw = gateway_env(env, port, [operator(sim_port)])
        tokens = await setup(env, gw)
        start_at = datetime.now(UTC) + timedelta(seconds=25)
        recipients = [{"to": f"+98915{i:07d}"} for i in range(n)]
        with process([sys.executable, "-m", "gateway.cli", "serve"], gw):
            await wait_http(f"http://127.0.0.1:{port}/readyz")
            await post_job(
                port, tokens, recipients, "بازپرداخت قسط شما سررسید شده است", "high", start_at
            )
            while datetime.now(UTC) < start_at:
                await asyncio.sleep(0.05)
            started = time.monotonic()
            while await count_status(env.db_url, "delivered") < n:
                if time.monotonic() - started > 600:
                    raise RuntimeError("end-to-end run did not finish")
                await asyncio.sleep(0.1)
            out["end_to_end_per_s"] = n / (time.monotonic() - started)
    out["ratio"] = out["end_to_end_per_s"] / out["raw_smpp_per_s"]
    return out


async def bench_d(env: Env, backlog: int, crisis: int) -> dict[str, float]:
    sim_port, port = free_port(), free_port()
    await reset(env)
    with process(sim_cmd(sim_port)):
        await asyncio.sleep(1.0)
        gw = gateway_env(env, port, [operator(sim_port)])
        tokens = await setup(env, gw)
        start_at = datetime.now(UTC) + timedelta(seconds=30)
        with process([sys.executable, "-m", "gateway.cli", "serve"], gw):
            await wait_http(f"http://127.0.0.1:{port}/readyz")
            async with aiohttp.ClientSession() as s:
                await post_job(
                    port,
                    tokens,
                    [{"to": f"+98916{i:07d}"} for i in range(backlog)],
                    "پیام انبوه",
                    "bulk",
                    start_at,
                )
                while datetime.now(UTC) < start_at + timedelta(seconds=2):
                    await asyncio.sleep(0.05)
                ids = []
                toks = tokens.mint(crisis)
                for i in range(crisis):
                    body2 = {"to": f"+98917{i:07d}", "text": "هشدار سیل", "priority": "crisis"}
                    async with s.post(
                        f"http://127.0.0.1:{port}/v1/messages",
                        json=body2,
                        headers={"Authorization": f"Bearer {toks[i]}"},
                    ) as r:
                        ids.append(uuid.UUID((await r.json())["id"]))
                    await asyncio.sleep(0.05)
                await asyncio.sleep(3)
            conn = await asyncpg.connect(env.db_url)
            try:
                rows = await conn.fetch(
                    """SELECT extract(epoch FROM e.at - m.created_at) AS s
                       FROM messages m JOIN message_events e ON e.message_id = m.id
                       WHERE m.id = ANY($1::uuid[]) AND e.status = 'submitted'""",
                    ids,
                )
                remaining = await conn.fetchval("SELECT count(*) FROM queue WHERE lane = 3")
            finally:
                await conn.close()
    lat = sorted(float(r["s"]) for r in rows)
    return {
        "crisis_sent": float(len(lat)),
        "p50_s": statistics.median(lat),
        "p99_s": lat[max(0, int(len(lat) * 0.99) - 1)],
        "bulk_backlog_left": float(remaining),
    }


async def reset(env: Env) -> None:
    conn = await asyncpg.connect(env.db_url)
    try:
        await conn.execute(
            "TRUNCATE agencies, api_keys, jwt_replay, admin_tokens, numbering, audit_log, "
            "batches, messages, queue, message_events, message_parts, receipts_inbox, "
            "idempotency_keys, opt_outs, daily_usage, callbacks CASCADE"
        )
    finally:
        await conn.close()


def report(results: dict[str, dict[str, Any]], args: argparse.Namespace) -> str:
    a, b, c, d = (results.get(k, {}) for k in "abcd")
    a1 = results.get("a1", {})
    lines = [
        "# Performance",
        "",
        f"Measured {datetime.now(UTC):%Y-%m-%d %H:%M} UTC on this project's 2-core machine with "
        f"`{' '.join(['make bench'] + (['--', '--quick'] if args.quick else []))}` "
        "(`python -m bench.run`). Each figure is a ratio to a baseline measured in the same "
        "run; absolute rates are shown for orientation only.",
        "",
        "| benchmark | Payam Iran | baseline (same run) | ratio | target |",
        "|---|---|---|---|---|",
    ]
    for label, x in (("(a)", a), ("(a, one process each)", a1)):
        if not x:
            continue
        lines.append(
            f"| {label} single-message accept, 64 clients, {x['workers']} HTTP process(es) | "
            f"{x['gateway_rps']:.0f} req/s | {x['baseline_rps']:.0f} req/s bare aiohttp JSON "
            f"handler, {x['workers']} process(es) (medians of {len(x['ratios'])} alternating "
            f"rounds) | {x['ratio']:.2f} (per round: "
            f"{', '.join(f'{r:.2f}' for r in x['ratios'])}) | ≥ 0.5 |"
        )
    if b:
        lines.append(
            f"| (b) batch accept, {b['queued']:.0f} recipients | "
            f"{b['gateway_recipients_per_s']:.0f} recipients/s | "
            f"{b['copy_rows_per_s']:.0f} recipients/s raw COPY of the same message and "
            f"queue rows | {b['ratio']:.2f} | ≥ 0.4 |"
        )
    if c:
        lines.append(
            f"| (c) end to end, queued → receipt stored | "
            f"{c['end_to_end_per_s']:.0f} msg/s | {c['raw_smpp_per_s']:.0f} msg/s raw "
            f"SMPP round trips, same client and simulator | {c['ratio']:.2f} | ≥ 0.5 |"
        )
    if d:
        lines.append(
            f"| (d) crisis accept → submitted while {args.backlog} bulk drain | "
            f"p99 {d['p99_s']:.3f} s (p50 {d['p50_s']:.3f} s, {d['crisis_sent']:.0f} "
            f"messages; {d['bulk_backlog_left']:.0f} bulk still queued) | — | — | "
            "≤ 1 s |"
        )
    if b:
        lines.append(
            f"| RSS of the gateway with {b['queued']:.0f} queued | "
            f"{b['rss_mb_with_backlog']:.0f} MB | — | — | ≤ 500 MB |"
        )
    return "\n".join(lines) + "\n"


async def main_async(args: argparse.Namespace) -> dict[str, dict[str, Any]]:
    name = f"payam_bench_{secrets.token_hex(4)}"
    admin = admin_url()
    conn = await asyncpg.connect(admin)
    await conn.execute(f'CREATE DATABASE "{name}"')
    await conn.close()
    db_url = admin.rsplit("/", 1)[0] + "/" + name
    key_file = ROOT / "var" / "bench-master.key"
    key_file.parent.mkdir(exist_ok=True)
    if not key_file.exists():
        key_file.write_text(secrets.token_hex(32))
    env = Env(admin, db_url, key_file)
    results: dict[str, dict[str, Any]] = {}
    try:
        c2 = await asyncpg.connect(db_url)
        await migrate(c2)
        await c2.close()
        for which in args.only:
            print(f"benchmark ({which}) …", flush=True)
            if which == "a":
                # The deployment shape for a 2-core machine (http.workers = 2), and one
                # process each, for comparison.
                results["a"] = await bench_a(env, args.seconds, workers=2)
                print(f"  {results['a']}", flush=True)
                await reset(env)
                results["a1"] = await bench_a(env, args.seconds, workers=1)
                which = "a1"
            elif which == "b":
                results["b"] = await bench_b(env, args.recipients)
            elif which == "c":
                results["c"] = await bench_c(env, args.end_to_end)
            elif which == "d":
                results["d"] = await bench_d(env, args.backlog, args.crisis)
            print(f"  {results[which]}", flush=True)
            await reset(env)
    finally:
        conn = await asyncpg.connect(admin)
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await conn.close()
    return results


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--quick", action="store_true", help="small sizes, for a smoke run")
    p.add_argument("--only", default="abcd")
    p.add_argument("--write", action="store_true", help="write docs/PERFORMANCE.md")
    args = p.parse_args()
    args.seconds = 5.0 if args.quick else 10.0
    args.recipients = 100_000 if args.quick else 1_000_000
    args.end_to_end = 5_000 if args.quick else 30_000
    args.backlog = 20_000 if args.quick else 200_000
    args.crisis = 40 if args.quick else 100
    results = asyncio.run(main_async(args))
    text = report(results, args)
    print(text)
    if args.write:
        (ROOT / "docs" / "PERFORMANCE.md").write_text(text, encoding="utf-8")


if __name__ == "__main__":
    main()
