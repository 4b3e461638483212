"""Hypothesis strategies for hostile e-mail (issue 9 part 5): MIME built by hand as bytes, so
that it can be malformed in every way a parser meets: nested and unterminated multiparts,
missing or absurd boundaries, unknown charsets and transfer encodings, broken base64 and
encoded words, raw 8-bit and NUL bytes in headers, folded and huge headers, hostile
attachment names. Used by tests/test_mime_fuzz.py and ``python -m bench.fuzz mime``."""

from __future__ import annotations

import base64

from hypothesis import strategies as st

from tests.letters_harness import PDF, PNG

OA_FROM = "dabirkhane@tax.gov.ir"
CRLF = b"\r\n"
MSGID = b"<MSGID>"

HOSTILE_NAMES = [
    "../../etc/passwd",
    "..\\..\\windows\\system32\\x.pdf",
    "/etc/shadow",
    "C:\\boot.ini",
    "a\x00b.pdf",
    "invoice\u202efdp.exe",
    "\u202e\u2066x\u2069.pdf",
    "x" * 5000 + ".pdf",
    ".",
    "..",
    "",
    "   ",
    "con.pdf",
    "نامه رسمی.pdf",
    "a\r\nX-Injected: 1.pdf",
    '"quoted".pdf',
    "%2e%2e%2f%2e%2e%2fetc%2fpasswd",
]
_TRICKY_VALUES = [
    "=?utf-8?b?2KfYqNmE2KfbjNmH?=",
    "=?utf-8?q?=D8=A7=D8=A8?=",
    "=?bogus-charset?q?x?=",
    "=?utf-8?b?!!!not-base64?=",
    "=?utf-8?x?unknown-encoding?=",
    "=?utf-8?b?",
    "multipart/mixed; boundary=",
    'multipart/mixed; boundary="b1"',
    "multipart/mixed",
    "multipart/alternative; boundary=b1",
    "text/plain; charset=x-unknown-charset",
    'text/plain; charset="utf-8"',
    "text/plain; charset=utf-7",
    "text/html; charset=windows-1256",
    'application/pdf; name="../../x.pdf"',
    "message/rfc822",
    "base64",
    "quoted-printable",
    "x-uuencode",
    "8bit",
    "7bit; junk",
    'attachment; filename="../../etc/passwd"',
    "attachment; filename*=UTF-8''%E2%80%AEfdp.exe",
    "attachment; filename*0*=UTF-8''%2e%2e; filename*1=%2fx.pdf",
    "attachment; filename=",
    "inline",
    "on_open",
    "after_days=7",
    "after_days=-1",
    "after_days=99999999999999999999999",
    "after_days=x",
    "no",
    "<id@x>",
    "<>",
    "1.0",
    OA_FROM,
    f"Dabirkhane <{OA_FROM}>",
    f'"=?utf-8?b?2K/YqNuM2LE=?=" <{OA_FROM}>',
    "<",
    "@",
    "a@b@c",
]
_HEADER_NAMES = [
    "From",
    "Subject",
    "Content-Type",
    "Content-Transfer-Encoding",
    "Content-Disposition",
    "Message-ID",
    "MIME-Version",
    "To",
    "X-Payam-Reply-Allowed",
    "X-Payam-Notify-SMS",
    "X-Payam-Deemed-Delivery",
    "X-Payam-Client-Ref",
]


def _header_value() -> st.SearchStrategy[bytes]:
    return st.one_of(
        st.sampled_from(_TRICKY_VALUES).map(str.encode),
        st.text(max_size=120).map(lambda s: s.encode("utf-8", "surrogatepass")),
        st.binary(max_size=80).map(lambda b: b.replace(b"\r", b"").replace(b"\n", b"")),
        # Folded over several lines, and huge.
        st.lists(st.text("abc ابپ=?", min_size=1, max_size=30), min_size=2, max_size=6).map(
            lambda parts: "\r\n\t".join(parts).encode()
        ),
        st.integers(1_000, 120_000).map(lambda n: b"A" * n),
    )


def _header() -> st.SearchStrategy[bytes]:
    name = st.one_of(
        st.sampled_from(_HEADER_NAMES),
        st.text("abcXYZ-", min_size=1, max_size=12),
    )
    return st.tuples(name, _header_value()).map(lambda t: t[0].encode() + b": " + t[1])


def _payload() -> st.SearchStrategy[bytes]:
    raw = st.one_of(
        st.just(PDF),
        st.just(PNG),
        st.binary(max_size=300).map(lambda b: PDF + b),
        st.binary(max_size=300),
        st.text(max_size=300).map(str.encode),
    )
    return st.one_of(
        raw,
        raw.map(base64.encodebytes),  # what a well-behaved client sends
        raw.map(lambda b: base64.b64encode(b)[:-3] + b"!!"),  # broken base64
        st.just(b"=\r\n=ZZ=0"),  # broken quoted-printable
    )


