"""The quick start as a newcomer runs it: real ``payam`` processes, real HTTP, real PostgreSQL.

1. With a database URL: init, create an agency and a key with the CLI, serve, call GET /v1/me
   with a JWT minted by ``payam jwt``, then SIGTERM for a clean shutdown.
2. With no URL: the embedded PostgreSQL under a var/ directory comes up and /readyz is 200.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest

ROOT = Path(__file__).resolve().parent.parent


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PAYAM_")}
    env.update(
        PAYAM_SECURITY_MASTER_KEY_FILE=str(tmp_path / "master.key"),
        PAYAM_AUTH_ADMIN_TOKEN_FILE=str(tmp_path / "admin.token"),
        PAYAM_KARTPOOSHE_EVIDENCE_KEY_FILE=str(tmp_path / "evidence.key"),
        PYTHONPATH=str(ROOT),
    )
    env.update(extra)
    return env


def payam(env: dict[str, str], *args: str, stdin: str | None = None) -> Any:
    proc = subprocess.run(
        [sys.executable, "-m", "gateway.cli", *args],
        env=env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
    )
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout.strip()
    return json.loads(out) if out.startswith("{") else out


def _get(url: str, token: str | None = None) -> tuple[int, Any]:
    req = urllib.request.Request(url)
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, timeout=5) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def _wait_ready(base: str, proc: subprocess.Popen[str], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"payam serve exited: {proc.stderr.read() if proc.stderr else ''}")
        try:
            if _get(base + "/readyz")[0] == 200:
                return
        except OSError:
            pass
        time.sleep(0.2)
    raise AssertionError("gateway never became ready")


@pytest.fixture
def served(tmp_path: Path) -> Iterator[list[subprocess.Popen[str]]]:
    procs: list[subprocess.Popen[str]] = []
    yield procs
    for p in procs:
        if p.poll() is None:
            p.kill()
            p.wait()
        for stream in (p.stdout, p.stderr):
            if stream is not None and not stream.closed:
                stream.close()


def _serve(env: dict[str, str], procs: list[subprocess.Popen[str]]) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "gateway.cli", "serve"],
        env=env,
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    procs.append(proc)
    return proc


async def test_cli_agency_key_then_me_over_http(
    tmp_path: Path, database_url: str, pool: asyncpg.Pool, served: list[subprocess.Popen[str]]
) -> None:
    port = _free_port()
    env = _env(tmp_path, PAYAM_DATABASE_URL=database_url, PAYAM_HTTP_PORT=str(port))
    init = payam(env, "init")
    assert init["master_key_created"] is True
    assert init["admin_token_created"] is True
    assert (tmp_path / "admin.token").stat().st_mode & 0o777 == 0o600
    again = payam(env, "init")  # idempotent: nothing new
    assert again["master_key_created"] is False
    assert again["admin_token_created"] is False

    created = payam(
        env,
        "agency",
        "create",
        "--name-fa",
        "سازمان ملی استاندارد",
        "--name-en",
        "National Standards Organization",
        "--legal-id",
        "10380284790",
        "--domain",
        "isiri.gov.ir",
    )
    agency_id = created["agency"]["id"]
    assert created["agency"]["created_at_jalali"].startswith("14")
    key = payam(env, "key", "create", agency_id, "--name", "first", "--type", "live")
    number = payam(env, "number", "allocate", agency_id, "--kind", "shortcode", "--value", "404011")
    assert number["allocation"]["value"] == "404011"

    proc = _serve(env, served)
    base = f"http://127.0.0.1:{port}"
    _wait_ready(base, proc)
    token = payam(env, "jwt", key["key"]["key_id"], "--secret", "-", stdin=key["secret"] + "\n")
    status, me = _get(base + "/v1/me", token)
    assert status == 200, me
    assert me["agency"]["id"] == agency_id
    assert [n["value"] for n in me["numbers"]] == ["404011"]
    # The same token again is a replay.
    assert _get(base + "/v1/me", token)[1]["code"] == "token_replayed"
    admin = (tmp_path / "admin.token").read_text().strip()
    status, listing = _get(base + "/admin/v1/agencies", admin)
    assert status == 200
    assert listing["agencies"][0]["id"] == agency_id
    with urllib.request.urlopen(base + "/metrics", timeout=5) as resp:
        text = resp.read().decode()
    assert 'payam_http_requests_total{method="GET",route="/v1/me",status="200"}' in text

    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=30) == 0
    _, err = proc.communicate()
    # Nothing personal or secret in the service log.
    assert key["secret"] not in err
    assert token not in err
    assert admin not in err


def test_embedded_postgres_quick_start(tmp_path: Path, served: list[subprocess.Popen[str]]) -> None:
    if not list(Path("/usr/lib/postgresql").glob("*/bin/initdb")):
        pytest.fail("PostgreSQL server binaries are required (Debian package 'postgresql')")
    port, pg_port = _free_port(), _free_port()
    # Under the repository's var/ (as `make run` uses it): pytest's tmp dirs are private to root,
    # and the server runs as the postgres OS user when we are root.
    pg_dir = ROOT / "var" / f"test-embedded-{uuid.uuid4().hex[:8]}"
    env = _env(
        tmp_path,
        PAYAM_DATABASE_EMBEDDED_DIR=str(pg_dir),
        PAYAM_DATABASE_EMBEDDED_PORT=str(pg_port),
        PAYAM_HTTP_PORT=str(port),
    )
    try:
        up = payam(env, "db", "up")
        assert up["url"].endswith(f":{pg_port}/payam")
        payam(env, "init")
        proc = _serve(env, served)
        _wait_ready(f"http://127.0.0.1:{port}", proc)
        status, body = _get(f"http://127.0.0.1:{port}/readyz")
        assert (status, body["database"]) == (200, "up")
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
    finally:
        subprocess.run(
            [sys.executable, "-m", "gateway.cli", "db", "stop"],
            env=env,
            cwd=ROOT,
            capture_output=True,
            timeout=60,
            check=False,
        )
    try:
        assert payam(env, "db", "status")["running"] is False
    finally:
        shutil.rmtree(pg_dir, ignore_errors=True)
