"""The closed catalogue of SMS send errors, and the SMPP command_status → error mapping.

Retry and failover logic reads only two flags, never the SMPP status itself:

* ``retryable``: sending the same message again (on this or another bind) may succeed;
* ``throttle``: the operator asked us to slow down, so the whole bind/operator backs off, not
  just this message.

Unknown statuses are retryable: with a bounded number of attempts, a retry costs little, while
treating an unknown transient failure as permanent would lose a citizen's message.
"""

from __future__ import annotations

from dataclasses import dataclass

from adapters.sms import pdu


@dataclass(frozen=True, slots=True)
class SendError:
    code: str
    retryable: bool
    throttle: bool = False
    # The SMPP command_status behind the error, for logs and metrics (None for local errors).
    status: int | None = None


def _status(code: str, status: int, *, retryable: bool, throttle: bool = False) -> SendError:
    return SendError(code, retryable, throttle, status)


# SMPP 3.4 §5.1.3 command_status values we classify explicitly.
THROTTLED = _status("ESME_RTHROTTLED", pdu.ESME_RTHROTTLED, retryable=True, throttle=True)
MSGQFUL = _status("ESME_RMSGQFUL", pdu.ESME_RMSGQFUL, retryable=True, throttle=True)
SYSERR = _status("ESME_RSYSERR", pdu.ESME_RSYSERR, retryable=True)
SUBMITFAIL = _status("ESME_RSUBMITFAIL", pdu.ESME_RSUBMITFAIL, retryable=True)
X_T_APPN = _status("ESME_RX_T_APPN", pdu.ESME_RX_T_APPN, retryable=True)
# A submit on a session the SMSC considers unbound: transient, the bind is re-established.
INVBNDSTS = _status("ESME_RINVBNDSTS", pdu.ESME_RINVBNDSTS, retryable=True)
INVDSTADR = _status("ESME_RINVDSTADR", pdu.ESME_RINVDSTADR, retryable=False)
INVSRCADR = _status("ESME_RINVSRCADR", pdu.ESME_RINVSRCADR, retryable=False)
INVDCS = _status("ESME_RINVDCS", pdu.ESME_RINVDCS, retryable=False)
INVMSGLEN = _status("ESME_RINVMSGLEN", pdu.ESME_RINVMSGLEN, retryable=False)
INVESMCLASS = _status("ESME_RINVESMCLASS", pdu.ESME_RINVESMCLASS, retryable=False)
X_P_APPN = _status("ESME_RX_P_APPN", pdu.ESME_RX_P_APPN, retryable=False)

# Errors without a command_status of their own.
#: No submit_sm_resp within the response timeout. The SMSC MAY have accepted the message (the
#: request or its response may be lost or late), so a retry risks a duplicate SMS. The caller
#: accepts that risk: a citizen receiving a message twice is better than not at all, and a late
#: delivery receipt for the first attempt is matched by the receipt correlation (message ids)
#: and does not create a second message record.
TIMEOUT = SendError("TIMEOUT", retryable=True)
#: The connection carrying the submit dropped before its response came (same duplicate caveat).
BIND_DOWN = SendError("BIND_DOWN", retryable=True)
#: The SMSC answered generic_nack (SMPP 3.4 §4.3): it could not decode our PDU.
GENERIC_NACK = SendError("GENERIC_NACK", retryable=True)
#: No bind of the operator could take the message within the response timeout.
NO_BIND = SendError("NO_BIND", retryable=True)
#: A command_status we do not classify (vendor-specific ones included).
UNKNOWN_STATUS = "UNKNOWN_STATUS"

_BY_STATUS: dict[int, SendError] = {
    e.status: e
    for e in (
        THROTTLED,
        MSGQFUL,
        SYSERR,
        SUBMITFAIL,
        X_T_APPN,
        INVBNDSTS,
        INVDSTADR,
        INVSRCADR,
        INVDCS,
        INVMSGLEN,
        INVESMCLASS,
        X_P_APPN,
    )
    if e.status is not None
}

#: Every error code this module can produce.
CODES: frozenset[str] = frozenset(
    {e.code for e in _BY_STATUS.values()}
    | {TIMEOUT.code, BIND_DOWN.code, GENERIC_NACK.code, NO_BIND.code, UNKNOWN_STATUS}
)


def from_status(status: int) -> SendError:
    """The error for a non-zero command_status of a submit_sm_resp (or a generic_nack)."""
    known = _BY_STATUS.get(status)
    if known is not None:
        return known
    return SendError(UNKNOWN_STATUS, retryable=True, throttle=False, status=status)
