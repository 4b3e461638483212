"""GSM 03.38 / UCS2 encoding, splitting at character boundaries, UDH, and decoding back."""

from __future__ import annotations

import random
from typing import Any

import pytest

from adapters.sms.encoding import (
    MAX_PARTS,
    Encoded,
    TooManyParts,
    decode,
    encode,
    fits_gsm7,
    gsm7_length,
    join_parts,
    plan,
)

PERSIAN = "سلام، شهروند گرامی. پیامک یکپارچه ایران؛ کد ۱۲۳۴ "  # ی and ک are Arabic-script
EMOJI = "😀"  # U+1F600, outside the BMP: a surrogate pair in UTF-16


def _persian(n: int) -> str:
    return (PERSIAN * (n // len(PERSIAN) + 1))[:n]


def _bodies(enc: Encoded) -> list[bytes]:
    return [p[6:] if enc.udhi else p for p in enc.parts]


def _roundtrip(enc: Encoded) -> str | None:
    decoded = [decode(p, enc.data_coding, enc.udhi) for p in enc.parts]
    if not enc.udhi:
        return decoded[0].text
    got: dict[int, str] = {}
    for d in decoded:
        assert d.concat is not None
        got[d.concat[2]] = d.text
    return join_parts(got, len(enc.parts))


@pytest.mark.parametrize("ref", [7, 0x1234, 255, 0])
def test_persian_200_chars_three_ucs2_parts(ref: int) -> None:
    text = _persian(200)
    assert len(text) == 200
    enc = encode(text, ref=ref)
    assert (enc.encoding, enc.data_coding, enc.udhi, enc.units) == ("ucs2", 8, True, 200)
    assert len(enc.parts) == 3
    for seq, part in enumerate(enc.parts, start=1):
        assert part[:6] == bytes((0x05, 0x00, 0x03, ref & 0xFF, 3, seq))
        d = decode(part, 8, True)
        assert d.concat == (ref & 0xFF, 3, seq)
    assert [len(b) for b in _bodies(enc)] == [134, 134, 132]
    assert _roundtrip(enc) == text
    assert plan(text) == ("ucs2", 3)


@pytest.mark.parametrize(
    ("text", "encoding", "parts", "body_lengths"),
    [
        ("", "gsm7", 1, [0]),
        (_persian(70), "ucs2", 1, [140]),
        (_persian(71), "ucs2", 2, [134, 8]),
        (_persian(134), "ucs2", 2, [134, 134]),
        (_persian(135), "ucs2", 3, [134, 134, 2]),
        ("a" * 160, "gsm7", 1, [160]),
        ("a" * 161, "gsm7", 2, [153, 8]),
        ("a" * 306, "gsm7", 2, [153, 153]),
        ("a" * 307, "gsm7", 3, [153, 153, 1]),
        ("€" * 80, "gsm7", 1, [160]),  # 80 extension chars = 160 septets
        ("€" * 81, "gsm7", 2, [152, 10]),  # 76 pairs fit in 153, the 77th moves on
        # 71 code units: too many for one message, and the emoji does not straddle 67.
        ("a" * 69 + EMOJI, "ucs2", 2, [134, 8]),
    ],
    ids=[
        "empty",
        "fa70",
        "fa71",
        "fa134",
        "fa135",
        "gsm160",
        "gsm161",
        "gsm306",
        "gsm307",
        "euro80",
        "euro81",
        "latin69+emoji",
    ],
)
def test_part_counts(text: str, encoding: str, parts: int, body_lengths: list[int]) -> None:
    enc = encode(text, ref=1)
    assert enc.encoding == encoding
    assert len(enc.parts) == parts
    assert enc.udhi is (parts > 1)
    assert [len(b) for b in _bodies(enc)] == body_lengths
    assert plan(text) == (encoding, parts)
    assert _roundtrip(enc) == text


@pytest.mark.parametrize(("char", "code"), [("€", 0x65), ("{", 0x28), ("\\", 0x2F), ("|", 0x40)])
def test_escape_at_153rd_septet_moves_whole(char: str, code: int) -> None:
    # 152 septets, then a 2-septet character that would occupy septets 153 and 154.
    text = "a" * 152 + char + "b" * 10
    enc = encode(text, ref=9)
    assert enc.units == 164
    first, second = _bodies(enc)
    assert first == b"a" * 152  # one septet short rather than a lone escape
    assert first[-1] != 0x1B
    assert second[:2] == bytes((0x1B, code))
    assert plan(text) == ("gsm7", 2)
    assert _roundtrip(enc) == text


def test_escape_ending_exactly_at_153_stays() -> None:
    text = "a" * 151 + "€" + "b" * 10
    first, second = _bodies(encode(text, ref=9))
    assert first == b"a" * 151 + b"\x1b\x65"
    assert second == b"b" * 10


def test_emoji_at_67_unit_boundary_moves_whole() -> None:
    text = _persian(66) + EMOJI + _persian(10)
    enc = encode(text, ref=3)
    assert enc.units == 78
    first, second = _bodies(enc)
    assert len(first) == 66 * 2
    assert not 0xD8 <= first[-2] <= 0xDB  # no high surrogate at the end
    assert second[:4] == EMOJI.encode("utf-16-be") == b"\xd8\x3d\xde\x00"
    assert plan(text) == ("ucs2", 2)
    assert _roundtrip(enc) == text


_POOLS = [
    "abcdefghij XYZ 0123456789.,!?@£$",
    PERSIAN,
    "€{}[]~^|\\",
    EMOJI + "🇮🇷👍🏽",
]


def _random_text(rng: random.Random) -> str:
    n = rng.choice([rng.randint(0, 80), rng.randint(60, 400), rng.randint(300, 1200)])
    weights = [rng.random() for _ in _POOLS]
    if rng.random() < 0.5:
        weights[1] = weights[3] = 0.0  # a GSM-only text half of the time
        weights[0] += 0.01
    return "".join(rng.choice(rng.choices(_POOLS, weights)[0]) for _ in range(n))


@pytest.mark.parametrize("seed", range(8))
def test_plan_agrees_with_encode_and_roundtrips(seed: int) -> None:
    rng = random.Random(seed)
    seen: set[tuple[str, bool]] = set()
    for _ in range(150):
        text = _random_text(rng)
        enc = encode(text, ref=rng.randrange(256))
        assert plan(text) == (enc.encoding, len(enc.parts))
        seen.add((enc.encoding, enc.udhi))
        gsm = enc.encoding == "gsm7"
        assert gsm is fits_gsm7(text)
        limit = (153 if gsm else 134) if enc.udhi else (160 if gsm else 140)
        for body in _bodies(enc):
            assert len(body) <= limit
            if body and gsm:
                assert body[-1] != 0x1B
            elif body:
                assert not 0xD8 <= body[-2] <= 0xDB
        assert _roundtrip(enc) == text
    # The generator really exercised every combination.
    assert seen == {("gsm7", False), ("gsm7", True), ("ucs2", False), ("ucs2", True)}


@pytest.mark.parametrize(
    ("text", "kwargs", "encoding", "data_coding", "first_body"),
    [
        ("Hi@", {}, "gsm7", 0, b"Hi\x00"),
        ("Hi@", {"data_coding": 0x08}, "ucs2", 8, b"\x00H\x00i\x00@"),
        ("Hi@", {"data_coding": 0x00}, "gsm7", 0, b"Hi\x00"),
        ("Hi@", {"data_coding": 0x01}, "gsm7", 1, b"Hi\x00"),
        ("Hi@", {"force_ucs2": True}, "ucs2", 8, b"\x00H\x00i\x00@"),
        ("Hi@", {"force_ucs2": True, "data_coding": 0}, "ucs2", 8, b"\x00H\x00i\x00@"),
        ("سل", {"data_coding": 0x00}, "ucs2", 8, "سل".encode("utf-16-be")),
    ],
)
def test_data_coding_override(
    text: str, kwargs: dict[str, Any], encoding: str, data_coding: int, first_body: bytes
) -> None:
    enc = encode(text, ref=0, **kwargs)
    assert (enc.encoding, enc.data_coding, enc.parts) == (encoding, data_coding, (first_body,))
    assert plan(text, **kwargs) == (encoding, 1)
    assert decode(enc.parts[0], enc.data_coding, False).text == text


def test_override_changes_part_count() -> None:
    text = "a" * 100  # one GSM part, but two UCS2 parts
    assert len(encode(text, ref=0, data_coding=8).parts) == 2
    assert plan(text, data_coding=8) == ("ucs2", 2)


@pytest.mark.parametrize("dc", [0x03, 0x04, 0x18, 0xF0])
def test_unsupported_override_refused(dc: int) -> None:
    with pytest.raises(ValueError, match="data_coding"):
        encode("Hi", ref=0, data_coding=dc)


@pytest.mark.parametrize(
    ("text", "max_ok"),
    [("a", 153 * MAX_PARTS), ("ا", 67 * MAX_PARTS), ("€", 76 * MAX_PARTS)],
)
def test_more_than_255_parts_refused(text: str, max_ok: int) -> None:
    assert MAX_PARTS == 255
    ok = text * max_ok
    assert plan(ok)[1] == 255
    assert len(encode(ok, ref=0).parts) == 255
    for call in (lambda: plan(ok + text), lambda: encode(ok + text, ref=0)):
        with pytest.raises(ValueError, match="256 parts") as info:
            call()
        assert isinstance(info.value, TooManyParts)
        assert info.value.parts == 256


@pytest.mark.parametrize(
    ("short_message", "data_coding", "text", "concat"),
    [
        # IEI 0x08: 16-bit reference (3GPP TS 23.040 §9.2.3.24.8).
        (b"\x06\x08\x04\x12\x34\x03\x02" + "سلام".encode("utf-16-be"), 8, "سلام", (0x1234, 3, 2)),
        # An application port IE (0x05) before the 8-bit concat IE is skipped.
        (b"\x0b\x05\x04\x0b\x84\x23\xf0\x00\x03\x2a\x02\x01Hello", 0, "Hello", (0x2A, 2, 1)),
        # seq above total / total 0: the IE is ignored (§9.2.3.24.1).
        (b"\x05\x00\x03\x01\x02\x03ab", 0, "ab", None),
        (b"\x05\x00\x03\x01\x00\x00ab", 0, "ab", None),
        # A UDH without a concat IE.
        (b"\x03\x70\x01\x00ab", 0, "ab", None),
        # A repeated concat IE: the last one counts (§9.2.3.24).
        (b"\x0a\x00\x03\x01\x02\x01\x00\x03\x09\x02\x02ab", 0, "ab", (9, 2, 2)),
    ],
)
def test_decode_udh(
    short_message: bytes, data_coding: int, text: str, concat: tuple[int, int, int] | None
) -> None:
    d = decode(short_message, data_coding, True)
    assert (d.text, d.concat) == (text, concat)


@pytest.mark.parametrize("short_message", [b"", b"\x05\x00\x03\x01"])
def test_truncated_udh_refused(short_message: bytes) -> None:
    with pytest.raises(ValueError, match="UDH"):
        decode(short_message, 0, True)


@pytest.mark.parametrize(
    ("short_message", "data_coding", "text"),
    [
        (b"\x00\x01\x02\x11\x1b\x65\x1b\x28\x1b\x3c", 0, "@£$_€{["),
        (b"Hello\x1b\x14", 1, "Hello^"),
        (b"a\x1b\x41b", 0, "a?b"),  # undefined extension code
        (b"a\x1b\x1bb", 0, "a?b"),  # second extension table: not supported
        (b"a\x1b", 0, "a?"),  # lone trailing escape
        (b"a\xe9", 0, "a?"),  # not a septet
        (b"caf\xe9", 3, "café"),
        ("سلام".encode("utf-16-be"), 0x18, "سلام"),  # other dc, even length: UTF-16BE
        (b"ab\xe9", 0xF5, "abé"),  # other dc, odd length: Latin-1
        (b"\x00a\xd8\x3d", 8, "a\ud83d"),  # half a pair from a foreign splitter is kept
        (b"\x00a\x00", 8, "a?"),  # odd UCS2 length
    ],
)
def test_decode_alphabets(short_message: bytes, data_coding: int, text: str) -> None:
    d = decode(short_message, data_coding, False)
    assert (d.text, d.concat) == (text, None)


@pytest.mark.parametrize(
    ("text", "fits", "septets"),
    [
        ("Hello @ £ ¥ è Ç Δ Ξ ß É ¡ ¿ § à\n\r", True, 33),
        ("a€{}[]~^|\\\f", True, 21),
        ("ی", False, None),  # Persian yeh (U+06CC)
        ("ك", False, None),  # Arabic kaf (U+0643)
        ("ç", False, None),  # only capital Ç is in the table
        ("\x1b", False, None),  # the escape itself is not a character
        (EMOJI, False, None),
    ],
)
def test_gsm7_table(text: str, fits: bool, septets: int | None) -> None:
    assert fits_gsm7(text) is fits
    if septets is None:
        with pytest.raises(ValueError, match="GSM"):
            gsm7_length(text)
    else:
        assert gsm7_length(text) == septets
        assert encode(text, ref=0).parts == (_expected_gsm(text),)


def _expected_gsm(text: str) -> bytes:
    basic = {"@": 0x00, "£": 0x01, "¥": 0x03, "è": 0x04, "Ç": 0x09, "Δ": 0x10, "Ξ": 0x1A}
    basic |= {"ß": 0x1E, "É": 0x1F, "¡": 0x40, "¿": 0x60, "§": 0x5F, "à": 0x7F}
    ext = {"€": 0x65, "{": 0x28, "}": 0x29, "[": 0x3C, "]": 0x3E, "~": 0x3D, "^": 0x14}
    ext |= {"|": 0x40, "\\": 0x2F, "\f": 0x0A}
    out = bytearray()
    for ch in text:
        if ch in ext:
            out += bytes((0x1B, ext[ch]))
        else:
            out.append(basic.get(ch, ord(ch)))
    return bytes(out)


@pytest.mark.parametrize(
    ("parts", "total", "joined"),
    [
        ({1: "ab", 2: "cd", 3: "e"}, 3, "abcde"),
        ({3: "e", 1: "ab", 2: "cd"}, 3, "abcde"),
        ({1: "ab", 3: "e"}, 3, None),
        ({1: "ab", 2: "cd", 3: "e"}, 4, None),
        ({}, 0, None),
        ({1: "a\ud83d", 2: "\ude00b"}, 2, "a" + EMOJI + "b"),  # pair cut by another splitter
    ],
)
def test_join_parts(parts: dict[int, str], total: int, joined: str | None) -> None:
    assert join_parts(parts, total) == joined
