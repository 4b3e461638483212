"""Hostile input, e-mail (issue 9 part 5): property-based fuzzing of the SMTP ingestion path
(adapters/kartpooshe/smtp_ingest.py → gateway/letters/) with hand-built, malformed MIME
(tests/mime_fuzz.py), against the real PostgreSQL store.

Property, whatever the bytes: the DATA handler answers with a proper SMTP reply (RFC 5321 §4.2:
three digits, 2xx/4xx/5xx, an enhanced code RFC 3463); never a 451 (the handler's "unexpected
exception" answer, i.e. a crash in disguise); on 2xx every letter named in the reply is fully
stored (row, attachments as counted in its signed "accepted" event, a safe attachment name);
on 4xx/5xx nothing at all was written. Short in CI; ``PAYAM_FUZZ_EXAMPLES`` (or
``python -m bench.fuzz mime --examples N``) runs more.
"""

from __future__ import annotations

import itertools
import os
import re
import uuid
from pathlib import Path

import asyncpg
import pytest
from aiosmtpd.smtp import Envelope, LoginPassword, Session
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from adapters.kartpooshe.smtp_ingest import IngestHandler
from gateway.config import Config, load_config
from gateway.numbering import Request
from gateway.sealing import Sealer
from gateway.services import Services, build_services
from gateway.store import Store
from tests.conftest import make_agency
from tests.letters_harness import COMPANY, PERSON, letters_env
from tests.mime_fuzz import MESSAGES, MSGID, OA_FROM