def _leaf() -> st.SearchStrategy[bytes]:
    ctype = st.sampled_from(
        [
            b"text/plain; charset=utf-8",
            b"text/plain; charset=x-unknown",
            b"text/html; charset=utf-8",
            b"application/pdf",
            b"image/png",
            b"application/octet-stream",
            b"application/x-msdownload",
            b"message/rfc822",
            b"",
        ]
    )
    cte = st.sampled_from([b"base64", b"quoted-printable", b"8bit", b"x-bogus", b""])
    disposition = st.one_of(
        st.just(b""),
        st.just(b"inline"),
        st.sampled_from(HOSTILE_NAMES).map(
            lambda n: b'attachment; filename="' + n.encode("utf-8", "surrogatepass") + b'"'
        ),
        st.sampled_from(HOSTILE_NAMES).map(
            lambda n: (
                b"attachment; filename*=UTF-8''" + "".join(f"%{b:02X}" for b in n.encode()).encode()
            )
        ),
    )

    def build(parts: tuple[bytes, bytes, bytes, bytes, list[bytes]]) -> bytes:
        c, e, d, body, extra = parts
        head = []
        if c:
            head.append(b"Content-Type: " + c)
        if e:
            head.append(b"Content-Transfer-Encoding: " + e)
        if d:
            head.append(b"Content-Disposition: " + d)
        head.extend(extra)
        return CRLF.join(head) + CRLF + CRLF + body

    return st.tuples(ctype, cte, disposition, _payload(), st.lists(_header(), max_size=2)).map(
        build
    )


def _multipart(children: st.SearchStrategy[bytes]) -> st.SearchStrategy[bytes]:
    boundary = st.sampled_from([b"b1", b"==x==", b"", b"a" * 80, b"b1 b1", b"--"])
    subtype = st.sampled_from([b"mixed", b"alternative", b"related", b"x-weird"])

    def build(parts: tuple[bytes, bytes, list[bytes], bool, bytes]) -> bytes:
        b, sub, kids, close, noise = parts
        head = b"Content-Type: multipart/" + sub + b'; boundary="' + b + b'"'
        body = noise + CRLF
        for k in kids:
            body += b"--" + b + CRLF + k + CRLF
        if close:
            body += b"--" + b + b"--" + CRLF
        return head + CRLF + CRLF + body

    return st.tuples(
        boundary, subtype, st.lists(children, max_size=4), st.booleans(), st.binary(max_size=20)
    ).map(build)


PART = st.recursive(_leaf(), _multipart, max_leaves=8)


def _message(parts: tuple[bool, bool, bool, list[bytes], bytes]) -> bytes:
    good_from, subject, msgid, extra, body = parts
    head = []
    if good_from:
        head.append(b"From: " + OA_FROM.encode())
    if subject:
        head.append("Subject: ابلاغیه".encode())
    if msgid:
        head.append(b"Message-ID: " + MSGID)  # the test puts a fresh id here, mostly
    head.append(b"MIME-Version: 1.0")
    head.extend(extra)
    # ``body`` is a part: its own headers, a blank line, its content; they join the message's.
    return CRLF.join(head) + CRLF + body


def _attachment() -> st.SearchStrategy[bytes]:
    """A well-formed attachment part with a hostile name (traversal, NUL, RTL override, …)."""
    name = st.sampled_from(HOSTILE_NAMES) | st.text(max_size=40)
    data = st.sampled_from([PDF, PNG]).flatmap(lambda d: st.binary(max_size=50).map(d.__add__))
    ctype = st.sampled_from([b"application/pdf", b"image/png", b"application/octet-stream"])

    def build(parts: tuple[str, bytes, bytes, bool]) -> bytes:
        n, d, c, star = parts
        if star:  # RFC 2231 encoding, which carries any bytes, NUL and CR/LF included
            disp = (
                b"attachment; filename*=UTF-8''"
                + "".join(f"%{b:02X}" for b in n.encode("utf-8", "surrogatepass")).encode()
            )
        else:
            disp = b'attachment; filename="' + n.encode("utf-8", "surrogatepass") + b'"'
        return (
            b"Content-Type: " + c + CRLF + b"Content-Transfer-Encoding: base64" + CRLF
            + b"Content-Disposition: " + disp + CRLF + CRLF + base64.encodebytes(d)
        )  # fmt: skip

    return st.tuples(name, data, ctype, st.booleans()).map(build)


_TEXT = (
    b"Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n"
    + "متن نامه رسمی".encode()
)


def _near_valid(parts: tuple[list[bytes], list[bytes]]) -> bytes:
    """A letter that should be accepted but for what the fuzz puts in: extra headers, and
    attachments (hostile names) or fuzzed parts beside a valid text part."""
    extra, kids = parts
    body = b'Content-Type: multipart/mixed; boundary="b1"' + CRLF + CRLF
    for k in [_TEXT, *kids]:
        body += b"--b1" + CRLF + k + CRLF
    body += b"--b1--" + CRLF
    return _message((True, True, True, extra, body))


MESSAGES = st.one_of(
    st.tuples(st.lists(_header(), max_size=2), st.lists(_attachment() | PART, max_size=3)).map(
        _near_valid
    ),
    st.tuples(
        st.sampled_from([True, True, True, False]),  # mostly a registered From
        st.sampled_from([True, True, True, False]),
        st.booleans(),
        st.lists(_header(), max_size=4),
        PART,
    ).map(_message),
    st.binary(max_size=2_000),  # anything at all
)
