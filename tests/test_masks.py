"""Sender mask validation and look-alike detection."""

from __future__ import annotations

import pytest

from gateway.masks import (
    MaskError,
    edit_distance_at_most_one,
    find_conflict,
    skeleton,
    validate_mask,
)


@pytest.mark.parametrize(
    ("raw", "canonical"),
    [
        ("SABT", "SABT"),
        ("Sabt Ahval", "Sabt Ahval"),  # case kept as given
        ("  Sabt   Ahval  ", "Sabt Ahval"),  # ends stripped, inner run collapsed
        ("ABCDE     FGHIJ", "ABCDE FGHIJ"),  # 11 once collapsed
        ("IRAN-GOV", "IRAN-GOV"),
        ("tax_ir.1", "tax_ir.1"),
        ("B&O", "B&O"),
        ("Police 110", "Police 110"),
        ("A", "A"),
        ("\tMEDU\n", "MEDU"),
        ("X" * 11, "X" * 11),
    ],
)
def test_valid_masks(raw: str, canonical: str) -> None:
    assert validate_mask(raw) == canonical


@pytest.mark.parametrize(
    ("raw", "max_length", "code"),
    [
        ("", 11, "mask_empty"),
        ("   ", 11, "mask_empty"),
        ("\t\n", 11, "mask_empty"),
        ("ABCDEFGHIJKL", 11, "mask_too_long"),
        ("Sabt   Ahval Iran", 11, "mask_too_long"),
        ("ABCDEF", 5, "mask_too_long"),
        ("SABT@", 11, "mask_invalid_character"),
        ("TAX/IR", 11, "mask_invalid_character"),
        ("ثبت", 11, "mask_invalid_character"),  # Persian letters that resemble nothing Latin
        ("SABT\tAHVAL", 11, "mask_invalid_character"),  # only spaces are collapsed
        ("SABT\u0338", 11, "mask_invalid_character"),  # a stray combining mark
        ("ТАХIR", 11, "mask_confusable_character"),  # Cyrillic Т А Х
        ("ΡOLICE", 11, "mask_confusable_character"),  # Greek Rho
        ("ＳＡＢＴ", 11, "mask_confusable_character"),  # fullwidth
        ("SABT۱", 11, "mask_confusable_character"),  # Persian one
        ("P٥LICE", 11, "mask_confusable_character"),  # Arabic-Indic five
        ("Café", 11, "mask_confusable_character"),
        ("POL|CE", 11, "mask_confusable_character"),
        ("4040", 11, "mask_needs_letter"),
        ("110 115", 11, "mask_needs_letter"),
        ("1.2-3", 11, "mask_needs_letter"),
        ("__", 11, "mask_needs_letter"),
    ],
)
def test_refused_masks(raw: str, max_length: int, code: str) -> None:
    with pytest.raises(MaskError) as excinfo:
        validate_mask(raw, max_length=max_length)
    err = excinfo.value
    assert err.code == code
    assert err.message
    assert err.message_fa
    assert str(err) == err.message


@pytest.mark.parametrize(
    ("raw", "codepoint", "latin"),
    [
        ("ТАХIR", "U+0422", "'T'"),
        ("TАXIR", "U+0410", "'A'"),
        ("SABT۱", "U+06F1", "'l'"),
        ("ＳＡＢＴ", "U+FF33", "'S'"),
    ],
)
def test_confusable_message_names_character(raw: str, codepoint: str, latin: str) -> None:
    with pytest.raises(MaskError) as excinfo:
        validate_mask(raw)
    assert excinfo.value.code == "mask_confusable_character"
    assert codepoint in excinfo.value.message
    assert latin in excinfo.value.message
    assert codepoint in excinfo.value.message_fa


def test_invalid_message_names_character() -> None:
    with pytest.raises(MaskError) as excinfo:
        validate_mask("SABT@")
    assert "'@'" in excinfo.value.message
    assert "U+0040" in excinfo.value.message


def test_too_long_message_in_persian_uses_persian_digits() -> None:
    with pytest.raises(MaskError) as excinfo:
        validate_mask("ABCDEFGHIJKL")
    assert "12" in excinfo.value.message
    assert "۱۲" in excinfo.value.message_fa


