"""The SMPP client (``adapters.sms.esme``) against the SMSC simulator over real TCP on 127.0.0.1.

The simulator decodes with smpplib while the client hand-encodes its hot path, so each exchange
also cross-checks the two codecs.
"""

from __future__ import annotations

import asyncio
import re
import socket
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import pytest

from adapters.sms import errors, pdu
from adapters.sms.esme import (
    BindSettings,
    Deliver,
    OperatorClient,
    OperatorSettings,
    Submit,
    decode_deliver,
    encode_submit,
)
from adapters.sms.simulator import SimulatorSettings, SmscSimulator

CITIZEN = "989121234567"
PERSIAN = "سلام شهروند گرامی، قبض گاز شما صادر شد. "


@pytest.fixture
async def sim() -> AsyncIterator[SmscSimulator]:
    s = SmscSimulator(
        SimulatorSettings(port=0, dlr_delay_seconds=0.0, seed=7, redeliver_delay_seconds=0.05)
    )
    await s.start()
    yield s
    await s.stop()


def bind(sim: SmscSimulator, **changes: Any) -> BindSettings:
    fields: dict[str, Any] = {
        "reconnect_min_seconds": 0.05,
        "reconnect_max_seconds": 0.2,
        "response_timeout_seconds": 2.0,
    }
    fields.update(changes)
    return BindSettings("127.0.0.1", sim.port, "payam", "secret", **fields)


async def ignore(_: Deliver) -> None:
    return None


@asynccontextmanager
async def running(
    sim: SmscSimulator,
    *binds: BindSettings,
    on_deliver: Callable[[Deliver], Awaitable[None]] = ignore,
    tps: float = 0,
    wait: bool = True,
) -> AsyncIterator[OperatorClient]:
    client = OperatorClient(OperatorSettings("mci", binds or (bind(sim),), tps), on_deliver)
    await client.start()
    try:
        if wait:
            assert await client.wait_bound(2.0)
        yield client
    finally:
        await client.stop()


def sms(text: str = "salam", **changes: Any) -> Submit:
    fields: dict[str, Any] = {
        "source_addr": "4040",
        "source_addr_ton": 0,
        "source_addr_npi": 1,
        "destination_addr": CITIZEN,
        "short_message": text.encode("ascii"),
    }
    fields.update(changes)
    return Submit(**fields)


async def eventually(condition: Callable[[], bool], timeout: float = 2.0) -> None:
    for _ in range(int(timeout / 0.01)):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("condition not met in time")


# --- codec --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "submit",
    [
        sms(),
        sms(registered_delivery=0, data_coding=8, short_message="پیام".encode("utf-16-be")),
        sms(esm_class=0x40, short_message=bytes((5, 0, 3, 9, 2, 1)) + b"x" * 153),
        sms(source_addr="GOV.IR", source_addr_ton=5, source_addr_npi=0, short_message=b""),
    ],
)
def test_hand_encoded_submit_sm_is_byte_identical_to_smpplib(submit: Submit) -> None:
    expected = pdu.build(
        "submit_sm",
        77,
        source_addr_ton=submit.source_addr_ton,
        source_addr_npi=submit.source_addr_npi,
        source_addr=submit.source_addr,
        dest_addr_ton=1,
        dest_addr_npi=1,
        destination_addr=submit.destination_addr,
        esm_class=submit.esm_class,
        registered_delivery=submit.registered_delivery,
        data_coding=submit.data_coding,
        short_message=submit.short_message,
    )
    assert encode_submit(77, submit) == expected


def test_extra_fields_go_through_smpplib() -> None:
    frame = encode_submit(5, sms(extra={"ussd_service_op": 2, "its_session_info": 0x0102}))
    parsed = pdu.parse(frame)
    assert (parsed.sequence, parsed.ussd_service_op, parsed.its_session_info) == (5, 2, 0x0102)


