"""Numbering plan rules against the real database: prefix-freedom, quarantine, look-alike and
reserved masks, sub-numbers, history, and allocation races."""

from __future__ import annotations

import asyncio
import itertools
import random
from datetime import UTC, datetime
from typing import Any

import pytest

from gateway.errors import Problem
from gateway.numbering import NumberingPlan, NumberingService, Request
from gateway.services import Services
from gateway.store.models import Agency
from tests.conftest import auth, make_agency, with_numbering


async def _agency(services: Services) -> Agency:
    return await services.agencies.get(await make_agency(services))


async def _code(coro: Any) -> str:
    with pytest.raises(Problem) as info:
        await coro
    return info.value.code


async def test_shortcode_format_enforced(services: Services) -> None:
    a = await _agency(services)
    alloc = services.numbering.allocate
    for bad in ("404", "40401", "4040123456", "4041123", "40401a", "+404012"):
        assert await _code(alloc(a, Request("shortcode", bad), actor="t")) == "invalid_shortcode"
    # Persian digits are accepted and stored as ASCII.
    got = await alloc(a, Request("shortcode", "۴۰۴۰۱۲"), actor="t")
    assert got.value == "404012"


async def test_prefix_free_across_agencies(services: Services) -> None:
    a, b = await _agency(services), await _agency(services)
    alloc = services.numbering.allocate
    await alloc(a, Request("shortcode", "404012"), actor="t")
    # Longer number starting with A's, and a shorter one that A's starts with: both ambiguous.
    assert await _code(alloc(b, Request("shortcode", "4040123"), actor="t")) == (
        "number_prefix_clash"
    )
    await alloc(b, Request("shortcode", "4040134"), actor="t")
    assert await _code(alloc(a, Request("shortcode", "404013"), actor="t")) == (
        "number_prefix_clash"
    )
    assert await _code(alloc(b, Request("shortcode", "404012"), actor="t")) == "number_taken"


async def test_sub_numbers_live_inside_own_block(services: Services) -> None:
    a, b = await _agency(services), await _agency(services)
    alloc = services.numbering.allocate
    parent = await alloc(a, Request("shortcode", "404020"), actor="t")
    dept = await alloc(
        a, Request("sub_number", "4040201", parent_id=parent.id, label="customs"), actor="t"
    )
    assert dept.parent_id == parent.id
    auto = await alloc(a, Request("sub_number", parent_id=parent.id), actor="t")
    assert auto.value == "4040200"  # next free one-digit sub-number
    assert (
        await _code(alloc(a, Request("sub_number", "4040301", parent_id=parent.id), actor="t"))
        == "invalid_sub_number"
    )
    # Another agency cannot hang a sub-number off A's shortcode.
    assert (
        await _code(alloc(b, Request("sub_number", "4040202", parent_id=parent.id), actor="t"))
        == "invalid_sub_number"
    )
    assert (
        await _code(alloc(a, Request("sub_number", "4040201", parent_id=parent.id), actor="t"))
        == "number_taken"
    )


async def test_release_quarantines_against_others_but_not_former_holder(
    services: Services,
) -> None:
    a, b = await _agency(services), await _agency(services)
    alloc = services.numbering.allocate
    first = await alloc(a, Request("shortcode", "404030"), actor="t")
    sub = await alloc(a, Request("sub_number", "4040305", parent_id=first.id), actor="t")
    released = await services.numbering.release(first.id, actor="t")
    assert {r.id for r in released} == {first.id, sub.id}  # sub-numbers go with the block
    assert all(r.quarantine_until is not None for r in released)
    assert await _code(alloc(b, Request("shortcode", "404030"), actor="t")) == (
        "number_quarantined"
    )
    # Even a longer number inside the quarantined block is refused for B.
    assert await _code(alloc(b, Request("shortcode", "4040305"), actor="t")) == (
        "number_prefix_clash"
    )
    assert await _code(services.numbering.release(first.id, actor="t")) == "allocation_released"
    again = await alloc(a, Request("shortcode", "404030"), actor="t")
    assert again.agency_id == a.id


