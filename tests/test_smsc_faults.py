"""SMSC fault matrix (issue 9, item 2): each way an SMSC has failed, injected over the
simulator's HTTP control API (POST /faults for settings, POST /inject for one-shot faults,
adapters/sms/simulator_faults.py) while the gateway sends over real TCP SMPP.

For every fault: none lost (every message delivered, and the SMSC's ledger has each one), no
crash (the gateway answers and dispatches afterwards), the metric that shows the fault rose, and
the time from the fault's end to the last delivery (printed, recorded in docs/RELIABILITY.md).
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field, replace
from typing import Any

import aiohttp
import asyncpg
import pytest
from prometheus_client.parser import text_string_to_metric_families

from adapters.sms.simulator import SimulatorSettings, SmscSimulator
from gateway.config import Config
from gateway.sealing import Sealer
from gateway.store import Store
from tests.sms_harness import agency, all_final, gateway, sms_config, wait_for

N = 20


@dataclass(frozen=True)
class Fault:
    metric: str  # sample name
    labels: dict[str, str]
    settings: dict[str, Any] = field(default_factory=dict)  # POST /faults during the fault
    clear: dict[str, Any] = field(default_factory=dict)  # POST /faults to end it
    inject: tuple[str, int] | None = None  # POST /inject {kind, count}
    then: tuple[str, int] | None = None  # a second injection (bind_refuse needs a reset)
    hold: float = 1.5  # seconds the setting fault lasts while traffic flows
    early: bool = False  # inject before the traffic rather than into it
    min_rise: float = 1.0


EV = "payam_smpp_session_events_total"
FAULTS: dict[str, Fault] = {
    "no_response": Fault(
        "payam_sms_retries_total",
        {"outcome": "TIMEOUT"},
        settings={"no_response_pct": 100.0},
        clear={"no_response_pct": 0.0},
    ),
    "generic_nack": Fault(
        "payam_sms_retries_total",
        {"outcome": "GENERIC_NACK"},
        settings={"nack_pct": 100.0},
        clear={"nack_pct": 0.0},
    ),
    "throttled_burst": Fault(
        "payam_smpp_throttled_total", {}, inject=("throttle_burst", 15), min_rise=15, early=True
    ),
    "unbind_mid_window": Fault(
        EV, {"kind": "reconnect"}, settings={"response_delay_seconds": 0.2}, inject=("unbind", 1)
    ),
    "tcp_reset": Fault(
        EV, {"kind": "reconnect"}, settings={"response_delay_seconds": 0.2}, inject=("reset", 1)
    ),
    "bind_refused": Fault(
        EV, {"kind": "bind_failure"}, inject=("bind_refuse", 3), then=("reset", 1), min_rise=3
    ),
    "slow_receipts": Fault(
        "payam_sms_receipt_latency_seconds_sum",
        {},
        settings={"dlr_delay_seconds": 3.0},
        clear={"dlr_delay_seconds": 0.02},
        hold=0.5,
        min_rise=3.0 * N * 0.9,
    ),
    "unknown_receipts": Fault(
        "payam_sms_receipts_total", {"outcome": "delivered"}, inject=("unknown_receipts", 5)
    ),
    "malformed_pdu": Fault(EV, {"kind": "malformed_pdu"}, inject=("malformed_pdu", 2), min_rise=2),
    "absurd_command_length": Fault(EV, {"kind": "malformed_pdu"}, inject=("absurd_length", 1)),
}


def metric_value(text: str, name: str, labels: dict[str, str]) -> float:
    total = 0.0
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                total += sample.value
    return total


@pytest.mark.parametrize("name", list(FAULTS))
async def test_smsc_fault(
    name: str, config: Config, pool: asyncpg.Pool, sealer: Sealer, aiohttp_client: Any
) -> None:
    fault = FAULTS[name]
    sim = SmscSimulator(SimulatorSettings(port=0, seed=3, dlr_delay_seconds=0.02), http_port=0)
    await sim.start()
    control = f"http://127.0.0.1:{sim.http_port}"
    cfg = sms_config(config, sim.port, response_timeout_seconds=1.0)
    # Retries back off from 0.5 s, so six attempts span ~15 s: a fault of a second or two
    # must not use them up (a storm longer than that rejects the message by design).
    cfg = replace(cfg, sms=replace(cfg.sms, retry_base_seconds=0.5))
    services, client = await gateway(cfg, Store(pool), sealer, aiohttp_client)
    labels = {"operator": "mci", **fault.labels}
    try:
        a = await agency(services, client)
        await wait_for(_bound(sim))
        before = metric_value(await (await client.get("/metrics")).text(), fault.metric, labels)
        async with aiohttp.ClientSession() as http:
            if fault.settings:
                await _post(http, f"{control}/faults", fault.settings)
            if fault.inject is not None and fault.early:
                await _post(http, f"{control}/inject", _kind(fault.inject))
            sends = asyncio.gather(
                *(a.send({"to": f"+98912{i:07d}", "text": f"{name} {i}"}) for i in range(N))
            )
            if fault.inject is not None and not fault.early:
                await asyncio.sleep(0.1)  # some submits in flight
                await _post(http, f"{control}/inject", _kind(fault.inject))
            if fault.then is not None:
                await _post(http, f"{control}/inject", _kind(fault.then))
            assert all(status == 202 for status, _ in await sends)
            if fault.clear:
                await asyncio.sleep(fault.hold)
                await _post(http, f"{control}/faults", fault.clear)
            elif fault.settings:
                await _post(http, f"{control}/faults", {"response_delay_seconds": 0.0})
        cleared = time.monotonic()
        await wait_for(lambda: all_final(services, N), timeout=60, interval=0.1)
        recover = time.monotonic() - cleared
        assert sim.ledger.messages == N  # the SMSC has every one of them
        # Resubmits happen only for submits whose response was lost with the session: at most
        # one window (binds x window = 10 here).
        assert sim.ledger.duplicates <= 10
        rise = 0.0
        deadline = time.monotonic() + 10  # the session counters are sampled every 2 s
        while time.monotonic() < deadline:
            text = await (await client.get("/metrics")).text()
            rise = metric_value(text, fault.metric, labels) - before
            if rise >= fault.min_rise:
                break
            await asyncio.sleep(0.5)
        assert rise >= fault.min_rise, (fault.metric, labels, rise)
        # No crash: the same gateway accepts and delivers again.
        assert (await a.send({"to": "+989350000001", "text": "after"}))[0] == 202
        await wait_for(lambda: all_final(services, N + 1), timeout=30)
        if name == "unknown_receipts":
            waiting = await pool.fetchval("SELECT count(*) FROM receipts_inbox")
            assert waiting == 5  # parked for a late submit, then dropped and counted
        if name == "malformed_pdu":
            assert sim.binds == 1  # a bad deliver_sm is refused; the session stays up
        print(
            f"\nRELIABILITY fault {name}: delivered={N} smsc_duplicates={sim.ledger.duplicates} "
            f"metric={fault.metric}{fault.labels} +{rise:g} recover_s={recover:.2f}"
        )
    finally:
        await sim.stop()


def _bound(sim: SmscSimulator) -> Any:
    async def check() -> bool:
        return sim.bound >= 1

    return check


def _kind(spec: tuple[str, int]) -> dict[str, Any]:
    return {"kind": spec[0], "count": spec[1]}


async def _post(http: aiohttp.ClientSession, url: str, body: dict[str, Any]) -> None:
    async with http.post(url, json=body) as r:
        assert r.status == 200, await r.text()