EXAMPLES = int(os.environ.get("PAYAM_FUZZ_EXAMPLES", "150"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
DOMAIN = "ebox.test.ir"
REPLY = re.compile(r"^([245])\d\d [245]\.\d{1,3}\.\d{1,3} \S")
# Attachment names as stored: no directory part, no control or bidi-override characters.
UNSAFE_NAME = re.compile(r"[\x00-\x1f\x7f/\\\u202a-\u202e\u2066-\u2069\u200e\u200f\u061c]")
_COUNTED = ("letters", "letter_attachments", "letter_events", "letter_idempotency", "messages")
_ids = itertools.count()


class Ingest:
    def __init__(self, svc: Services, pool: asyncpg.Pool, sessions: dict[str, Session]) -> None:
        self.svc, self.pool, self.sessions = svc, pool, sessions
        self.handler = IngestHandler(svc)
        self.seen: dict[str, int] = {}

    async def counts(self) -> dict[str, int]:
        sql = " UNION ALL ".join(f"SELECT '{t}', count(*) FROM {t}" for t in _COUNTED)
        return {r[0]: int(r[1]) for r in await self.pool.fetch(sql)}

    async def data(self, who: str, rcpts: list[str], raw: bytes) -> str:
        env = Envelope()
        env.mail_from = OA_FROM
        env.rcpt_tos = list(rcpts)
        env.original_content = raw
        env.content = raw
        reply = await self.handler.handle_DATA(None, self.sessions[who], env)  # type: ignore[arg-type]
        code = reply[:3]
        self.seen[code] = self.seen.get(code, 0) + 1
        return reply


@pytest.fixture
async def ingest(config: Config, pool: asyncpg.Pool, sealer: Sealer, tmp_path: Path) -> Ingest:
    cfg = load_config(
        None,
        env=letters_env(
            tmp_path,
            {
                "PAYAM_DATABASE_URL": config.database.url,
                "PAYAM_SECURITY_MASTER_KEY_FILE": config.security.master_key_file,
            },
        ),
    )
    svc = build_services(cfg, Store(pool), sealer)
    sessions = {}
    for who, shortcode in (("sender", "404012"), ("no_sender", None)):
        agency_id = await make_agency(svc)
        if shortcode:
            agency = await svc.agencies.get(agency_id)
            await svc.numbering.allocate(agency, Request("shortcode", shortcode), actor="t")
        await svc.letter_settings.update(agency_id, {"from_addresses": [OA_FROM]}, actor="t")
        session = Session(loop=None)  # type: ignore[arg-type]
        session.auth_data = LoginPassword(agency_id.bytes, b"")
        sessions[who] = session
    return Ingest(svc, pool, sessions)


RCPTS = st.lists(
    st.sampled_from([f"{PERSON}@{DOMAIN}", f"{COMPANY}@{DOMAIN}", f"{PERSON}@{DOMAIN.upper()}"]),
    min_size=1,
    max_size=3,
)


async def check(ingest: Ingest, who: str, rcpts: list[str], raw: bytes) -> str:
    before = await ingest.counts()
    reply = await ingest.data(who, rcpts, raw)
    m = REPLY.match(reply)
    assert m, f"not an SMTP reply: {reply[:200]!r}"
    assert not reply.startswith("451"), f"the handler crashed: {reply!r}"
    after = await ingest.counts()
    if m[1] != "2":
        assert after == before, f"{reply!r} but something was written: {before} → {after}"
        return reply
    tracking = reply.split("Accepted: ", 1)[1].split()
    assert len(tracking) == len(rcpts)
    rows = await ingest.pool.fetch(
        """SELECT l.id, l.source,
                  (SELECT count(*) FROM letter_attachments a WHERE a.letter_id = l.id) AS n,
                  (SELECT (detail->>'attachments')::int FROM letter_events e
                   WHERE e.letter_id = l.id AND e.type = 'accepted') AS counted,
                  (SELECT array_agg(name) FROM letter_attachments a WHERE a.letter_id = l.id)
                    AS names
           FROM letters l WHERE l.tracking_number = ANY($1::text[])""",
        tracking,
    )
    assert len(rows) == len(set(tracking)), "a letter named in the 250 is not stored"
    for r in rows:
        assert r["source"] == "smtp"
        assert r["n"] == r["counted"], "attachments differ from the signed event"
        for name in r["names"] or []:
            assert name, "an empty attachment name"
            assert not UNSAFE_NAME.search(name), name
            assert len(name) <= 200, name
            assert name not in (".", "..")
    return reply


@FUZZ
@given(raw=MESSAGES, rcpts=RCPTS, who=st.sampled_from(["sender", "no_sender"]))
async def test_any_mime_gets_a_proper_reply_and_all_or_nothing(
    ingest: Ingest, raw: bytes, rcpts: list[str], who: str
) -> None:
    # A fresh Message-ID in most examples; the same one again now and then (a resend).
    n = next(_ids)
    msgid = b"<fuzz-%d@tax.gov.ir>" % (n if n % 7 else 0)
    reply = await check(ingest, who, rcpts, raw.replace(MSGID, msgid))
    # The replies seen, for --hypothesis-show-statistics.
    event("250 accepted" if reply.startswith("250") else reply[:48])


async def test_the_fuzz_reaches_acceptance(ingest: Ingest) -> None:
    """Guard against a fuzz that only ever produces refusals: a plain, valid message through
    the same path is accepted, and one whose second recipient cannot be served (a person's
    letter needs the agency's 4040 number for its SMS notice, a company's does not) is refused
    whole, not half-stored."""
    raw = (
        f"From: {OA_FROM}\r\nSubject: test\r\nMessage-ID: <ok-{uuid.uuid4()}@x>\r\n"
        "Content-Type: text/plain; charset=utf-8\r\n\r\nمتن نامه\r\n"
    ).encode()
    reply = await check(ingest, "sender", [f"{PERSON}@{DOMAIN}", f"{COMPANY}@{DOMAIN}"], raw)
    assert reply.startswith("250 2.0.0 Accepted: ")
    mixed = raw.replace(b"<ok-", b"<mixed-")
    reply = await check(ingest, "no_sender", [f"{COMPANY}@{DOMAIN}", f"{PERSON}@{DOMAIN}"], mixed)
    assert reply.startswith("554 5.7.1"), reply
