"""``payam ebox`` as an operator runs it: real processes, real HTTP, the e-box's real database."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from tests.conftest import legal_id
from tests.ebox_harness import (  # noqa: F401  (fixtures)
    E2G,
    G2E,
    deposit,
    ebox_database_url,
    letter_metadata,
    national_code,
)

ROOT = Path(__file__).resolve().parent.parent


def _env(database_url: str, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PAYAM_")}
    env.update(
        PYTHONPATH=str(ROOT),
        PAYAM_EBOX_DATABASE_URL=database_url,
        PAYAM_EBOX_GATEWAY_TO_EBOX_TOKEN=G2E,
        PAYAM_EBOX_EBOX_TO_GATEWAY_TOKEN=E2G,
    )
    env.update(extra)
    return env


def payam_ebox(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "gateway.cli", "ebox", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
    )


def test_company_add_representative(ebox_database_url: str) -> None:
    env = _env(ebox_database_url)
    company, person = legal_id(), national_code(5150)
    proc = payam_ebox(env, "company", "add-representative", company, person)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == {"legal_id": company, "added": True}
    again = payam_ebox(env, "company", "add-representative", company, person)
    assert json.loads(again.stdout)["added"] is False
    listed = json.loads(payam_ebox(env, "company", "representatives", company).stdout)
    assert [r["national_code"] for r in listed["representatives"]] == [person]
    bad = payam_ebox(env, "company", "add-representative", "10380284791", person)
    assert bad.returncode == 1
    assert "LEGAL_ID" in bad.stderr


def test_config_file_and_help(ebox_database_url: str, tmp_path: Path) -> None:
    toml = tmp_path / "payam.toml"
    toml.write_text(
        f'[http]\nport = 8041\n[ebox]\ndatabase_url = "{ebox_database_url}"\n'
        f'gateway_to_ebox_token = "{G2E}"\nebox_to_gateway_token = "{E2G}"\n'
    )
    env = {k: v for k, v in _env(ebox_database_url).items() if not k.startswith("PAYAM_")}
    company = legal_id()
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "gateway.cli",
            "--config",
            str(toml),
            "ebox",
            "company",
            "representatives",
            company,
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == {"legal_id": company, "representatives": []}
    helped = payam_ebox(env, "--help")
    assert helped.returncode == 0
    assert "add-representative" in payam_ebox(env, "company", "--help").stdout


@pytest.mark.parametrize(
    ("extra", "key"),
    [
        ({"PAYAM_EBOX_GATEWAY_TO_EBOX_TOKEN": ""}, "ebox.gateway_to_ebox_token"),
        ({"PAYAM_EBOX_DATABASE_URL": ""}, "ebox.database_url"),
    ],
)
def test_missing_settings_fail_fast(
    ebox_database_url: str, extra: dict[str, str], key: str
) -> None:
    proc = payam_ebox(_env(ebox_database_url, **extra), "serve")
    assert proc.returncode == 2
    assert key in proc.stderr


async def test_serve_deposit_metrics_and_clean_stop(ebox_database_url: str) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = _env(ebox_database_url, PAYAM_EBOX_PORT=str(port))
    proc = subprocess.Popen(  # noqa: ASYNC220 (the server runs apart; only its start blocks)
        [sys.executable, "-m", "gateway.cli", "ebox"],
        env=env,
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
            try:
                with urllib.request.urlopen(f"{base}/readyz", timeout=2) as resp:
                    if resp.status == 200:
                        break
            except OSError:
                pass
            assert time.monotonic() < deadline, "payam ebox did not become ready"
            time.sleep(0.2)
        status, body = await deposit(base, letter_metadata(national_code(5151)))
        assert status == 201, body
        with urllib.request.urlopen(f"{base}/metrics", timeout=5) as resp:
            text = resp.read().decode()
        assert 'payam_ebox_deposits_total{outcome="created"} 1.0' in text
        with urllib.request.urlopen(f"{base}/login", timeout=5) as resp:
            assert '<html lang="fa" dir="rtl">' in resp.read().decode()
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert national_code(5151) not in err  # no national codes in the log at INFO
