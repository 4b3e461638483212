"""The [ebox] section: documented in the example file, typed, env overrides, fail-fast keys."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from adapters.kartpooshe.ebox.config import EboxConfig, ebox_fields, load_ebox_config
from gateway.config import ConfigError, load_config

EXAMPLE = Path(__file__).resolve().parent.parent / "config" / "payam.example.toml"
TOKENS = {
    "PAYAM_EBOX_DATABASE_URL": "postgresql://e@127.0.0.1/ebox",
    "PAYAM_EBOX_GATEWAY_TO_EBOX_TOKEN": "a" * 32,
    "PAYAM_EBOX_EBOX_TO_GATEWAY_TOKEN": "b" * 32,
}


def test_example_documents_every_ebox_key_with_defaults() -> None:
    text = EXAMPLE.read_text(encoding="utf-8")
    raw = tomllib.loads(text)["ebox"]
    assert set(raw) == set(ebox_fields())
    lines = text.splitlines()
    start = lines.index("[ebox]")
    for key in ebox_fields():
        idx = next(i for i, line in enumerate(lines) if i > start and line.startswith(f"{key} ="))
        assert lines[idx - 1].startswith("#"), f"ebox.{key} is undocumented"
    cfg = load_ebox_config(EXAMPLE, env=TOKENS)
    defaults = EboxConfig()
    for key in ebox_fields():
        if f"PAYAM_EBOX_{key.upper()}" not in TOKENS:
            assert getattr(cfg, key) == getattr(defaults, key), key
    # The gateway reads the same file and leaves [ebox] alone.
    load_config(EXAMPLE, env={})


def test_env_overrides_with_types() -> None:
    cfg = load_ebox_config(
        None,
        env={**TOKENS, "PAYAM_EBOX_PORT": "9050", "PAYAM_EBOX_COOKIE_SECURE": "true"},
    )
    assert cfg.port == 9050
    assert cfg.cookie_secure is True
    assert cfg.database_url == "postgresql://e@127.0.0.1/ebox"


@pytest.mark.parametrize(
    ("env", "key"),
    [
        ({**TOKENS, "PAYAM_EBOX_DATABASE_URL": ""}, "ebox.database_url"),
        ({**TOKENS, "PAYAM_EBOX_DATABASE_URL": "mysql://x"}, "ebox.database_url"),
        ({**TOKENS, "PAYAM_EBOX_GATEWAY_TO_EBOX_TOKEN": "short"}, "ebox.gateway_to_ebox_token"),
        ({**TOKENS, "PAYAM_EBOX_EBOX_TO_GATEWAY_TOKEN": "a" * 32}, "ebox.ebox_to_gateway_token"),
        ({**TOKENS, "PAYAM_EBOX_PORT": "eighty"}, "ebox.port"),
        ({**TOKENS, "PAYAM_EBOX_PROT": "1"}, "ebox.prot"),
        ({**TOKENS, "PAYAM_EBOX_GATEWAY_URL": "ftp://x"}, "ebox.gateway_url"),
        ({**TOKENS, "PAYAM_EBOX_OTP_MAX_ATTEMPTS": "0"}, "ebox.otp_max_attempts"),
    ],
)
def test_fail_fast_names_the_key(env: dict[str, str], key: str) -> None:
    with pytest.raises(ConfigError) as err:
        load_ebox_config(None, env=env)
    assert err.value.key == key


def test_tokens_from_files(tmp_path: Path) -> None:
    (tmp_path / "g2e").write_text("g" * 40 + "\n")
    (tmp_path / "e2g").write_text("e" * 40)
    cfg = load_ebox_config(
        None,
        env={
            "PAYAM_EBOX_DATABASE_URL": "postgresql://e@127.0.0.1/ebox",
            "PAYAM_EBOX_GATEWAY_TO_EBOX_TOKEN_FILE": str(tmp_path / "g2e"),
            "PAYAM_EBOX_EBOX_TO_GATEWAY_TOKEN_FILE": str(tmp_path / "e2g"),
        },
    )
    assert cfg.gateway_to_ebox_token == "g" * 40
    assert cfg.ebox_to_gateway_token == "e" * 40
    with pytest.raises(ConfigError) as err:
        load_ebox_config(
            None,
            env={
                **TOKENS,
                "PAYAM_EBOX_EBOX_TO_GATEWAY_TOKEN": "",
                "PAYAM_EBOX_EBOX_TO_GATEWAY_TOKEN_FILE": str(tmp_path / "missing"),
            },
        )
    assert err.value.key == "ebox.ebox_to_gateway_token_file"


def test_unknown_key_in_file(tmp_path: Path) -> None:
    f = tmp_path / "p.toml"
    f.write_text("[ebox]\nprot = 1\n")
    with pytest.raises(ConfigError) as err:
        load_ebox_config(f, env=TOKENS)
    assert err.value.key == "ebox.prot"
