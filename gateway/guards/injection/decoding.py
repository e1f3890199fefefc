"""Encoded text hidden in a message: base64 and hex runs decoded, rot13 and reversed text undone.

Pure functions over strings. Each returns plain-text candidates for the detector to scan again;
anything that does not decode to mostly printable text is dropped, so hashes, keys and ids
cost a failed decode and nothing else. Cheap gates (long tokens, hint words) keep ordinary
text from paying for the decoders at all.
"""

from __future__ import annotations

import base64
import binascii
import codecs
import re
from collections.abc import Iterator
from dataclasses import dataclass

# Base64 and hex runs worth decoding are at least this long: ordinary words are not.
MIN_ENCODED_CHARS = 16
_BASE64 = re.compile(r"[A-Za-z0-9+/_-]{16,}={0,2}")
_HEX = re.compile(r"(?:\\x|0x)?[0-9a-fA-F]{2}(?:(?:[\s,:]|\\x|0x)?[0-9a-fA-F]{2}){9,}")
_SPACED_HEX = re.compile(r"[0-9a-fA-F]{2}(?:[ ,:][0-9a-fA-F]{2}){9,}")
_NOT_HEX = re.compile(r"\\x|0x|[^0-9a-fA-F]")
_HEX_PAIR = frozenset("0123456789abcdefABCDEF")
# rot13 and reversed forms of words that carry injections, and names of the encodings:
# rot13 and reversal cannot be recognised, so they are tried only when one of these shows up.
ROT13_HINTS = frozenset(
    "vtaber qvfertneq vafgehpgvbaf vafgehpgvba cerivbhf flfgrz cebzcg cergraq wnvyoernx"
    " erfgevpgvbaf ehyrf eriryny rot caesar".split()
)
REVERSED_HINTS = frozenset(
    "snoitcurtsni erongi drageresid tpmorp suoiverp selur laever backwards reversed".split()
)

MAX_SEGMENTS = 8
MAX_SEGMENT_CHARS = 16_384


@dataclass(frozen=True, slots=True)
class Decoded:
    """Text found by undoing `encoding` on part of a message."""

    encoding: str
    text: str


def decoded_segments(text: str, folded: str, words: set[str]) -> Iterator[Decoded]:
    """Plain text hidden in `text` (as sent); `folded` is its fold and `words` the words in it."""
    found = 0
    for plain, encoding in _encoded_runs(text):
        yield Decoded(encoding, plain)
        found += 1
        if found >= MAX_SEGMENTS:
            return
    if not ROT13_HINTS.isdisjoint(words):
        yield Decoded("rot13", codecs.encode(folded, "rot13"))
    if not REVERSED_HINTS.isdisjoint(words):
        yield Decoded("reversed", folded[::-1])


def _encoded_runs(text: str) -> Iterator[tuple[str, str]]:
    tokens = text.split()
    long_tokens = [token for token in tokens if len(token) >= MIN_ENCODED_CHARS]
    for token in long_tokens:
        for match in _BASE64.finditer(token):
            plain = _from_base64(match.group())
            if plain is not None:
                yield plain, "base64"
        for match in _HEX.finditer(token):
            plain = _from_hex(match.group())
            if plain is not None:
                yield plain, "hex"
    # Hex bytes written apart ("69 67 6e ..."): ten two-digit tokens at least.
    pairs = sum(1 for token in tokens if len(token) == 2 and _HEX_PAIR.issuperset(token))
    if pairs >= 10:
        for match in _SPACED_HEX.finditer(text):
            plain = _from_hex(match.group())
            if plain is not None:
                yield plain, "hex"


def _from_base64(segment: str) -> str | None:
    core = segment[:MAX_SEGMENT_CHARS].rstrip("=")
    padded = core + "=" * (-len(core) % 4)
    altchars = b"-_" if ("-" in core or "_" in core) else None
    if altchars is not None and ("+" in core or "/" in core):
        return None
    try:
        raw = base64.b64decode(padded, altchars=altchars, validate=True)
    except (binascii.Error, ValueError):
        return None
    return _printable(raw)


def _from_hex(segment: str) -> str | None:
    digits = _NOT_HEX.sub("", segment[: MAX_SEGMENT_CHARS * 2])
    if len(digits) % 2:
        digits = digits[:-1]
    try:
        raw = bytes.fromhex(digits)
    except ValueError:
        return None
    return _printable(raw)


def _printable(raw: bytes) -> str | None:
    """`raw` as text if it reads like text: UTF-8, nearly all printable, mostly letters."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return None
    if len(text) < 8:
        return None
    printable = sum(1 for c in text if c.isprintable() or c in "\n\t\r")
    letters = sum(1 for c in text if c.isalpha())
    if printable < 0.95 * len(text) or letters < 0.5 * len(text.replace(" ", "")):
        return None
    return text
