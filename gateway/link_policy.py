"""Link policy (anti-phishing): which URLs an agency's SMS may carry.

A citizen who receives «پیام ایران» SMS with a link must be able to trust the link: the mandate's
first purpose is to end forged state messages (MISSION §1). So a URL is accepted only when its
host is one of the sending agency's registered domains or a subdomain of one, compared after
IDNA (RFC 5891) normalisation. Everything else is refused with its own problem code:

- ``link_ip_address``: a raw IP host, in any form a browser accepts (dotted quad, one decimal or
  hex number, octal parts, IPv6 in brackets) — WHATWG URL §3.5 "IPv4 parser";
- ``link_shortener``: a URL shortener (the real destination is hidden);
- ``link_userinfo``: ``https://gov.ir@evil.com`` — the part before ``@`` is a user name, the
  host is ``evil.com`` (RFC 3986 §3.2.1, and §7.6 on this very trick);
- ``link_lookalike_domain``: a host that mixes scripts in one label, or whose UTS #39 skeleton
  equals that of a registered domain (``gоv.ir`` with a Cyrillic о, ``g0v.ir``);
- ``link_invalid_host``: a host IDNA cannot encode (bad punycode, disallowed characters);
- ``link_domain_not_registered``: any other host.

URLs are found robustly rather than politely: handsets linkify ``www.`` forms and bare domains,
and full-width or ideographic dots count as dots for IDNA (UTS #46 §2.3), so the text is first
folded with NFKC and zero-width characters are dropped before searching. The search leans to
finding too much: a false refusal costs an agency an edit, a missed link can cost a citizen.

Pure functions and one small class, no I/O.
"""

from __future__ import annotations

import ipaddress
import json
import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cache, lru_cache
from importlib import resources

import idna
from confusable_homoglyphs import confusables

from gateway.config import DEFAULT_SHORTENERS
from gateway.errors import Problem

