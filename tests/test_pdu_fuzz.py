"""Hostile input, SMPP (issue 9, item 5): property-based fuzzing of the PDU decoders a peer's
bytes reach — the framing, smpplib's parser (through adapters/sms/pdu.py) and the hand-written
deliver_sm decoder of adapters/sms/esme.py. Whatever the bytes, they return a value or raise
PduError (the connection is dropped or the PDU refused), never anything else. Short in CI;
PAYAM_FUZZ_EXAMPLES raises it."""

from __future__ import annotations

import asyncio
import contextlib
import os
import struct

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from adapters.sms import pdu
from adapters.sms.esme import decode_deliver

EXAMPLES = int(os.environ.get("PAYAM_FUZZ_EXAMPLES", "300"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
COMMANDS = [pdu.command_id(c) for c in ("deliver_sm", "submit_sm", "bind_transceiver")]
COMMANDS += [pdu.command_id("submit_sm_resp"), pdu.command_id("enquire_link"), 0x00000102]


def _frame(command: int, body: bytes, seq: int = 1) -> bytes:
    return struct.pack(">LLLL", 16 + len(body), command, 0, seq) + body


@FUZZ
@given(command=st.sampled_from(COMMANDS), body=st.binary(max_size=400))
def test_parse_any_body_returns_or_raises_pdu_error(command: int, body: bytes) -> None:
    with contextlib.suppress(pdu.PduError):
        pdu.parse(_frame(command, body))


@FUZZ
@given(body=st.binary(max_size=400), tlvs=st.binary(max_size=60))
def test_deliver_decoder_returns_or_raises_pdu_error(body: bytes, tlvs: bytes) -> None:
    with contextlib.suppress(pdu.PduError):
        decode_deliver(_frame(pdu.command_id("deliver_sm"), body + tlvs), "mci", "mci:0")


@FUZZ
@given(
    fields=st.fixed_dictionaries(
        {
            "source_addr": st.text(alphabet="0123456789", max_size=20),
            "destination_addr": st.text(alphabet="0123456789", max_size=20),
            "esm_class": st.integers(0, 255),
            "data_coding": st.sampled_from([0, 8]),
            "short_message": st.binary(max_size=200),
        }
    ),
    cut=st.integers(0, 200),
)
def test_deliver_decoder_on_truncated_valid_pdus(fields: dict[str, object], cut: int) -> None:
    """A valid deliver_sm cut anywhere (its command_length kept honest) never gets past the
    decoder as garbage: the full PDU round-trips, a cut one is refused."""
    full = pdu.build("deliver_sm", 7, **fields)
    decoded = decode_deliver(full, "mci", "mci:0")
    assert decoded.short_message == fields["short_message"]
    body = full[16 : max(16, len(full) - 1 - cut)]
    with contextlib.suppress(pdu.PduError):
        decode_deliver(_frame(pdu.command_id("deliver_sm"), body), "mci", "mci:0")


@FUZZ
@given(length=st.integers(0, 2**32 - 1), rest=st.binary(max_size=64))
def test_framing_refuses_absurd_lengths_without_allocating(length: int, rest: bytes) -> None:
    async def read() -> None:
        reader = asyncio.StreamReader()
        reader.feed_data(struct.pack(">L", length) + rest)
        reader.feed_eof()
        try:
            frame = await pdu.read_frame(reader)
        except (pdu.PduError, asyncio.IncompleteReadError):
            return
        assert pdu.HEADER_LEN <= len(frame) <= pdu.MAX_PDU_LEN

    asyncio.run(read())
