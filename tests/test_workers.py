"""``payam serve`` with ``http.workers`` = 2, as a real process tree: a supervisor, a primary and an
HTTP-only worker on one port; /metrics from either counts the requests of both; a worker that is
killed comes back; SIGTERM stops them all."""

from __future__ import annotations

import re
import signal
import subprocess
import time
import urllib.request
from pathlib import Path

from tests.test_quickstart import _env, _free_port, _get, _serve, _wait_ready, payam, served

__all__ = ["served"]  # the fixture, imported so that pytest finds it here


def _children(pid: int) -> set[int]:
    out = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout
    return {int(p) for p in out.split()}


def _wait_children(pid: int, n: int, timeout: float = 30) -> set[int]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        kids = _children(pid)
        if len(kids) == n:
            return kids
        time.sleep(0.2)
    raise AssertionError(f"expected {n} worker processes, have {_children(pid)}")


def _healthz_count(base: str) -> float:
    with urllib.request.urlopen(base + "/metrics", timeout=5) as resp:
        text = resp.read().decode()
    m = re.search(
        r'^payam_http_requests_total\{method="GET",route="/healthz",status="200"\} (\S+)$',
        text,
        re.M,
    )
    return float(m.group(1)) if m else 0.0


def test_two_workers_share_port_metrics_and_restart(
    tmp_path: Path, database_url: str, served: list[subprocess.Popen[str]]
) -> None:
    port = _free_port()
    env = _env(
        tmp_path,
        PAYAM_DATABASE_URL=database_url,
        PAYAM_HTTP_PORT=str(port),
        PAYAM_HTTP_WORKERS="2",
        PAYAM_HTTP_SHUTDOWN_DRAIN_SECONDS="1",
    )
    payam(env, "init")
    base = f"http://127.0.0.1:{port}"
    supervisor = _serve(env, served)
    _wait_ready(base, supervisor)
    first = _wait_children(supervisor.pid, 2)

    # urllib opens a new connection per request, so the kernel spreads them over both.
    for _ in range(40):
        assert _get(base + "/healthz")[0] == 200
    # Whichever process answers the scrape, it counts the requests of both.
    assert [_healthz_count(base) for _ in range(6)] == [40.0] * 6

    # An HTTP-only worker killed outright is replaced; the port keeps answering meanwhile.
    (api_worker,) = [p for p in first if b"api" in Path(f"/proc/{p}/cmdline").read_bytes()]
    subprocess.run(["kill", "-9", str(api_worker)], check=True)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        kids = _children(supervisor.pid)
        if len(kids) == 2 and api_worker not in kids:
            break
        time.sleep(0.2)
    else:
        raise AssertionError(f"worker not replaced: {_children(supervisor.pid)}")
    _wait_ready(base, supervisor)
    for _ in range(20):
        assert _get(base + "/healthz")[0] == 200

    supervisor.send_signal(signal.SIGTERM)
    assert supervisor.wait(timeout=60) == 0
    assert _children(supervisor.pid) == set()
