"""The [ops] configuration section and the tariff table fail fast, naming the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.config import ConfigError, load_config
from gateway.tariffs import load_tariffs

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize(
    ("env", "key"),
    [
        ({"PAYAM_OPS_CRISIS_SHARE": "1.0"}, "ops.crisis_share"),
        ({"PAYAM_OPS_CRISIS_SHARE": "0"}, "ops.crisis_share"),
        ({"PAYAM_OPS_SLA_DELIVERY_RATIO": "1.5"}, "ops.sla_delivery_ratio"),
        ({"PAYAM_OPS_SAMPLE_SECONDS": "0"}, "ops.sample_seconds"),
        ({"PAYAM_OPS_REFRESH_SECONDS": "-1"}, "ops.refresh_seconds"),
        ({"PAYAM_OPS_SLA_LATENCY_SECONDS": "x"}, "ops.sla_latency_seconds"),
    ],
)
def test_bad_ops_values_name_the_key(env: dict[str, str], key: str) -> None:
    with pytest.raises(ConfigError) as err:
        load_config(None, env=env)
    assert err.value.key == key


def test_example_tariffs_load() -> None:
    t = load_tariffs(str(ROOT / "config" / "tariffs.example.toml"))
    assert t.currency == "IRR"
    assert (t.sms_price("mci", "normal"), t.sms_price("rightel", "normal")) == (1000, 900)
    assert t.sms_price("rightel", "bulk") == 700  # not overridden
    assert t.ussd_session == 300
    assert t.letters == {"person": 2000, "company": 2500, "attachment_mib": 100}
    assert load_tariffs("").letters == {"person": 0, "company": 0, "attachment_mib": 0}
    assert load_tariffs("").sms_price("mci", "crisis") == 0


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("[sms]\nnormal = 1\n", "tariffs.sms.crisis"),
        ("[sms]\ncrisis = 0\nhigh = 1\nnormal = 1.5\nbulk = 1\n", "tariffs.sms.normal"),
        ("[sms]\ncrisis = 0\nhigh = 1\nnormal = 1\nbulk = -1\n", "tariffs.sms.bulk"),
        ("[sms]\ncrisis=0\nhigh=1\nnormal=1\nbulk=1\nurgent=1\n", "tariffs.sms.urgent"),
        ("vat = 9\n", "tariffs.vat"),
        ("currency = 'ریال1'\n[sms]\ncrisis=0\nhigh=1\nnormal=1\nbulk=1\n", "tariffs.currency"),
        (
            "[sms]\ncrisis=0\nhigh=1\nnormal=1\nbulk=1\n[sms_operators.mci]\nbulk = 'x'\n",
            "tariffs.sms_operators.mci.bulk",
        ),
        (
            "[sms]\ncrisis=0\nhigh=1\nnormal=1\nbulk=1\n[ussd]\nsession = -2\n",
            "tariffs.ussd.session",
        ),
        ("[sms\n", "ops.tariffs_file"),
        (
            "[sms]\ncrisis=0\nhigh=1\nnormal=1\nbulk=1\n[letters]\nperson = 1.5\n",
            "tariffs.letters.person",
        ),
        (
            "[sms]\ncrisis=0\nhigh=1\nnormal=1\nbulk=1\n[letters]\npage = 1\n",
            "tariffs.letters.page",
        ),
        ("letters = 5\n[sms]\ncrisis=0\nhigh=1\nnormal=1\nbulk=1\n", "tariffs.letters"),
    ],
)
def test_bad_tariffs_name_the_key(tmp_path: Path, text: str, key: str) -> None:
    path = tmp_path / "t.toml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as err:
        load_tariffs(str(path))
    assert err.value.key == key


def test_missing_tariff_file_named() -> None:
    with pytest.raises(ConfigError) as err:
        load_tariffs("/nonexistent/tariffs.toml")
    assert err.value.key == "ops.tariffs_file"
