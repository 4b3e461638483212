"""Delivery receipts: text parsing, TLV precedence, id canonicalisation, status tables, dates."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from adapters.sms.dlr import (
    FINAL_STATES,
    IRAN_TZ,
    STATUS_TABLES,
    IdFormat,
    Receipt,
    StatusTable,
    canonical_id,
    is_receipt,
    parse_receipt_text,
    receipt_from_deliver,
    status_table,
)

DEFAULT = status_table("default")
STANDARD = (
    "id:0000A1B2 sub:001 dlvrd:001 submit date:2403201159 done date:2403201200 "
    "stat:DELIVRD err:000 text:Salam"
)


def _receipt(short_message: bytes | str = STANDARD, **overrides: Any) -> Receipt | None:
    if isinstance(short_message, str):
        short_message = short_message.encode()
    kwargs: dict[str, Any] = {
        "esm_class": 0x04,
        "short_message": short_message,
        "receipted_message_id": None,
        "message_state": None,
        "network_error_code": None,
        "table": DEFAULT,
    }
    kwargs.update(overrides)
    return receipt_from_deliver(**kwargs)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            STANDARD,
            {
                "id": "0000A1B2",
                "sub": "001",
                "dlvrd": "001",
                "submit date": "2403201159",
                "done date": "2403201200",
                "stat": "DELIVRD",
                "err": "000",
                "text": "Salam",
            },
        ),
        # Shuffled order, mixed key case, underscores, and a text that looks like fields.
        (
            "STAT:undeliv Err:034 Done_Date:2403201200 ID:77 text:id:1 stat:DELIVRD",
            {
                "stat": "undeliv",
                "err": "034",
                "done date": "2403201200",
                "id": "77",
                "text": "id:1 stat:DELIVRD",
            },
        ),
        # Missing fields are absent, not empty.
        ("id:abc stat:EXPIRED", {"id": "abc", "stat": "EXPIRED"}),
        ("", {}),
        # "sub:" is not found inside "submit date:", and a repeated key keeps its first value.
        ("submit date:2401010000 id:1 id:2", {"submit date": "2401010000", "id": "1"}),
        ("Id : 5   Stat : REJECTD", {"id": "5", "stat": "REJECTD"}),
    ],
    ids=["standard", "shuffled", "missing", "empty", "sub-vs-submit", "spaces"],
)
def test_parse_receipt_text(text: str, expected: dict[str, str]) -> None:
    assert parse_receipt_text(text) == expected


@pytest.mark.parametrize(
    ("esm_class", "receipt"),
    [
        (0x04, True),
        (0x44, True),  # with UDHI set
        (0x00, False),  # ordinary MO message
        (0x08, False),  # SME delivery acknowledgement
        (0x10, False),  # SME manual/user acknowledgement
        (0x18, False),  # conversation abort
        (0x20, False),  # intermediate delivery notification
        (0x40, False),
        (0x0C, False),  # reserved type 0011: bit 2 alone does not make a receipt
        (0x24, False),  # reserved type 1001
    ],
)
def test_non_receipt_esm_class(esm_class: int, receipt: bool) -> None:
    assert is_receipt(esm_class) is receipt
    got = _receipt(esm_class=esm_class)
    assert (got is not None) is receipt


def test_text_only_receipt() -> None:
    assert _receipt() == Receipt(
        message_id="0000A1B2",
        state="delivered",
        stat="DELIVRD",
        error="000",
        done_at=datetime(2024, 3, 20, 8, 30, tzinfo=UTC),
    )


@pytest.mark.parametrize(
    ("overrides", "message_id", "state", "stat", "error"),
    [
        ({}, "111", "undeliverable", "UNDELIV", "034"),
        ({"receipted_message_id": "abc"}, "abc", "undeliverable", "UNDELIV", "034"),
        ({"message_state": 2}, "111", "delivered", "DELIVERED", "034"),
        (
            {
                "receipted_message_id": "abc",
                "message_state": 3,
                "network_error_code": b"\x03\x00\x1b",
            },
            "abc",
            "expired",
            "EXPIRED",
            "3:27",
        ),
        # An empty TLV id, an all-zero error and an unknown state fall back to the text.
        (
            {"receipted_message_id": " ", "message_state": 9, "network_error_code": b"\0\0\0"},
            "111",
            "undeliverable",
            "UNDELIV",
            "034",
        ),
    ],
    ids=["text", "tlv-id", "tlv-state", "all-tlvs", "fallbacks"],
)
def test_tlv_preferred_over_text(
    overrides: dict[str, Any], message_id: str, state: str, stat: str, error: str
) -> None:
    r = _receipt("id:111 stat:UNDELIV err:034 text:x", **overrides)
    assert r is not None
    assert (r.message_id, r.state, r.stat, r.error) == (message_id, state, stat, error)


def test_receipt_without_id_refused() -> None:
    with pytest.raises(ValueError, match="message id"):
        _receipt("stat:DELIVRD", message_state=2)


def test_ucs2_receipt_text() -> None:
    r = _receipt("id:9 stat:EXPIRED".encode("utf-16-be"))
    assert r is not None
    assert (r.message_id, r.state) == ("9", "expired")


@pytest.mark.parametrize(
    ("stat", "outcome"),
    [
        ("DELIVRD", "delivered"),
        ("delivrd", "delivered"),
        (" Delivrd ", "delivered"),
        ("EXPIRED", "expired"),
        ("DELETED", "undeliverable"),
        ("UNDELIV", "undeliverable"),
        ("ACCEPTD", "accepted"),
        ("UNKNOWN", "unknown"),
        ("REJECTD", "rejected"),
        ("rejectd", "rejected"),
        ("ENROUTE", "enroute"),
        ("DELIVERED", "delivered"),
        ("UNDELIVERABLE", "undeliverable"),
        ("BOGUS", "unknown"),
        ("DELIVERD", "unknown"),  # only MCI's table knows this misspelling
        ("FAILED", "unknown"),  # only Irancell's table knows this word
    ],
)
def test_stat_words(stat: str, outcome: str) -> None:
    assert DEFAULT.outcome_for_stat(stat) == outcome
    r = _receipt(f"id:1 stat:{stat} err:000")
    assert r is not None
    assert (r.state, r.stat) == (outcome, stat.strip())


@pytest.mark.parametrize(
    ("message_state", "outcome", "name"),
    [
        (1, "enroute", "ENROUTE"),
        (2, "delivered", "DELIVERED"),
        (3, "expired", "EXPIRED"),
        (4, "undeliverable", "DELETED"),
        (5, "undeliverable", "UNDELIVERABLE"),
        (6, "accepted", "ACCEPTED"),
        (7, "unknown", "UNKNOWN"),
        (8, "rejected", "REJECTED"),
        (0, "unknown", "0"),  # not in SMPP 3.4; no text stat to fall back on
        (9, "unknown", "9"),
    ],
)
def test_message_states(message_state: int, outcome: str, name: str) -> None:
    r = _receipt(b"", receipted_message_id="X1", message_state=message_state)
    assert r is not None
    assert (r.message_id, r.state, r.stat) == ("X1", outcome, name)
    assert r.final is (outcome in {"delivered", "undeliverable", "expired", "rejected"})


def test_final_states() -> None:
    assert {"delivered", "undeliverable", "expired", "rejected"} == FINAL_STATES


@pytest.mark.parametrize(
    ("done", "tz", "expected"),
    [
        ("2403201200", IRAN_TZ, datetime(2024, 3, 20, 8, 30, tzinfo=UTC)),
        ("240320120045", IRAN_TZ, datetime(2024, 3, 20, 8, 30, 45, tzinfo=UTC)),
        ("2401010100", IRAN_TZ, datetime(2023, 12, 31, 21, 30, tzinfo=UTC)),  # across a year
        ("2403201200", UTC, datetime(2024, 3, 20, 12, 0, tzinfo=UTC)),
        ("2403201200", timezone(timedelta(hours=-5)), datetime(2024, 3, 20, 17, 0, tzinfo=UTC)),
        ("2413201200", IRAN_TZ, None),  # month 13
        ("24032012", IRAN_TZ, None),  # too short
        ("24032012xx", IRAN_TZ, None),
    ],
)
def test_done_date_to_utc(done: str, tz: timezone, expected: datetime | None) -> None:
    r = _receipt(f"id:1 done date:{done} stat:DELIVRD", tz=tz)
    assert r is not None
    assert r.done_at == expected
    if expected is not None:
        assert r.done_at is not None
        assert r.done_at.utcoffset() == timedelta(0)


def test_done_date_defaults_to_iran_time() -> None:
    assert IRAN_TZ.utcoffset(None) == timedelta(hours=3, minutes=30)
    r = receipt_from_deliver(
        esm_class=0x04,
        short_message=b"id:1 done date:2406010000 stat:DELIVRD",
        receipted_message_id=None,
        message_state=None,
        network_error_code=None,
        table=DEFAULT,
    )
    assert r is not None
    assert r.done_at == datetime(2024, 5, 31, 20, 30, tzinfo=UTC)


@pytest.mark.parametrize(
    ("forms", "key"),
    [
        ([("00A1B2", "hex"), ("a1b2", "hex"), ("41394", "dec"), ("0041394", "dec")], "41394"),
        ([("0", "hex"), ("000", "dec"), ("0", "dec")], "0"),
        ([("FFFFFFFFFFFFFFFFFFFF", "hex"), ("1208925819614629174706175", "dec")], None),
        ([(" AbC-1 ", "str"), ("abc-1", "str"), ("ABC-1", "str")], "abc-1"),
        # "str" keeps leading zeros: it is for ids that are not numbers.
        ([("  12\t", "dec"), ("c", "hex"), (" 12 ", "str")], "12"),
        ([("012", "str"), (" 012", "str")], "012"),
    ],
)
def test_canonical_ids_equal(forms: list[tuple[str, IdFormat]], key: str | None) -> None:
    keys = {canonical_id(raw, fmt) for raw, fmt in forms}
    assert keys == {key or "1208925819614629174706175"}


@pytest.mark.parametrize(
    ("raw", "fmt", "key"),
    [("00A1B2", "hex", "41394"), ("0041394", "dec", "41394"), (" AbC-1 ", "str", "abc-1")],
)
def test_canonical_id_docstring_examples(raw: str, fmt: IdFormat, key: str) -> None:
    assert canonical_id(raw, fmt) == key


def test_hex_and_dec_differ_when_misconfigured() -> None:
    # The same digits mean different ids in different formats; the format must be right.
    assert canonical_id("10", "hex") != canonical_id("10", "dec")


@pytest.mark.parametrize(
    ("raw", "fmt"),
    [
        ("xyz", "hex"),
        ("0x1A", "hex"),
        ("-1a", "hex"),
        ("12a", "dec"),
        ("-1", "dec"),
        ("+1", "dec"),
        ("1_000", "dec"),
        ("۱۲", "dec"),  # Persian digits: int() would accept them
        ("", "dec"),
        ("   ", "hex"),
        ("  ", "str"),
        ("1", "base64"),
    ],
)
def test_invalid_ids_refused(raw: str, fmt: Any) -> None:
    with pytest.raises(ValueError, match="id"):
        canonical_id(raw, fmt)


@pytest.mark.parametrize(
    ("name", "stat", "outcome"),
    [
        ("mci", "DELIVERD", "delivered"),
        ("mci", "deliverd", "delivered"),
        ("irancell", "DELIVERD", "unknown"),
        ("rightel", "DELIVERD", "unknown"),
        ("default", "DELIVERD", "unknown"),
        ("irancell", "FAILED", "undeliverable"),
        ("mci", "FAILED", "unknown"),
        ("rightel", "DELIVRD", "delivered"),
        ("no-such-operator", "DELIVERD", "unknown"),
    ],
)
def test_operator_tables(name: str, stat: str, outcome: str) -> None:
    table = status_table(name)
    r = _receipt(f"id:1 stat:{stat}", table=table)
    assert r is not None
    assert r.state == outcome


def test_operator_tables_are_separate() -> None:
    assert {"default", "mci", "irancell", "rightel"} <= set(STATUS_TABLES)
    tables = [status_table(n) for n in ("default", "mci", "irancell", "rightel")]
    assert len({id(t) for t in tables}) == 4
    assert [t.name for t in tables] == ["default", "mci", "irancell", "rightel"]
    assert status_table("unknown-operator") is STATUS_TABLES["default"]
    # Every table maps every SMPP 3.4 message_state the same way.
    assert all(t.states == DEFAULT.states for t in tables)


def test_custom_table_and_error_reasons() -> None:
    table = StatusTable(
        name="test",
        stats={"ok": "delivered"},
        states={2: "delivered"},
        errors={"034": "handset switched off", "3:27": "absent subscriber"},
    )
    assert table.outcome_for_stat("OK") == "delivered"
    assert table.reason("34") == "handset switched off"
    assert table.reason(" 0034 ") == "handset switched off"
    assert table.reason("3:27") == "absent subscriber"
    assert table.reason("035") is None
    assert table.reason("") is None
    with pytest.raises(TypeError):
        table.stats["x"] = "delivered"  # type: ignore[index]


def test_table_with_unknown_outcome_refused() -> None:
    with pytest.raises(ValueError, match="unknown outcomes"):
        StatusTable(name="bad", stats={"DELIVRD": "done"}, states={})  # type: ignore[dict-item]