def test_deliver_sm_decoding_matches_smpplib_encoding() -> None:
    frame = pdu.build(
        "deliver_sm",
        9,
        source_addr=CITIZEN,
        destination_addr="4040",
        esm_class=0x04,
        data_coding=3,
        short_message=b"id:1a stat:DELIVRD",
        receipted_message_id="1a",
        message_state=2,
        network_error_code=b"\x03\x00\x01",
        sar_msg_ref_num=0x0102,
        sar_total_segments=2,
        sar_segment_seqnum=1,
    )
    d = decode_deliver(frame, "mci", "mci:0")
    assert (d.source_addr, d.destination_addr, d.esm_class, d.data_coding) == (
        CITIZEN,
        "4040",
        4,
        3,
    )
    assert d.short_message == b"id:1a stat:DELIVRD"
    assert (d.receipted_message_id, d.message_state, d.network_error_code) == ("1a", 2, b"\3\0\1")
    assert (d.sar_msg_ref_num, d.sar_total_segments, d.sar_segment_seqnum) == (0x0102, 2, 1)
    assert d.ussd_service_op is None
    assert d.message_payload is None
    with pytest.raises(pdu.PduError):
        decode_deliver(frame[:-3], "mci", "mci:0")


@pytest.mark.parametrize(
    ("status", "retryable", "throttle"),
    [
        (pdu.ESME_RTHROTTLED, True, True),
        (pdu.ESME_RMSGQFUL, True, True),
        (pdu.ESME_RSYSERR, True, False),
        (pdu.ESME_RSUBMITFAIL, True, False),
        (pdu.ESME_RX_T_APPN, True, False),
        (pdu.ESME_RINVDSTADR, False, False),
        (pdu.ESME_RINVSRCADR, False, False),
        (pdu.ESME_RINVDCS, False, False),
        (pdu.ESME_RINVMSGLEN, False, False),
        (pdu.ESME_RINVESMCLASS, False, False),
        (pdu.ESME_RX_P_APPN, False, False),
        (0x000000FF, True, False),  # unknown: retried (bounded) rather than lost
    ],
)
def test_status_catalogue(status: int, retryable: bool, throttle: bool) -> None:
    error = errors.from_status(status)
    assert (error.retryable, error.throttle, error.status) == (retryable, throttle, status)
    assert error.code in errors.CODES


# --- binding ------------------------------------------------------------------------------------


async def test_bind_transceiver(sim: SmscSimulator) -> None:
    async with running(sim) as client:
        assert client.binds_up == 1
        assert sim.bound == 1
        assert sim.binds == 1


@pytest.mark.parametrize(("system_id", "password"), [("payam", "wrong"), ("nobody", "secret")])
async def test_refused_bind_backs_off_and_retries(
    sim: SmscSimulator, system_id: str, password: str
) -> None:
    refused = BindSettings(
        "127.0.0.1",
        sim.port,
        system_id,
        password,
        reconnect_min_seconds=0.05,
        reconnect_max_seconds=0.1,
        response_timeout_seconds=0.3,
    )
    async with running(sim, refused, wait=False) as client:
        assert not await client.wait_bound(0.5)
        assert client.binds_up == 0
        assert sim.binds == 0
        assert sim.bind_failures >= 2  # it keeps trying, with backoff
        started = time.monotonic()
        result = await client.submit(sms())
        assert result.error == errors.NO_BIND
        assert result.error.retryable
        assert 0.25 <= time.monotonic() - started < 1.0


async def test_transmitter_receiver_pair(sim: SmscSimulator) -> None:
    got: list[Deliver] = []

    async def on_deliver(d: Deliver) -> None:
        got.append(d)

    async with running(sim, bind(sim, mode="tx_rx"), on_deliver=on_deliver) as client:
        assert client.binds_up == 2
        assert sim.bound == 2
        result = await client.submit(sms())
        assert result.ok
        assert result.bind == "mci:0:tx"
        await eventually(lambda: len(got) == 1)
        assert got[0].bind == "mci:0:rx"
        assert got[0].receipted_message_id == result.message_id


async def test_submit_before_bind_is_refused(sim: SmscSimulator) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", sim.port)
    try:
        writer.write(encode_submit(3, sms()))
        frame = await asyncio.wait_for(pdu.read_frame(reader), 2.0)
    finally:
        writer.close()
        await writer.wait_closed()
    _, cmd, status, seq = pdu.header(frame)
    assert (cmd, status, seq) == (pdu.command_id("submit_sm_resp"), pdu.ESME_RINVBNDSTS, 3)
    assert sim.submits == 0


