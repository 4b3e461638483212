"""[kartpooshe] configuration: tokens from files or env, and fail-fast errors naming the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.config import ConfigError, load_config
from gateway.letters.tokens import bearer_ok, ebox_to_gateway, gateway_to_ebox


def test_tokens_from_files_or_values(tmp_path: Path) -> None:
    (tmp_path / "out.token").write_text("  from-file-token \n")
    cfg = load_config(
        None,
        env={
            "PAYAM_KARTPOOSHE_GATEWAY_TO_EBOX_TOKEN_FILE": str(tmp_path / "out.token"),
            "PAYAM_KARTPOOSHE_EBOX_TO_GATEWAY_TOKEN": "direct-value",
        },
    )
    assert gateway_to_ebox(cfg.kartpooshe) == "from-file-token"
    assert ebox_to_gateway(cfg.kartpooshe) == "direct-value"
    assert bearer_ok("Bearer direct-value", "direct-value")
    assert not bearer_ok("Bearer direct-valu", "direct-value")
    assert not bearer_ok("direct-value", "direct-value")
    assert not bearer_ok("Bearer ", "")  # no token configured: nobody gets in
    missing = load_config(
        None, env={"PAYAM_KARTPOOSHE_EBOX_TO_GATEWAY_TOKEN_FILE": str(tmp_path / "nope")}
    )
    with pytest.raises(ConfigError, match=r"kartpooshe\.ebox_to_gateway_token_file"):
        ebox_to_gateway(missing.kartpooshe)


@pytest.mark.parametrize(
    ("env", "key"),
    [
        ({"PAYAM_KARTPOOSHE_BASE_URL": "ftp://ebox"}, "kartpooshe.base_url"),
        ({"PAYAM_KARTPOOSHE_MAX_ATTEMPTS": "0"}, "kartpooshe.max_attempts"),
        (
            {
                "PAYAM_KARTPOOSHE_MAX_TOTAL_BYTES": "10",
                "PAYAM_KARTPOOSHE_MAX_ATTACHMENT_BYTES": "20",
            },
            "kartpooshe.max_total_bytes",
        ),
        ({"PAYAM_KARTPOOSHE_DEFAULT_DEEMED_DAYS": "0"}, "kartpooshe.default_deemed_days"),
        ({"PAYAM_KARTPOOSHE_MAIL_DOMAIN": "a@b"}, "kartpooshe.mail_domain"),
        ({"PAYAM_KARTPOOSHE_OTP_SENDER": "PAYAM"}, "kartpooshe.otp_sender"),
        ({"PAYAM_KARTPOOSHE_SMTP_CERT_FILE": "c.pem"}, "kartpooshe.smtp_key_file"),
        ({"PAYAM_KARTPOOSHE_SMTP_PORTT": "25"}, "kartpooshe.smtp_portt"),
    ],
)
def test_bad_values_name_the_key(env: dict[str, str], key: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(None, env=env)
    assert info.value.key == key