async def test_quarantine_ends(services: Services) -> None:
    cfg = with_numbering(services.config, quarantine_days=0)
    numbering = NumberingService(services.store, NumberingPlan(cfg.numbering))
    a, b = await _agency(services), await _agency(services)
    first = await numbering.allocate(a, Request("ussd_code", "*431#"), actor="t")
    await numbering.release(first.id, actor="t")
    taken = await numbering.allocate(b, Request("ussd_code", "*431#"), actor="t")
    assert taken.agency_id == b.id
    history = await numbering.history("*431#")
    assert [(h.agency_id, h.active) for h in history] == [(a.id, False), (b.id, True)]


async def test_ussd_codes_prefix_free_and_formatted(services: Services) -> None:
    a, b = await _agency(services), await _agency(services)
    alloc = services.numbering.allocate
    got = await alloc(a, Request("ussd_code", "*412#"), actor="t")
    assert got.value == "*412#"
    assert got.match_key == "412"
    assert await _code(alloc(b, Request("ussd_code", "*41#"), actor="t")) == "number_prefix_clash"
    assert await _code(alloc(b, Request("ussd_code", "*4123#"), actor="t")) == (
        "number_prefix_clash"
    )
    for bad in ("*5#", "412", "*4#", "*41234#", "*4*12#"):
        assert await _code(alloc(b, Request("ussd_code", bad), actor="t")) == "invalid_ussd_code"


async def test_reserved_numbers_and_codes(services: Services) -> None:
    a = await _agency(services)
    alloc = services.numbering.allocate
    # 404000 is reserved in the default config; *40# is the platform's own code.
    assert await _code(alloc(a, Request("shortcode", "404000"), actor="t")) == "number_reserved"
    assert await _code(alloc(a, Request("shortcode", "4040001"), actor="t")) == "number_reserved"
    assert await _code(alloc(a, Request("ussd_code", "*40#"), actor="t")) == "number_reserved"
    assert await _code(alloc(a, Request("ussd_code", "*401#"), actor="t")) == "number_reserved"


async def test_masks_lookalikes_and_reserved(services: Services) -> None:
    a, b = await _agency(services), await _agency(services)
    alloc = services.numbering.allocate
    await alloc(a, Request("mask", "TAXIR"), actor="t")
    for lookalike in ("TAX1R", "taxir", "TAXlR", "TAX-IR", "TAXIRR", "TAIXR"):
        code = await _code(alloc(b, Request("mask", lookalike), actor="t"))
        assert code == "mask_lookalike", lookalike
    for reserved in ("POLICE", "P0LICE", "Bank", "PAYAM"):
        assert await _code(alloc(b, Request("mask", reserved), actor="t")) == "mask_reserved"
    assert await _code(alloc(b, Request("mask", "ТAXES"), actor="t")) == "mask_confusable_character"
    assert await _code(alloc(b, Request("mask", "TOO-LONG-MASK"), actor="t")) == "mask_too_long"
    assert await _code(alloc(b, Request("mask", "12345"), actor="t")) == "mask_needs_letter"
    other = await alloc(b, Request("mask", "SABTEAHVAL"), actor="t")
    assert other.value == "SABTEAHVAL"
    # The same agency may hold look-alike variants of its own mask.
    assert (await alloc(a, Request("mask", "TAXIR2"), actor="t")).agency_id == a.id


async def test_suspended_agency_gets_no_numbers(services: Services) -> None:
    a = await _agency(services)
    await services.agencies.set_status(a.id, "suspended", "", actor="t")
    a = await services.agencies.get(a.id)
    assert await _code(services.numbering.allocate(a, Request("shortcode"), actor="t")) == (
        "agency_not_active"
    )


