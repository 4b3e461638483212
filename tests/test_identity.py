"""Checksums of national codes and legal-entity IDs."""

from __future__ import annotations

import random
from collections.abc import Callable

import pytest

from gateway.identity import (
    is_valid_legal_id,
    is_valid_national_code,
    legal_id_check_digit,
    national_code_check_digit,
    normalize_digits,
)

# Computed by hand from the published rule; the comment gives r = s mod 11 so both branches
# of the check-digit rule (r < 2 and r >= 2, including r = 10 -> 1) are covered.
VALID_NATIONAL_CODES = [
    "0076229645",  # r = 6
    "0830166130",  # r = 0
    "5260181591",  # r = 1
    "6281948211",  # r = 10
    "1860913903",  # r = 8
    "5432319489",  # r = 2
    "2527601898",  # r = 3
]

# r = s mod 11; r = 10 must become check digit 0.
VALID_LEGAL_IDS = [
    "10380284790",  # r = 0
    "74395755130",  # r = 10
    "16761222020",  # r = 0
    "42656515051",  # r = 1
    "57117777415",  # r = 5
    "36338750049",  # r = 9
]


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("۰۱۲۳۴۵۶۷۸۹", "0123456789"),
        ("٠١٢٣٤٥٦٧٨٩", "0123456789"),
        ("  007-622964-5\n", "0076229645"),
        ("007 622 964 5", "0076229645"),
        ("۰۰۷–۶۲۲\u00a0۹۶۴۵", "0076229645"),  # en dash and no-break space from a document
        ("\u200f۰۰۷۶۲۲۹۶۴۵\u200e", "0076229645"),  # bidi marks around pasted digits
        ("12a", "12a"),  # letters are left for the validators to reject
        ("１２３", "１２３"),  # fullwidth digits are not mapped
    ],
)
def test_normalize_digits(raw: str, expected: str) -> None:
    assert normalize_digits(raw) == expected


@pytest.mark.parametrize(
    "code",
    [
        *VALID_NATIONAL_CODES,
        "۰۰۷۶۲۲۹۶۴۵",
        "٠٠٧٦٢٢٩٦٤٥",
        "۰۰76229645",  # mixed Persian and ASCII
        "007-622964-5",
        " 0076229645 ",
        "007 622 964 5",
    ],
)
def test_valid_national_codes(code: str) -> None:
    assert is_valid_national_code(code) is True


@pytest.mark.parametrize(
    "code",
    [
        "0076229646",  # wrong check digit
        "0076229644",
        "5260181590",
        "0830166131",
        "007622964",  # 9 digits: not padded
        "00762296450",  # 11 digits
        "",
        "   ",
        "00762296a5",  # letter
        "O076229645",  # Latin O for zero
        "１２３４５６７８９０",  # fullwidth digits
        "007622964⁵",  # superscript: str.isdigit() would accept it
        "+0076229645",
        "0076229645.",
        "0000000000",  # all-equal digits pass the checksum but are never issued
        "1111111111",
        "5555555555",
        "۹۹۹۹۹۹۹۹۹۹",
    ],
)
def test_invalid_national_codes(code: str) -> None:
    assert is_valid_national_code(code) is False


@pytest.mark.parametrize(
    "code",
    [*VALID_LEGAL_IDS, "۱۰۳۸۰۲۸۴۷۹۰", "١٠٣٨٠٢٨٤٧٩٠", "1038-028479-0", " 10380284790\t"],
)
def test_valid_legal_ids(code: str) -> None:
    assert is_valid_legal_id(code) is True


@pytest.mark.parametrize(
    "code",
    [
        "10380284791",  # wrong check digit
        "10380284799",
        "74395755131",  # r = 10 must give 0, not 1 or 10
        "1038028479",  # 10 digits
        "103802847900",  # 12 digits
        "",
        "1038028479O",
        "1038028479١x",
        "0076229645",  # a personal national code is not a legal ID
        "33333333333",  # all-equal digits that pass the checksum
    ],
)
def test_invalid_legal_ids(code: str) -> None:
    assert is_valid_legal_id(code) is False


def test_all_equal_rejection_is_what_refuses_them() -> None:
    # Proves the all-equal rule is load-bearing: the checksum alone would accept these.
    for d in "0123456789":
        assert national_code_check_digit(d * 9) == d
    assert legal_id_check_digit("3" * 10) == "3"


@pytest.mark.parametrize(
    ("prefix", "expected"),
    [("007622964", "5"), ("083016613", "0"), ("526018159", "1"), ("628194821", "1")],
)
def test_national_code_check_digit(prefix: str, expected: str) -> None:
    assert national_code_check_digit(prefix) == expected


@pytest.mark.parametrize(
    ("prefix", "expected"),
    [("1038028479", "0"), ("7439575513", "0"), ("4265651505", "1"), ("3633875004", "9")],
)
def test_legal_id_check_digit(prefix: str, expected: str) -> None:
    assert legal_id_check_digit(prefix) == expected


@pytest.mark.parametrize(
    ("helper", "bad"),
    [
        (national_code_check_digit, "00762296"),
        (national_code_check_digit, "0076229645"),
        (national_code_check_digit, "۰۰۷۶۲۲۹۶۴"),  # helpers take ASCII only
        (national_code_check_digit, "00762296x"),
        (legal_id_check_digit, "103802847"),
        (legal_id_check_digit, "10380284790"),
        (legal_id_check_digit, "103802847x"),
    ],
)
def test_check_digit_helpers_reject_bad_input_without_echoing_it(
    helper: Callable[[str], str], bad: str
) -> None:
    with pytest.raises(ValueError, match="ASCII digits") as excinfo:
        helper(bad)
    # Identity numbers are personal data: the message must not carry them into logs.
    assert bad not in str(excinfo.value)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_national_code_round_trip(seed: int) -> None:
    rng = random.Random(seed)
    for _ in range(500):
        prefix = "".join(rng.choice("0123456789") for _ in range(9))
        check = national_code_check_digit(prefix)
        code = prefix + check
        assert is_valid_national_code(code) is (len(set(code)) > 1)
        for wrong in "0123456789".replace(check, ""):
            assert is_valid_national_code(prefix + wrong) is False


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_legal_id_round_trip(seed: int) -> None:
    rng = random.Random(seed)
    for _ in range(500):
        prefix = "".join(rng.choice("0123456789") for _ in range(10))
        check = legal_id_check_digit(prefix)
        code = prefix + check
        assert is_valid_legal_id(code) is (len(set(code)) > 1)
        for wrong in "0123456789".replace(check, ""):
            assert is_valid_legal_id(prefix + wrong) is False