async def test_closing_ends_submits_waiting_for_a_bind_at_once(sim: SmscSimulator) -> None:
    """Shutdown while the SMSC is unreachable: a submit waiting for a bind returns NO_BIND as
    soon as the client is closing, not after the wait limit (which held every shutdown with
    binds down for 10 s), and the message is retried after the restart."""
    await sim.stop()  # nothing listens: the bind keeps reconnecting
    async with running(sim, bind(sim, response_timeout_seconds=30.0), wait=False) as client:
        waiting = asyncio.create_task(client.submit(sms()))
        await asyncio.sleep(0.2)
        assert not waiting.done()  # it waits for a bind, as messages must while binds are down
        started = time.monotonic()
        client.closing()
        result = await asyncio.wait_for(waiting, 1.0)
        assert result.error == errors.NO_BIND
        assert time.monotonic() - started < 0.5


# --- submitting ---------------------------------------------------------------------------------


@pytest.mark.parametrize(("id_format", "pattern"), [("hex", "[0-9a-f]{8}"), ("dec", "[0-9]{9,10}")])
async def test_submit_returns_the_smsc_message_id(
    sim: SmscSimulator, id_format: Any, pattern: str
) -> None:
    sim.settings.id_format = id_format
    async with running(sim) as client:
        first = await client.submit(sms())
        second = await client.submit(sms())
    assert first.ok
    assert first.error is None
    assert first.bind == "mci:0"
    assert re.fullmatch(pattern, first.message_id)
    assert [m.message_ids for m in sim.received] == [(first.message_id,), (second.message_id,)]
    assert client.submits_ok == 2
    assert client.submits_failed == 0


async def test_window_caps_submits_in_flight(sim: SmscSimulator) -> None:
    sim.settings.response_delay_seconds = 0.3
    async with running(sim, bind(sim, window=10)) as client:
        started = time.monotonic()
        done: list[float] = []

        async def one() -> bool:
            result = await client.submit(sms())
            done.append(time.monotonic() - started)
            return result.ok

        tasks = [asyncio.create_task(one()) for _ in range(11)]
        await asyncio.sleep(0.15)
        assert client.in_flight == 10
        assert sim.in_flight == 10
        assert all(await asyncio.gather(*tasks))
    assert sim.max_in_flight == 10
    assert max(done[:10]) < 0.5 <= done[10]  # the 11th waited for a slot


async def test_least_loaded_bind_is_chosen(sim: SmscSimulator) -> None:
    sim.settings.response_delay_seconds = 0.2
    async with running(sim, bind(sim, window=3), bind(sim, window=3)) as client:
        results = await asyncio.gather(*(client.submit(sms()) for _ in range(6)))
    assert Counter(r.bind for r in results) == {"mci:0": 3, "mci:1": 3}
    assert sim.max_in_flight == 6


async def test_tps_token_bucket_paces_submits(sim: SmscSimulator) -> None:
    async with running(sim, tps=200) as client:
        started = time.monotonic()
        results = await asyncio.gather(*(client.submit(sms()) for _ in range(100)))
        elapsed = time.monotonic() - started
    assert all(r.ok for r in results)
    assert 0.45 <= elapsed < 2.0


async def test_throttled_is_retryable_and_pauses_the_bind(sim: SmscSimulator) -> None:
    sim.settings.throttle_pct = 100
    async with running(sim, bind(sim, throttle_backoff_seconds=0.3)) as client:
        result = await client.submit(sms())
        assert result.error == errors.THROTTLED
        assert result.error.retryable
        assert result.error.throttle
        assert not result.ok
        started = time.monotonic()
        again = await client.submit(sms())  # waits out the 0.3 s pause, throttled again
        assert again.error == errors.THROTTLED
        assert time.monotonic() - started >= 0.25
        sim.settings.throttle_pct = 0
        started = time.monotonic()
        ok = await client.submit(sms())  # the pause doubled
        assert ok.ok
        assert time.monotonic() - started >= 0.55
        assert client.throttles == 2
        assert sim.throttled == 2


async def test_generic_nack_is_retryable(sim: SmscSimulator) -> None:
    sim.settings.nack_pct = 100
    async with running(sim) as client:
        result = await client.submit(sms())
    assert result.error == errors.GENERIC_NACK
    assert result.error.retryable
    assert not result.error.throttle
    assert sim.nacked == 1