# Dropped before searching: invisible characters that split a URL for the eye of a filter but
# not for a handset. ZWNJ (U+200C) is a Persian letter joiner and ends a URL instead.
_INVISIBLE = dict.fromkeys(map(ord, "\u200b\u200d\u2060\ufeff\u00ad\u200e\u200f\u202a\u202b"))
# Ideographic and half-width full stops are label separators for IDNA (UTS #46 §2.3).
_DOTS = str.maketrans({"\u3002": ".", "\uff61": ".", "\ufe52": "."})
_URL_CHARS = r"[^\s<>\"'«»{}()،؛؟|\\^`]"
_SCHEME_URL = re.compile(rf"\b[a-z][a-z0-9+.\-]*://{_URL_CHARS}*", re.IGNORECASE)
# A bare host: labels of letters, digits and hyphens (any script), ending in an ASCII TLD of two
# or more letters, a punycode TLD, or Iran's IDN TLD «ایران».
_LABEL = r"[\w\-]+"
_BARE = re.compile(
    rf"(?<![\w.\-@])(?:[\w.\-+%~!$&*=:]+@)?(?:{_LABEL}\.)+(?:[a-z]{{2,63}}|xn--[a-z0-9\-]+|ایران)"
    rf"(?![\w\-])(?::\d+)?(?:[/?#]{_URL_CHARS}*)?",
    re.IGNORECASE,
)
_BARE_IPV4 = re.compile(r"(?<![\w.])\d{1,3}(?:\.\d{1,3}){3}(?![\w.]*\w)")
_DOMAIN_LIKE = re.compile(r"^(?:[\w\-]+\.)+[a-z]{2,63}$", re.IGNORECASE)
_TRAILING = ".,;:!?)]}'\"»«،؛؟۔…"
_IPV4_PART = re.compile(r"^(?:0x[0-9a-f]*|[0-9]+)$", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class FoundLink:
    """One URL-like piece of a text and the host a browser would open."""

    text: str
    host: str
    userinfo: str


def _fold(text: str) -> str:
    return unicodedata.normalize("NFKC", text).translate(_INVISIBLE).translate(_DOTS)


@lru_cache(maxsize=8192)
def _char_may_link(ch: str) -> bool:
    folded = _fold(ch)
    return "." in folded or ":" in folded or "@" in folded


def _may_link(text: str) -> bool:
    """Whether the folded text has a '.', ':' or '@' (every link form needs one), decided per
    distinct character without folding the whole text. Exact: NFKC decomposes each character
    on its own (UAX #15 §1.2), and composition only makes letters with marks, never one of
    these three nor one of _DOTS' keys (none of which has a canonical decomposition). Most SMS
    texts carry no link, and folding each was ~2% of the send path's CPU."""
    return any(map(_char_may_link, set(text)))


def _split(candidate: str) -> FoundLink:
    raw = candidate.rstrip(_TRAILING)
    rest = raw.split("://", 1)[1] if "://" in raw else raw
    authority = re.split(r"[/?#\\]", rest, maxsplit=1)[0]
    userinfo, _, hostport = authority.rpartition("@")
    host = hostport
    if host.startswith("["):
        host = host[: host.find("]") + 1] if "]" in host else host
    elif host.count(":") == 1:
        host = host.split(":", 1)[0]
    return FoundLink(text=raw, host=host.rstrip(".").lower(), userinfo=userinfo)


def find_links(text: str) -> list[FoundLink]:
    """Every URL-like piece of ``text``: with a scheme, ``www.`` forms, bare domains, e-mail
    addresses and bare dotted IPv4 addresses, as a handset might linkify them."""
    if not _may_link(text):
        return []  # every form below needs a '.', ':' or '@' after folding
    folded = _fold(text)
    found: list[FoundLink] = []
    spans: list[tuple[int, int]] = []
    for m in _SCHEME_URL.finditer(folded):
        spans.append(m.span())
        found.append(_split(m.group()))

    def outside(span: tuple[int, int]) -> bool:
        return all(span[1] <= a or span[0] >= b for a, b in spans)

    for pattern in (_BARE, _BARE_IPV4):
        for m in pattern.finditer(folded):
            if outside(m.span()):
                spans.append(m.span())
                found.append(_split(m.group()))
    return [f for f in found if f.host]


def may_carry_link(value: str) -> bool:
    """Cheap test for a batch parameter: every link needs a dot, a colon or an '@' (after the
    same folding as ``find_links``), so a value without any adds no link of its own."""
    return _may_link(value)


def template_shapes_links(template: str) -> bool:
    """Whether parameters could complete a link around the template's placeholders
    (``https://{host}/``, ``{name}.ir``, ``1.2.3.{n}``): then every rendered message must be
    checked whole. Tried with a word and a number in every placeholder."""
    pieces = re.split(r"\{[^{}]*\}", template)
    return any(bool(find_links(filler.join(pieces))) for filler in ("xyz", "1"))


def is_ip_host(host: str) -> bool:
    """A host a browser would read as an IP address (WHATWG URL "IPv4 parser": up to four
    parts, each decimal, 0x-hex or 0-octal; or IPv6 in brackets)."""
    if host.startswith("[") and host.endswith("]"):
        return True
    try:
        ipaddress.ip_address(host)
        return True
    except ValueError:
        pass
    parts = host.split(".")
    if parts and parts[-1] == "":
        parts.pop()
    return 0 < len(parts) <= 4 and all(_IPV4_PART.match(p) for p in parts)


@cache
def _prototypes() -> dict[str, str]:
    """Character → its ASCII look-alike, from the Unicode confusables data (UTS #39 §4,
    confusables.txt) shipped in the confusable-homoglyphs package."""
    data = json.loads(
        resources.files("confusable_homoglyphs").joinpath("confusables.json").read_text("utf-8")
    )
    table: dict[str, str] = {}
    for char, glyphs in data.items():
        if char.isascii():
            continue
        for g in glyphs:
            c = g["c"].replace("\u200e", "")
            if len(c) == 1 and c.isascii() and c.isalnum():
                table[char] = c.lower()
                break
    return table


# After mapping to ASCII: the Latin letters and digits that read alike (UTS #39 maps these to
# one prototype too: 0/O, 1/l/I, rn/m, vv/w).
_ASCII_SKELETON = str.maketrans({"0": "o", "1": "l", "i": "l", "|": "l", "5": "s"})


def skeleton(host: str) -> str:
    """A UTS #39 style skeleton: two hosts with the same skeleton look the same to a reader."""
    table = _prototypes()
    folded = unicodedata.normalize("NFKC", host).casefold()
    mapped = "".join(c if c.isascii() else table.get(c, c) for c in folded)
    mapped = unicodedata.normalize("NFD", mapped)
    mapped = "".join(c for c in mapped if not unicodedata.combining(c))
    return mapped.translate(_ASCII_SKELETON).replace("rn", "m").replace("vv", "w")


def _unicode_host(ascii_host: str) -> str:
    try:
        return idna.decode(ascii_host)
    except idna.IDNAError:
        return ascii_host


def _ascii_host(host: str) -> str:
    """The host in its ASCII (punycode) form; Problem when IDNA cannot encode it."""
    if host.isascii() and "xn--" not in host:
        return host
    try:
        # UTS #46 mapping first, as browsers do, then IDNA 2008; punycode labels are checked by
        # decoding them.
        ascii_host = idna.encode(host, uts46=True).decode("ascii")
        idna.decode(ascii_host)
    except (idna.IDNAError, UnicodeError):
        raise Problem(
            "link_invalid_host", f"{host!r} is not a valid domain name", host=host
        ) from None
    return ascii_host


def _mixed_script(unicode_host: str) -> bool:
    # Per label: «ایران.ir» mixes scripts across labels legitimately; «pаypal» inside one.
    return any(
        confusables.is_mixed_script(label, allowed_aliases=["COMMON"])
        for label in unicode_host.split(".")
    )


def _under(host: str, domain: str) -> bool:
    return host == domain or host.endswith("." + domain)


def _registered(host: str, registered: tuple[str, ...]) -> bool:
    try:
        ascii_host = _ascii_host(host)
    except Problem:
        return False
    return any(_under(ascii_host, d) for d in registered)


class LinkPolicy:
    """Checks the links of one SMS text against an agency's registered domains."""

    def __init__(self, shorteners: Iterable[str] = DEFAULT_SHORTENERS) -> None:
        self._shorteners = tuple(s.strip().lower().rstrip(".") for s in shorteners if s.strip())

    def check(self, text: str, domains: Iterable[str]) -> None:
        """Raise Problem (a ``link_*`` code) at the first link the agency may not send."""
        registered = tuple(domains)
        for link in find_links(text):
            self._check_one(link, registered)

    def _check_one(self, link: FoundLink, registered: tuple[str, ...]) -> None:
        host = link.host
        if link.userinfo and (
            "://" in link.text
            or (_DOMAIN_LIKE.match(link.userinfo) and not _registered(host, registered))
        ):
            # A URL with credentials, or a domain-looking name before '@': the reader sees the
            # first name, the browser (or mail client) opens the second (RFC 3986 §7.6).
            raise Problem(
                "link_userinfo",
                f"{link.text!r}: the part before '@' is not the host; the link opens {host!r}",
                host=host,
            )
        if is_ip_host(host):
            raise Problem("link_ip_address", f"{link.text!r} points to an IP address", host=host)
        ascii_host = _ascii_host(host)
        if any(_under(ascii_host, s) for s in self._shorteners):
            raise Problem("link_shortener", f"{ascii_host!r} is a URL shortener", host=ascii_host)
        if any(_under(ascii_host, d) for d in registered):
            return
        unicode_host = _unicode_host(ascii_host)
        shape = skeleton(unicode_host)
        if _mixed_script(unicode_host) or any(
            _under(shape, skeleton(_unicode_host(d))) for d in registered
        ):
            raise Problem(
                "link_lookalike_domain",
                f"{unicode_host!r} looks like a registered domain but is not one",
                host=ascii_host,
            )
        raise Problem(
            "link_domain_not_registered",
            f"{ascii_host!r} is not one of this agency's registered domains",
            host=ascii_host,
        )


def check_notice_has_no_link(text: str) -> None:
    """Letters' SMS notices carry no link at all (the e-box issue: a citizen opens letters only
    from the e-box itself, so a link in a notice is always phishing-shaped)."""
    links = find_links(text)
    if links:
        raise Problem("link_in_notice", "a letter notice may not carry a link", host=links[0].host)
