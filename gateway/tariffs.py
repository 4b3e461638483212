"""The tariff table (Art 6: tariffs are set by the regulator) read once from a TOML file.

    currency = "IRR"
    [sms]            # price of one SMS fragment, by priority lane
    crisis = 0
    high = 1500
    normal = 1000
    bulk = 700
    [sms_operators.rightel]   # optional per-operator prices, same keys, override [sms]
    normal = 900
    [ussd]
    session = 300    # one USSD dialog
    [letters]        # one letter deposited into an e-box, by recipient kind
    person = 2000
    company = 2500
    attachment_mib = 100   # each started MiB (1,048,576 bytes) of one letter's attachments

Prices are integers in the currency's smallest unit, so sums are exact.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gateway.config import ConfigError

LANES = ("crisis", "high", "normal", "bulk")
LETTER_PRICES = ("person", "company", "attachment_mib")


@dataclass(frozen=True, slots=True)
class Tariffs:
    currency: str = "IRR"
    sms: dict[str, int] = field(default_factory=lambda: dict.fromkeys(LANES, 0))
    sms_operators: dict[str, dict[str, int]] = field(default_factory=dict)
    ussd_session: int = 0
    # Letters (issue 8 part 6): per letter by recipient kind, plus per started MiB of its
    # attachments; keys of LETTER_PRICES, each 0 when the table does not list it.
    letters: dict[str, int] = field(default_factory=lambda: dict.fromkeys(LETTER_PRICES, 0))

    def sms_price(self, operator: str, lane: str) -> int:
        return self.sms_operators.get(operator, {}).get(lane, self.sms[lane])


def _prices(key: str, table: Any, required: bool) -> dict[str, int]:
    if not isinstance(table, dict):
        raise ConfigError(key, "must be a table")
    unknown = set(table) - set(LANES)
    if unknown:
        raise ConfigError(f"{key}.{sorted(unknown)[0]}", "unknown lane")
    prices: dict[str, int] = {}
    for lane in LANES:
        if lane not in table:
            if required:
                raise ConfigError(f"{key}.{lane}", "missing price")
            continue
        value = table[lane]
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ConfigError(f"{key}.{lane}", f"expected a whole price >= 0, got {value!r}")
        prices[lane] = value
    return prices


def load_tariffs(path: str) -> Tariffs:
    """The tariffs in ``path``; with no path, every price is 0 (statements show quantities)."""
    if not path:
        return Tariffs()
    key = "ops.tariffs_file"
    try:
        raw = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(key, f"file {path!r} does not exist") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(key, f"{path}: invalid TOML: {exc}") from None
    unknown = set(raw) - {"currency", "sms", "sms_operators", "ussd", "letters"}
    if unknown:
        raise ConfigError(f"tariffs.{sorted(unknown)[0]}", "unknown key")
    currency = raw.get("currency", "IRR")
    if not isinstance(currency, str) or not currency.isalpha():
        raise ConfigError("tariffs.currency", "expected a currency code such as IRR")
    operators = raw.get("sms_operators", {})
    if not isinstance(operators, dict):
        raise ConfigError("tariffs.sms_operators", "must be a table of tables")
    ussd = raw.get("ussd", {})
    session = ussd.get("session", 0) if isinstance(ussd, dict) else None
    if isinstance(session, bool) or not isinstance(session, int) or session < 0:
        raise ConfigError("tariffs.ussd.session", "expected a whole price >= 0")
    return Tariffs(
        currency=currency,
        sms=_prices("tariffs.sms", raw.get("sms"), required=True),
        sms_operators={
            name: _prices(f"tariffs.sms_operators.{name}", t, required=False)
            for name, t in operators.items()
        },
        ussd_session=session,
        letters=_letter_prices(raw.get("letters", {})),
    )


def _letter_prices(table: Any) -> dict[str, int]:
    if not isinstance(table, dict):
        raise ConfigError("tariffs.letters", "must be a table")
    unknown = set(table) - set(LETTER_PRICES)
    if unknown:
        raise ConfigError(f"tariffs.letters.{sorted(unknown)[0]}", "unknown key")
    prices = {}
    for key in LETTER_PRICES:
        value = table.get(key, 0)
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ConfigError(
                f"tariffs.letters.{key}", f"expected a whole price >= 0, got {value!r}"
            )
        prices[key] = value
    return prices
