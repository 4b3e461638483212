"""The [ussd] configuration section: defaults, env overrides and errors that name the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.config import ConfigError, load_config


def test_defaults() -> None:
    u = load_config(None, env={}).ussd
    assert (u.idle_timeout_seconds, u.page_chars_ucs2, u.page_chars_gsm7) == (180, 72, 160)
    assert u.http_secret_map() == {}


def test_secrets_from_env() -> None:
    cfg = load_config(
        None, env={"PAYAM_USSD_HTTP_SECRETS": "mci=0123456789abcdef,irancell=fedcba9876543210"}
    )
    assert cfg.ussd.http_secret_map() == {
        "mci": "0123456789abcdef",
        "irancell": "fedcba9876543210",
    }


@pytest.mark.parametrize(
    ("toml", "key"),
    [
        ("[ussd]\nhttp_secrets = ['mci']\n", "ussd.http_secrets"),
        ("[ussd]\nhttp_secrets = ['mci=short']\n", "ussd.http_secrets"),
        ("[ussd]\npage_chars_ucs2 = 100\n", "ussd.page_chars_ucs2"),
        ("[ussd]\npage_chars_gsm7 = 10\n", "ussd.page_chars_gsm7"),
        ("[ussd]\nidle_timeout_seconds = 0\n", "ussd.idle_timeout_seconds"),
        ("[ussd]\nremote_timeout = 1\n", "ussd.remote_timeout"),
    ],
)
def test_bad_values_name_the_key(tmp_path: Path, toml: str, key: str) -> None:
    f = tmp_path / "bad.toml"
    f.write_text(toml)
    with pytest.raises(ConfigError) as info:
        load_config(f, env={})
    assert info.value.key == key
