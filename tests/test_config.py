"""Configuration: defaults, the documented example file, env overrides, and fail-fast errors."""

from __future__ import annotations

import dataclasses
import tomllib
from pathlib import Path

import pytest

from gateway.config import OTHER_SECTIONS, ConfigError, load_config, section_fields

EXAMPLE = Path(__file__).resolve().parent.parent / "config" / "payam.example.toml"


def test_defaults_load_without_file() -> None:
    cfg = load_config(None, env={})
    assert cfg.database.url == ""
    assert cfg.auth.iat_skew_seconds == 30
    assert cfg.numbering.shortcode_prefix == "4040"
    assert cfg.numbering.quarantine_days == 180


def test_example_file_documents_every_key_and_loads() -> None:
    raw = tomllib.loads(EXAMPLE.read_text(encoding="utf-8"))
    fields = section_fields()
    assert set(raw) - OTHER_SECTIONS == set(fields)
    for section, keys in fields.items():
        assert set(raw[section]) == set(keys), section
    text = EXAMPLE.read_text(encoding="utf-8")
    for section, keys in fields.items():
        for key in keys:
            # Every key is preceded by a comment line explaining it.
            lines = text.splitlines()
            idx = next(i for i, line in enumerate(lines) if line.startswith(f"{key} ="))
            assert lines[idx - 1].startswith("#"), f"{section}.{key} is undocumented"
    cfg = load_config(EXAMPLE, env={})
    assert cfg == load_config(None, env={}), "the example must show the defaults"


def test_env_overrides_with_types() -> None:
    cfg = load_config(
        None,
        env={
            "PAYAM_DATABASE_URL": "postgresql://u@db:5432/payam",
            "PAYAM_HTTP_PORT": "9000",
            "PAYAM_LOG_JSON": "true",
            "PAYAM_DATABASE_COMMAND_TIMEOUT_SECONDS": "2.5",
            "PAYAM_NUMBERING_RESERVED_MASKS": "GOV, POLICE",
            "PAYAM_HTTP_TRUSTED_PROXIES": '["10.0.0.1"]',
            "PAYAM_UNRELATED_THING": "ignored: not a config section",
        },
    )
    assert cfg.database.url == "postgresql://u@db:5432/payam"
    assert cfg.http.port == 9000
    assert cfg.log.json is True
    assert cfg.database.command_timeout_seconds == 2.5
    assert cfg.numbering.reserved_masks == ("GOV", "POLICE")
    assert cfg.http.trusted_proxies == ("10.0.0.1",)


def test_env_beats_file(tmp_path: Path) -> None:
    f = tmp_path / "p.toml"
    f.write_text('[http]\nport = 8100\n[database]\nurl = "postgresql://file/db"\n')
    cfg = load_config(f, env={"PAYAM_DATABASE_URL": "postgresql://env/db"})
    assert cfg.http.port == 8100
    assert cfg.database.url == "postgresql://env/db"


@pytest.mark.parametrize(
    ("toml", "env", "key"),
    [
        ("[http]\nprot = 1\n", {}, "http.prot"),
        ("[htp]\nport = 1\n", {}, "htp"),
        ('[http]\nport = "eighty"\n', {}, "http.port"),
        ("[http]\nport = 70000\n", {}, "http.port"),
        ("[log]\njson = 1\n", {}, "log.json"),
        ("[log]\nlevel = 'LOUD'\n", {}, "log.level"),
        ('[database]\nurl = "mysql://x"\n', {}, "database.url"),
        ("[database]\npool_min_size = 5\npool_max_size = 2\n", {}, "database.pool_max_size"),
        ("[numbering]\nmask_max_length = 12\n", {}, "numbering.mask_max_length"),
        ("[numbering]\nreserved_masks = 'GOV'\n", {}, "numbering.reserved_masks"),
        ("", {"PAYAM_HTTP_PORT": "abc"}, "http.port"),
        ("", {"PAYAM_LOG_JSON": "maybe"}, "log.json"),
        ("", {"PAYAM_DATABASE_URLL": "postgresql://x"}, "database.urll"),
        ("not toml [", {}, "PAYAM_CONFIG"),
    ],
)
def test_invalid_values_name_the_key(
    tmp_path: Path, toml: str, env: dict[str, str], key: str
) -> None:
    f = tmp_path / "bad.toml"
    f.write_text(toml)
    with pytest.raises(ConfigError) as info:
        load_config(f, env=env)
    assert info.value.key == key
    assert repr(key) in str(info.value)


def test_missing_file_named() -> None:
    with pytest.raises(ConfigError) as info:
        load_config(None, env={"PAYAM_CONFIG": "/nonexistent/payam.toml"})
    assert "/nonexistent/payam.toml" in str(info.value)


def test_sections_are_frozen() -> None:
    cfg = load_config(None, env={})
    with pytest.raises(AttributeError):
        cfg.http.port = 1  # type: ignore[misc]


def test_example_shows_every_operator_key() -> None:
    from gateway.config import OperatorConfig

    text = EXAMPLE.read_text(encoding="utf-8")
    block = text[text.index("# [[operators]]") :]
    for f in dataclasses.fields(OperatorConfig):
        assert f"# {f.name} = " in block, f.name


def test_operators_from_file_and_env(tmp_path: Path) -> None:
    f = tmp_path / "ops.toml"
    f.write_text(
        '[[operators]]\nname = "mci"\nprefixes = ["91"]\nport = 2775\n'
        '[[operators]]\nname = "irancell"\nprefixes = ["93"]\nbinds = 2\n'
    )
    cfg = load_config(f, env={})
    assert [(o.name, o.binds) for o in cfg.operators] == [("mci", 1), ("irancell", 2)]
    env = {"PAYAM_OPERATORS": '[{"name": "rightel", "prefixes": ["92"], "window": 20}]'}
    cfg = load_config(f, env=env)
    assert [(o.name, o.window) for o in cfg.operators] == [("rightel", 20)]


@pytest.mark.parametrize(
    ("toml", "key"),
    [
        ('[[operators]]\nname = "mci"\nmode = "rx"\n', "operators[0].mode"),
        ('[[operators]]\nname = "mci"\n[[operators]]\nname = "mci"\n', "operators[1].name"),
        ('[[operators]]\nname = "mci"\nresp_id_format = "oct"\n', "operators[0].resp_id_format"),
        ('[[operators]]\nname = "mci"\nprefixes = ["9a"]\n', "operators[0].prefixes"),
        ('[[operators]]\nname = "mci"\ncolour = 1\n', "operators[0].colour"),
        ("[sms]\nquiet_hours_start = '25:00'\n", "sms.quiet_hours_start"),
    ],
)
def test_bad_operator_and_sms_values(tmp_path: Path, toml: str, key: str) -> None:
    f = tmp_path / "bad.toml"
    f.write_text(toml)
    with pytest.raises(ConfigError) as info:
        load_config(f, env={})
    assert info.value.key == key