async def test_missing_response_times_out(sim: SmscSimulator) -> None:
    sim.settings.no_response_pct = 100
    async with running(sim, bind(sim, response_timeout_seconds=0.3)) as client:
        started = time.monotonic()
        result = await client.submit(sms())
        elapsed = time.monotonic() - started
        assert result.error == errors.TIMEOUT
        assert result.error.retryable
        assert 0.25 <= elapsed < 0.9
        assert client.in_flight == 0
        assert client.binds_up == 1
        assert client.timeouts == 1


async def test_late_response_is_ignored_and_its_slot_released(sim: SmscSimulator) -> None:
    sim.settings.response_delay_seconds = 0.5
    async with running(sim, bind(sim, window=1, response_timeout_seconds=0.3)) as client:
        assert (await client.submit(sms())).error == errors.TIMEOUT
        sim.settings.response_delay_seconds = 0
        assert (await client.submit(sms())).ok  # the slot was released at the timeout
        await eventually(lambda: sim.in_flight == 0)  # the late response went out
        assert (await client.submit(sms())).ok
        assert client.binds_up == 1
        assert client.reconnects == 0


async def test_dropped_connection_fails_in_flight_submits_then_reconnects(
    sim: SmscSimulator,
) -> None:
    sim.settings.response_delay_seconds = 0.5
    sim.settings.drop_after = 5
    async with running(sim) as client:
        started = time.monotonic()
        submits = asyncio.gather(*(client.submit(sms()) for _ in range(5)))
        results = await asyncio.wait_for(submits, 5.0)
        assert time.monotonic() - started < 0.45  # failed at the drop, not at a timeout
        assert [r.error for r in results] == [errors.BIND_DOWN] * 5
        assert all(r.error is not None and r.error.retryable for r in results)
        sim.settings.drop_after = None
        sim.settings.response_delay_seconds = 0
        assert client.binds_up == 0
        resubmitted = await client.submit(sms())  # waits for the reconnection, no NO_BIND
        assert resubmitted.ok
        assert client.reconnects == 1
        assert sim.drops == 1


async def test_waiting_submits_take_slots_freed_on_any_bind(sim: SmscSimulator) -> None:
    sim.settings.response_delay_seconds = 0.2
    async with running(sim, bind(sim, window=2), bind(sim, window=1)) as client:
        results = await asyncio.gather(*(client.submit(sms()) for _ in range(9)))
    assert all(r.ok for r in results)
    assert sim.max_in_flight == 3
    counts = Counter(r.bind for r in results)  # each bind served more than its window
    assert counts["mci:0"] > 2
    assert counts["mci:1"] > 1


async def test_smsc_unbind_leads_to_reconnect(sim: SmscSimulator) -> None:
    sim.settings.unbind_after = 1
    async with running(sim) as client:
        assert (await client.submit(sms())).ok
        await eventually(lambda: sim.unbind_resps == 1)
        sim.settings.unbind_after = None
        await eventually(lambda: client.reconnects == 1)
        assert await client.wait_bound(2.0)
        assert (await client.submit(sms())).ok
        assert sim.binds == 2


async def test_no_bind_when_the_smsc_is_unreachable() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # nothing listens here
    settings = BindSettings(
        "127.0.0.1",
        port,
        "payam",
        "secret",
        response_timeout_seconds=0.3,
        reconnect_min_seconds=0.05,
    )
    client = OperatorClient(OperatorSettings("mci", (settings,)), ignore)
    await client.start()
    try:
        started = time.monotonic()
        result = await client.submit(sms())
        assert result.error == errors.NO_BIND
        assert result.bind == ""
        assert 0.25 <= time.monotonic() - started < 1.0
    finally:
        await client.stop()


