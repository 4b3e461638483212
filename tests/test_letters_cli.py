"""`payam init` creates the evidence key; `payam letters` manages an agency's letter settings
and SMTP credentials (the same service as the admin API)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import asyncpg

from gateway.config import Config
from gateway.letters.evidence import EvidenceSigner
from gateway.letters.settings import check_password
from gateway.services import Services
from tests.conftest import make_agency

ROOT = Path(__file__).resolve().parent.parent


def payam(env: dict[str, str], *args: str) -> Any:
    done = subprocess.run(
        [sys.executable, "-m", "gateway.cli", *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**os.environ, **env},
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


async def test_init_creates_the_evidence_key_and_letters_commands(
    config: Config, services: Services, pool: asyncpg.Pool, tmp_path: Path
) -> None:
    env = {
        "PAYAM_DATABASE_URL": config.database.url,
        "PAYAM_SECURITY_MASTER_KEY_FILE": str(tmp_path / "master.key"),
        "PAYAM_AUTH_ADMIN_TOKEN_FILE": str(tmp_path / "admin.token"),
        "PAYAM_KARTPOOSHE_EVIDENCE_KEY_FILE": str(tmp_path / "keys" / "evidence.key"),
    }
    first = payam(env, "init")
    assert first["evidence_key_created"] is True
    assert (tmp_path / "keys" / "evidence.key").stat().st_mode & 0o077 == 0
    signer = EvidenceSigner.from_files(str(tmp_path / "keys" / "evidence.key"))
    assert signer.key_id.startswith("ed25519:")
    assert payam(env, "init")["evidence_key_created"] is False
    assert (
        EvidenceSigner.from_files(str(tmp_path / "keys" / "evidence.key")).key_id == signer.key_id
    )

    # The CLI seals with the master key it was given; this agency is created by the test's own
    # services, which is fine: letter settings and SMTP credentials seal nothing.
    agency_id = str(await make_agency(services))
    shown = payam(env, "letters", "settings", agency_id)
    assert shown["settings"]["deemed_delivery"] == {"after_days": 10}
    changed = payam(
        env,
        "letters",
        "settings",
        agency_id,
        "--from",
        "OA@Tax.gov.ir",
        "--office-mailbox",
        "inbox@tax.gov.ir",
        "--deemed",
        "on_open",
    )
    assert changed["settings"] == {
        "deemed_delivery": "on_open",
        "from_addresses": ["oa@tax.gov.ir"],
        "office_mailbox": "inbox@tax.gov.ir",
        "reply_webhook_url": "",
    }
    cred = payam(env, "letters", "smtp-credential", agency_id, "--username", "oa.cli")
    stored = await pool.fetchval(
        "SELECT password_hash FROM letter_smtp_credentials WHERE username = 'oa.cli'"
    )
    assert cred["password"] not in stored
    assert check_password(cred["password"], stored)
    assert not check_password(cred["password"] + "x", stored)
    assert await services.letter_settings.authenticate("oa.cli", cred["password"]) is not None
    payam(env, "letters", "revoke-smtp-credential", agency_id, "oa.cli")
    assert await services.letter_settings.authenticate("oa.cli", cred["password"]) is None
