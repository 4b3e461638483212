"""The gateway as a real operating-system process (``payam serve``), for the reliability tests
and the soak script: start it, wait until it is ready, kill -9 it, start it again.

The SMSC simulator runs in the test's own process on a real TCP port, so killing the gateway
leaves the simulator's record of what was submitted intact.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp

from gateway.audit_chain import write_new_signing_key
from gateway.letters.evidence import write_new_evidence_key

ROOT = Path(__file__).resolve().parent.parent


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def operator(sim_port: int, host: str = "127.0.0.1", **extra: Any) -> dict[str, Any]:
    return {
        "name": "mci",
        "prefixes": ["9"],
        "host": host,
        "port": sim_port,
        "system_id": "payam",
        "password": "secret",
        "window": 10,
        "response_timeout_seconds": 2.0,
        "enquire_link_seconds": 5.0,
        **extra,
    }


def gateway_env(
    db_url: str,
    key_file: str,
    http_port: int,
    operators: list[dict[str, Any]],
    **extra: str,
) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PAYAM_")}
    # payam serve refuses to start without its signing keys: letters' evidence, audit checkpoints.
    keys = Path(key_file).parent
    write_new_evidence_key(keys / "evidence.key")
    write_new_signing_key(keys / "audit-signing.key")
    env.update(
        PAYAM_DATABASE_URL=db_url,
        PAYAM_HTTP_PORT=str(http_port),
        PAYAM_LOG_LEVEL="WARNING",
        PAYAM_SECURITY_MASTER_KEY_FILE=key_file,
        PAYAM_KARTPOOSHE_EVIDENCE_KEY_FILE=str(keys / "evidence.key"),
        PAYAM_SECURITY_AUDIT_SIGNING_KEY_FILE=str(keys / "audit-signing.key"),
        PYTHONPATH=str(ROOT),
        PAYAM_OPERATORS=json.dumps(operators),
        PAYAM_SMS_DUPLICATE_WINDOW_SECONDS="0",
        PAYAM_SMS_QUIET_HOURS_START="00:00",
        PAYAM_SMS_QUIET_HOURS_END="00:00",
        PAYAM_SMS_RETRY_BASE_SECONDS="0.2",
        PAYAM_HTTP_SHUTDOWN_DRAIN_SECONDS="1",
    )
    env.update(extra)
    return env


class GatewayProcess:
    """One ``payam serve``; stderr goes to ``log_path`` (a pipe nobody reads would block it)."""

    def __init__(self, env: dict[str, str], log_path: Path, prefix: list[str] | None = None):
        self.env = env
        self.log_path = log_path
        self.prefix = prefix or []  # e.g. ["ip", "netns", "exec", "n1"]
        self.proc: subprocess.Popen[bytes] | None = None
        self.host = env.get("PAYAM_HTTP_HOST", "127.0.0.1")
        self.port = int(env["PAYAM_HTTP_PORT"])

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log = self.log_path.open("ab")
        cmd = [*self.prefix, sys.executable, "-m", "gateway.cli", "serve"]
        self.proc = subprocess.Popen(
            cmd, env=self.env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=log
        )
        log.close()

    async def wait_ready(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        async with aiohttp.ClientSession() as s:
            while time.monotonic() < deadline:
                if self.proc is not None and self.proc.poll() is not None:
                    raise RuntimeError(f"gateway exited: {self.log_tail()}")
                try:
                    async with s.get(f"{self.url}/readyz") as r:
                        if r.status == 200:
                            return
                except aiohttp.ClientError:
                    pass
                await asyncio.sleep(0.2)
        raise RuntimeError(f"gateway not ready in {timeout} s: {self.log_tail()}")

    def kill9(self) -> None:
        """SIGKILL: no shutdown code runs, as when the machine loses power or the OOM killer
        strikes."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=30)

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def rss_mb(self) -> float:
        assert self.proc is not None
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        return 0.0

    def log_tail(self, n: int = 3000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-n:]
        except FileNotFoundError:
            return ""