def test_mask_error_is_value_error() -> None:
    assert issubclass(MaskError, ValueError)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("P0L1CE", "pollce"),
        ("POLICE", "pollce"),
        ("IRAN-GOV", "lrangov"),
        ("Sabt Ahval", "sabtahval"),
        ("5ABT", "sabt"),
        ("8IME", "blme"),
        ("2AB", "zab"),
        ("VVEB", "web"),
        ("Tarn", "tam"),
        ("ТАХIR", "taxlr"),  # Cyrillic from a config file
        ("ＳＡＢＴ", "sabt"),
        ("P٥L|CE", "pollce"),
    ],
)
def test_skeleton(raw: str, expected: str) -> None:
    assert skeleton(raw) == expected


@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [
        ("abc", "abc", True),
        ("", "", True),
        ("abc", "abd", True),  # substitution
        ("abc", "xbc", True),
        ("abc", "ab", True),  # deletion
        ("abc", "bc", True),
        ("ab", "abc", True),  # insertion
        ("", "a", True),
        ("abc", "acb", True),  # adjacent transposition
        ("ab", "ba", True),
        ("abcde", "abdce", True),
        ("abc", "xyz", False),
        ("", "ab", False),
        ("abc", "a", False),
        ("abc", "cab", False),  # two transpositions' worth
        ("abcd", "badc", False),  # two transpositions
        ("abcde", "abdcf", False),  # transposition plus substitution
        ("abcd", "axcy", False),  # two substitutions
        ("abc", "abxd", False),  # insertion plus substitution
    ],
)
def test_edit_distance_at_most_one(a: str, b: str, expected: bool) -> None:
    assert edit_distance_at_most_one(a, b) is expected
    assert edit_distance_at_most_one(b, a) is expected


@pytest.mark.parametrize(
    ("candidate", "existing"),
    [
        ("TAX1R", "TAXIR"),
        ("taxir", "TAXIR"),
        ("5ABT", "SABT"),
        ("P0L1CE", "POLICE"),
        ("IRANGOV", "IRAN-GOV"),
        ("MEDUU", "MEDU"),  # one insertion
        ("BMIE", "BIME"),  # transposition
        ("SABT", "SABT"),  # exact duplicate
        ("SAFT", "SABT"),  # one substitution
    ],
)
def test_lookalikes_conflict(candidate: str, existing: str) -> None:
    err = find_conflict(candidate, ["BEHDASHT", existing, "AMOOZESH"], [])
    assert err is not None
    assert err.code == "mask_lookalike"
    assert repr(existing) in err.message
    assert repr(existing) in err.message_fa
    # The relation is symmetric: the older mask would have blocked the newer one too.
    reverse = find_conflict(existing, [candidate], [])
    assert reverse is not None
    assert reverse.code == "mask_lookalike"


@pytest.mark.parametrize(
    ("candidate", "existing"),
    [
        ("TAXIR", "SABTE"),
        ("BEHDASHT", "AMOOZESH"),
        ("SABT", "BIME"),
        ("MEDU", "MEDUUU"),  # two insertions
    ],
)
def test_distinct_masks_do_not_conflict(candidate: str, existing: str) -> None:
    assert find_conflict(candidate, [existing], ["POLICE"]) is None
    assert find_conflict(existing, [candidate], ["POLICE"]) is None


@pytest.mark.parametrize("candidate", ["P0LICE", "POLlCE", "POLICE", "police", "POLIC", "P-OLICE"])
def test_reserved_word_blocks(candidate: str) -> None:
    err = find_conflict(candidate, [], ["POLICE", "ADLIRAN"])
    assert err is not None
    assert err.code == "mask_reserved"
    assert "'POLICE'" in err.message


def test_reserved_word_in_other_script_from_config() -> None:
    # Reserved list typed with a Cyrillic О and Е must still protect the Latin word.
    err = find_conflict("POLICE", [], ["PОLICЕ"])
    assert err is not None
    assert err.code == "mask_reserved"


def test_reserved_checked_before_existing() -> None:
    err = find_conflict("P0LICE", ["POLICE"], ["POLICE"])
    assert err is not None
    assert err.code == "mask_reserved"


def test_empty_reserved_entry_is_ignored() -> None:
    assert find_conflict("A", [], ["", " . "]) is None


def test_free_mask() -> None:
    assert find_conflict("SABT", ["BIME", "BEHDASHT"], ["POLICE"]) is None