# --- delivery receipts and MO -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("changes", "expected_id", "stat", "state"),
    [
        ({}, lambda mid: mid, "DELIVRD", 2),
        (
            {"dlr_id_format": "dec", "outcomes": {"UNDELIV": 1}},
            lambda m: str(int(m, 16)),
            "UNDELIV",
            5,
        ),
        (
            {
                "id_format": "dec",
                "dlr_id_format": "hex",
                "dlr_id_uppercase": True,
                "dlr_id_zero_pad": 12,
            },
            lambda m: f"{int(m):012X}",
            "DELIVRD",
            2,
        ),
    ],
)
async def test_receipt_reaches_on_deliver(
    sim: SmscSimulator,
    changes: dict[str, Any],
    expected_id: Callable[[str], str],
    stat: str,
    state: int,
) -> None:
    for key, value in changes.items():
        setattr(sim.settings, key, value)
    got: asyncio.Queue[Deliver] = asyncio.Queue()
    async with running(sim, on_deliver=got.put) as client:
        result = await client.submit(sms())
        receipt = await asyncio.wait_for(got.get(), 2.0)
    assert receipt.esm_class == 0x04
    assert receipt.operator == "mci"
    assert receipt.bind == "mci:0"
    assert receipt.receipted_message_id == expected_id(result.message_id)
    assert receipt.message_state == state
    text = receipt.short_message.decode("ascii")
    assert re.fullmatch(
        rf"id:{expected_id(result.message_id)} sub:001 dlvrd:00[01] submit date:\d{{10}} "
        rf"done date:\d{{10}} stat:{stat} err:\d{{3}} text:salam",
        text,
    )
    assert (receipt.network_error_code is None) == (stat == "DELIVRD")
    assert (receipt.source_addr, receipt.destination_addr) == (CITIZEN, "4040")


async def test_early_receipt_is_still_delivered(sim: SmscSimulator) -> None:
    sim.settings.dlr_early = True
    order: list[tuple[str, str | None]] = []

    async def on_deliver(d: Deliver) -> None:
        order.append(("receipt", d.receipted_message_id))

    async with running(sim, on_deliver=on_deliver) as client:
        result = await client.submit(sms())
        order.append(("response", result.message_id))
    assert order == [("receipt", result.message_id), ("response", result.message_id)]


async def test_deliver_sm_resp_only_after_on_deliver_returns(sim: SmscSimulator) -> None:
    entered, release = asyncio.Event(), asyncio.Event()

    async def on_deliver(_: Deliver) -> None:
        entered.set()
        await release.wait()

    async with running(sim, on_deliver=on_deliver) as client:
        assert (await client.submit(sms())).ok
        await asyncio.wait_for(entered.wait(), 2.0)
        await asyncio.sleep(0.2)
        assert sim.deliver_sent == 1
        assert sim.deliver_acks == 0
        release.set()
        await eventually(lambda: sim.deliver_acks == 1)


async def test_failing_on_deliver_gets_the_receipt_redelivered(sim: SmscSimulator) -> None:
    calls: list[str | None] = []

    async def on_deliver(d: Deliver) -> None:
        calls.append(d.receipted_message_id)
        if len(calls) == 1:
            raise RuntimeError("store unavailable")

    async with running(sim, on_deliver=on_deliver) as client:
        result = await client.submit(sms())
        await eventually(lambda: sim.deliver_acks == 1)
    assert sim.deliver_errors == [pdu.ESME_RX_T_APPN]
    assert calls == [result.message_id, result.message_id]
    assert client.deliver_errors == 1
    assert client.delivers == 1


async def test_long_persian_mo_arrives_as_three_concatenated_parts(sim: SmscSimulator) -> None:
    text = (PERSIAN * 6)[:200]
    got: list[Deliver] = []

    async def on_deliver(d: Deliver) -> None:
        got.append(d)

    async with running(sim, on_deliver=on_deliver):
        await sim.inject_mo(CITIZEN, "4040", text)
    assert len(got) == 3
    refs = set()
    for seq, part in enumerate(got, 1):
        assert (part.source_addr, part.destination_addr) == (CITIZEN, "4040")
        assert part.esm_class & 0x40
        assert part.data_coding == 8
        udh = part.short_message[:6]
        assert udh[:3] == b"\x05\x00\x03"
        assert udh[4:] == bytes((3, seq))
        refs.add(udh[3])
    assert len(refs) == 1
    assert "".join(p.short_message[6:].decode("utf-16-be") for p in got) == text


