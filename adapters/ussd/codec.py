"""Per-operator SMPP USSD codec: ``ussd_service_op`` values and where the session number lives.

SMPP 3.4 §5.3.2.44 ``ussd_service_op`` (TLV 0x0501): 0 PSSD indication, 1 PSSR indication
(the user dialled), 2 USSR request (we show a screen and wait), 3 USSN request (a push), 16 PSSD
response, 17 PSSR response (we show a screen and end), 18 USSR confirm (the user answered),
19 USSN confirm (the phone showed our push); 32..255 are for vendors. SMPP 3.4 §5.3.2.43
``its_session_info`` (TLV 0x1383, 2 octets): session number in the high octet, sequence number
in bits 7..1 of the low octet and end-of-session in bit 0. Some vendors use other op values or
put the session number in a vendor TLV (0x1400..0x3FFF, §3.2.1.1); a codec describes one
such variant.
"""

from __future__ import annotations

import struct
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
    # Network-initiated notification (push) and the phone's confirmation of it.
    ussn_request: int = 3
    ussn_confirm: int = 19
    # TLV that carries the 2-octet session info; 0x1383 is its_session_info (standard).
    session_tag: int = TAG_ITS_SESSION_INFO

    # The SMSC echoes the sequence number of the screen being answered (bits 7..1 of the low
    # octet, "as assigned by the ESME", §5.3.2.43), so a redelivered answer can be told from a
    # new one. A codec for an SMSC that does not echo it sets this to False.
    sequenced: bool = True

    @property
    def standard_session(self) -> bool:
        return self.session_tag == TAG_ITS_SESSION_INFO

    @staticmethod
    def session_number(info: int) -> int:
        return (info >> 8) & 0xFF

    @staticmethod
    def sequence(info: int) -> int:
        return (info >> 1) & 0x7F

    @staticmethod
    def reply_info(info: int, end: bool, sequence: int = 0) -> int:
        """Session info for our screen: the session number received, our own sequence number
        of the dialogue unit (mod 128), end-of-session set only on the final screen."""
        return (info & 0xFF00) | ((sequence & 0x7F) << 1) | (END_OF_SESSION if end else 0)

    def tlvs(self, info: int) -> tuple[dict[str, int], bytes]:
        """Where ``info`` goes in a submit_sm: the standard TLV by smpplib name, or the vendor
        TLV encoded by hand (smpplib has no name for it)."""
        if self.standard_session:
            return {"its_session_info": info}, b""
        return {}, struct.pack(">HHH", self.session_tag, 2, info)


CODECS: dict[str, UssdCodec] = {
    "standard": UssdCodec("standard"),
    # A variant seen with some vendor SMSCs: the session info in a vendor-specific TLV.
    "vendor_session_tag": UssdCodec("vendor_session_tag", session_tag=0x1403),
    # A variant that carries the dialog in the vendor-specific op range (32..255 are reserved
    # for vendor USSD operations, §5.3.2.44): 32 dial, 33 continue, 34 end, 35 answer.
    "vendor_ops": UssdCodec(
        "vendor_ops", pssr_indication=32, ussr_request=33, pssr_response=34, ussr_confirm=35
    ),
}

# network_error_code (TLV 0x0423, SMPP 3.4 §5.3.2.31): one octet network type (3 = GSM), two
# octets error code. For GSM the code is the MAP error of the USSD operation (3GPP TS 29.002
# MAP-Errors, local values): 72 ussd-Busy is what a phone already in a USSD dialog answers to a
# network-initiated unstructuredSS-Notify or -Request.
NETWORK_GSM = 3
MAP_USSD_BUSY = 72


def network_error(raw: bytes | None) -> tuple[int, int] | None:
    """(network type, error code) of a network_error_code TLV; None when absent or zero."""
    if not raw or len(raw) != 3:
        return None
    kind, code = raw[0], int.from_bytes(raw[1:], "big")
    return None if code == 0 else (kind, code)


def codec_for(operator: str, configured: dict[str, str]) -> UssdCodec:
    return CODECS[configured.get(operator, "standard")]
