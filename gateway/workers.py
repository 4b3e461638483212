"""``payam serve`` with ``http.workers`` > 1: one primary and N-1 HTTP-only worker processes.

One Python process runs the accept path on one core; a 2-core machine has two. The primary runs
everything (HTTP, dispatchers, SMPP binds, receipt tracking, callbacks, periodic purges); the
API workers run only the HTTP API, which keeps all of its state in PostgreSQL (token ids,
idempotency keys, duplicate locks, quotas, USSD sessions), so any process may answer any
request. All of them listen on the same port with SO_REUSEPORT and the kernel spreads new
connections over them.

This supervisor starts them, restarts one that dies (with a growing pause, so a process that
cannot start does not spin), forwards SIGTERM/SIGINT so that each drains its requests, and
gives them a shared directory for prometheus-client's multiprocess mode, so that ``/metrics``
from any of them counts the requests of all of them.
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from types import FrameType

from prometheus_client import multiprocess

from gateway.config import Config
from gateway.logs import setup_logging

log = logging.getLogger(__name__)

_MAX_PAUSE = 30.0


@dataclass
class _Child:
    role: str
    proc: subprocess.Popen[bytes]
    started: float
    pause: float = 1.0


def serve_command(role: str) -> list[str]:
    """The same ``payam`` invocation (global options included) with the worker's role."""
    return [sys.executable, "-m", "gateway.cli", *sys.argv[1:], "--role", role]


def supervise(cfg: Config, dsn: str) -> int:
    setup_logging(cfg.log)
    metrics_dir = tempfile.mkdtemp(prefix="payam-metrics-")
    # The children resolve nothing again: the same database (an embedded one included) and the
    # metrics directory, which prometheus-client reads when it is imported.
    env = {**os.environ, "PAYAM_DATABASE_URL": dsn, "PROMETHEUS_MULTIPROC_DIR": metrics_dir}
    roles = ["primary"] + ["api"] * (cfg.http.workers - 1)
    stopping = False

    def stop(signum: int, _frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True
        for child in children:
            if child.proc.poll() is None:
                child.proc.send_signal(signal.SIGTERM)

    def start(role: str) -> _Child:
        return _Child(role, subprocess.Popen(serve_command(role), env=env), time.monotonic())

    children = [start(role) for role in roles]
    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    log.info("payam gateway: %d processes (1 primary, %d HTTP-only)", len(roles), len(roles) - 1)
    try:
        while not stopping:
            time.sleep(0.2)
            for i, child in enumerate(children):
                code = child.proc.poll()
                if code is None or stopping:
                    continue
                multiprocess.mark_process_dead(child.proc.pid, metrics_dir)  # type: ignore[no-untyped-call]
                # A process that ran for a while gets a fresh, short pause; one that dies at
                # once waits longer each time.
                ran = time.monotonic() - child.started
                pause = 1.0 if ran > _MAX_PAUSE else min(child.pause * 2, _MAX_PAUSE)
                log.warning(
                    "%s process exited with %s after %.0f s; restarting in %.0f s",
                    child.role,
                    code,
                    ran,
                    pause,
                )
                time.sleep(pause)
                if not stopping:
                    children[i] = start(child.role)
                    children[i].pause = pause
        deadline = time.monotonic() + cfg.http.shutdown_drain_seconds + 10
        for child in children:
            try:
                child.proc.wait(timeout=max(deadline - time.monotonic(), 0.1))
            except subprocess.TimeoutExpired:
                log.warning("%s process did not stop in time; killing it", child.role)
                child.proc.kill()
                child.proc.wait()
    finally:
        shutil.rmtree(metrics_dir, ignore_errors=True)
    return 0
