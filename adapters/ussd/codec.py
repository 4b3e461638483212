"""Per-operator SMPP USSD codec: ``ussd_service_op`` values and where the session number lives.

SMPP 3.4 §5.3.2.44 ``ussd_service_op`` (TLV 0x0501): 1 PSSR indication (the user dialled),
2 USSR request (we show a screen and wait), 17 PSSR response (we show a screen and end),
18 USSR confirm (the user answered), 3/19 USSN. SMPP 3.4 §5.3.2.43 ``its_session_info``
(TLV 0x1383, 2 octets): session number in the high octet, sequence number in bits 7..1 of the
low octet and end-of-session in bit 0. Some vendors use other op values or put the session
number in a vendor TLV (0x1400..0x3FFF, §3.2.1.1); a codec describes one such variant.
"""

from __future__ import annotations

from dataclasses import dataclass

TAG_USSD_SERVICE_OP = 0x0501
TAG_ITS_SESSION_INFO = 0x1383
END_OF_SESSION = 0x0001  # bit 0 of the low octet of its_session_info (SMPP 3.4 §5.3.2.43)


@dataclass(frozen=True, slots=True)
class UssdCodec:
    name: str
    pssr_indication: int = 1
    ussr_request: int = 2
    pssr_response: int = 17
    ussr_confirm: int = 18
    # TLV that carries the 2-octet session info; 0x1383 is its_session_info (standard).
    session_tag: int = TAG_ITS_SESSION_INFO

    @property
    def standard_session(self) -> bool:
        return self.session_tag == TAG_ITS_SESSION_INFO

    @staticmethod
    def session_number(info: int) -> int:
        return (info >> 8) & 0xFF

    @staticmethod
    def reply_info(info: int, end: bool) -> int:
        """The received session info echoed back, end-of-session set only on the final screen."""
        return (info & 0xFFFE) | (END_OF_SESSION if end else 0)


CODECS: dict[str, UssdCodec] = {
    "standard": UssdCodec("standard"),
    # A variant seen with some vendor SMSCs: the session info in a vendor-specific TLV.
    "vendor_session_tag": UssdCodec("vendor_session_tag", session_tag=0x1403),
}


def codec_for(operator: str, configured: dict[str, str]) -> UssdCodec:
    return CODECS[configured.get(operator, "standard")]