async def test_auto_pick_skips_taken_and_reserved(services: Services) -> None:
    a = await _agency(services)
    alloc = services.numbering.allocate
    first = await alloc(a, Request("shortcode", digits=2), actor="t")
    second = await alloc(a, Request("shortcode", digits=2), actor="t")
    # 404000 is reserved, so the first free two-digit code is 404001.
    assert (first.value, second.value) == ("404001", "404002")
    assert await _code(alloc(a, Request("shortcode", digits=9), actor="t")) == "invalid_value"


def _prefix_free_between_agencies(rows: list[tuple[str, Any]]) -> bool:
    for (v1, a1), (v2, a2) in itertools.combinations(rows, 2):
        if a1 != a2 and (v1.startswith(v2) or v2.startswith(v1)):
            return False
    return True


async def test_concurrent_allocations_are_unique_and_prefix_free(services: Services) -> None:
    agencies = [await _agency(services) for _ in range(10)]
    rnd = random.Random(7)
    requests: list[tuple[Agency, Request]] = []
    for i in range(60):
        agency = agencies[i % len(agencies)]
        if i % 3 == 0:
            req = Request("shortcode", digits=2)  # auto-pick: all race for the same next value
        else:
            # Specific values drawn from a small pool so that many collide or nest.
            req = Request(
                "shortcode",
                "4040"
                + rnd.choice(["1", "2", "3"])
                + rnd.choice(["", "1", "12", "5"])
                + rnd.choice(["7", "8"]),
            )
        requests.append((agency, req))

    async def one(agency: Agency, req: Request) -> tuple[str, Any] | str:
        try:
            got = await services.numbering.allocate(agency, req, actor="race")
        except Problem as exc:
            return exc.code
        return (got.value, got.agency_id)

    results = await asyncio.gather(*(one(a, r) for a, r in requests))
    won = [r for r in results if isinstance(r, tuple)]
    refused = [r for r in results if isinstance(r, str)]
    assert len(won) + len(refused) == 60
    assert len(won) >= 20
    assert set(refused) <= {"number_taken", "number_prefix_clash"}
    values = [v for v, _ in won]
    assert len(values) == len(set(values))
    assert _prefix_free_between_agencies(won)
    active = await services.store.numbering.blocking(["shortcode", "sub_number"], datetime.now(UTC))
    assert sorted(a.value for a in active) == sorted(values)


async def test_numbering_admin_api(services: Services, client: Any, admin_token: str) -> None:
    a = await _agency(services)
    resp = await client.post(
        f"/admin/v1/agencies/{a.id}/numbers",
        headers=auth(admin_token),
        json={"kind": "shortcode", "value": "404055", "label": "HQ"},
    )
    assert resp.status == 201
    allocation = (await resp.json())["allocation"]
    assert allocation["value"] == "404055"
    assert allocation["label"] == "HQ"
    resp = await client.post(
        f"/admin/v1/agencies/{a.id}/numbers",
        headers=auth(admin_token),
        json={"kind": "phone", "value": "1"},
    )
    assert (resp.status, (await resp.json())["code"]) == (422, "invalid_value")
    resp = await client.post(
        f"/admin/v1/numbers/{allocation['id']}/release", headers=auth(admin_token)
    )
    assert resp.status == 200
    resp = await client.get(
        "/admin/v1/numbers/history", params={"value": "404055"}, headers=auth(admin_token)
    )
    history = (await resp.json())["history"]
    assert len(history) == 1
    assert history[0]["released_at"] is not None
    resp = await client.get(
        f"/admin/v1/agencies/{a.id}/numbers",
        params={"include_released": "true"},
        headers=auth(admin_token),
    )
    assert len((await resp.json())["allocations"]) == 1
    resp = await client.get(
        "/admin/v1/audit", params={"action": "numbering.release"}, headers=auth(admin_token)
    )
    entries = (await resp.json())["entries"]
    assert entries[0]["target"] == "404055"
    assert entries[0]["actor"] == "admin:ops"