async def test_ussd_mo_carries_its_tlvs(sim: SmscSimulator) -> None:
    got: asyncio.Queue[Deliver] = asyncio.Queue()
    async with running(sim, on_deliver=got.put):
        await sim.inject_mo(CITIZEN, "*4*1#", "1", ussd_service_op=1, its_session_info=0x0102)
        mo = got.get_nowait()
    assert (mo.ussd_service_op, mo.its_session_info, mo.short_message) == (1, 0x0102, b"1")
    assert mo.esm_class == 0
    assert mo.data_coding == 0


def _ucs2_parts(text: str, how: str) -> list[Submit]:
    chunks = [text[i : i + 67] for i in range(0, len(text), 67)]
    parts = []
    for seq, chunk in enumerate(chunks, 1):
        body = chunk.encode("utf-16-be")
        if how == "udh8":
            parts.append(
                sms(
                    esm_class=0x40, data_coding=8, short_message=bytes((5, 0, 3, 42, 3, seq)) + body
                )
            )
        elif how == "udh16":
            udh = bytes((6, 8, 4, 0x12, 0x34, 3, seq))
            parts.append(sms(esm_class=0x40, data_coding=8, short_message=udh + body))
        else:
            sar = {"sar_msg_ref_num": 0x1234, "sar_total_segments": 3, "sar_segment_seqnum": seq}
            parts.append(sms(data_coding=8, short_message=body, extra=sar))
    return parts


@pytest.mark.parametrize("how", ["udh8", "udh16", "sar"])
async def test_simulator_reassembles_a_three_part_ucs2_message(
    sim: SmscSimulator, how: str
) -> None:
    text = (PERSIAN * 5)[:180]
    parts = _ucs2_parts(text, how)
    assert len(parts) == 3
    async with running(sim) as client:
        results = [await client.submit(part) for part in reversed(parts)]  # any order
    assert all(r.ok for r in results)
    assert len(sim.received) == 1
    message = sim.received[0]
    assert (message.text, message.parts, message.data_coding) == (text, 3, 8)
    assert message.message_ids == tuple(r.message_id for r in reversed(results))
    assert (message.source, message.destination) == ("4040", CITIZEN)
    assert sim.receipts == 3  # one receipt per part


async def test_simulator_decodes_gsm7_with_the_extension_table(sim: SmscSimulator) -> None:
    unit = "Pay [x] 5€ "
    septets = unit.encode("ascii", "replace").replace(b"[", b"\x1b<").replace(b"]", b"\x1b>")
    septets = septets.replace(b"?", b"\x1be")  # € is 0x1B 0x65 in GSM 03.38
    bodies = [septets * 10, septets * 7]
    async with running(sim) as client:
        for seq, body in enumerate(bodies, 1):
            udh = bytes((5, 0, 3, 7, 2, seq))
            assert (await client.submit(sms(esm_class=0x40, short_message=udh + body))).ok
    assert [(m.text, m.parts, m.data_coding) for m in sim.received] == [(unit * 17, 2, 0)]


# --- keepalive and shutdown ---------------------------------------------------------------------


async def test_enquire_link_keeps_an_idle_bind_alive(sim: SmscSimulator) -> None:
    async with running(sim, bind(sim, enquire_link_seconds=0.1)) as client:
        await asyncio.sleep(0.55)
        assert sim.enquire_links >= 3
        assert client.binds_up == 1
        assert client.reconnects == 0


async def test_unanswered_enquire_link_drops_and_reconnects(sim: SmscSimulator) -> None:
    sim.settings.ignore_enquire_link = True
    settings = bind(sim, enquire_link_seconds=0.1, response_timeout_seconds=0.2)
    async with running(sim, settings) as client:
        await eventually(lambda: client.reconnects >= 1)
        sim.settings.ignore_enquire_link = False
        assert await client.wait_bound(2.0)
        assert (await client.submit(sms())).ok


async def test_graceful_stop_waits_for_in_flight_then_unbinds(sim: SmscSimulator) -> None:
    sim.settings.response_delay_seconds = 0.2
    client = OperatorClient(OperatorSettings("mci", (bind(sim),)), ignore)
    await client.start()
    assert await client.wait_bound(2.0)
    pending = asyncio.create_task(client.submit(sms()))
    await asyncio.sleep(0.05)
    await client.stop()
    assert (await pending).ok  # answered within the grace period
    assert sim.unbinds == 1
    await eventually(lambda: sim.bound == 0)
    assert (await client.submit(sms())).error == errors.NO_BIND
