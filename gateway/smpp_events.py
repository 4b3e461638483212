"""Export the SMPP client's own event counters (adapters/sms/esme.py keeps plain integers on
its hot path, free of prometheus locks) as ``payam_smpp_session_events_total``, sampled with the
other gauges of gateway/runtime.py. Each SMSC fault of the reliability matrix shows here."""

from __future__ import annotations

from collections.abc import Mapping

from adapters.sms.esme import OperatorClient
from gateway.metrics import SMPP_SESSION_EVENTS

_KINDS = (
    ("reconnect", "reconnects"),
    ("bind_failure", "bind_failures"),
    ("malformed_pdu", "malformed"),
    ("timeout", "timeouts"),
    ("unknown_response", "unknown_responses"),
    ("deliver_error", "deliver_errors"),
    ("throttle", "throttles"),
)


class SessionEventExporter:
    def __init__(self) -> None:
        self._seen: dict[tuple[str, str], int] = {}

    def sample(self, clients: Mapping[str, OperatorClient]) -> None:
        """Add what each client counted since the last sample."""
        for name, client in clients.items():
            for kind, attr in _KINDS:
                value = int(getattr(client, attr))
                prev = self._seen.get((name, kind), 0)
                if value > prev:
                    SMPP_SESSION_EVENTS.labels(name, kind).inc(value - prev)
                self._seen[(name, kind)] = value
