"""Characters a reader cannot see: zero-width, bidi controls, tags, smuggled variation selectors.

Pure functions over one string. `find_hidden` reports each run of hidden characters with a label;
the legitimate uses of the same code points (a joiner inside an emoji or a word, one variation
selector after its base character, the tag sequence of a subdivision flag) are left alone.
"""

from __future__ import annotations

import functools
import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

# What to do with a kind of character: leave it, remove it, note it, or refuse the request.
CharAction = Literal["allow", "strip", "flag", "block"]

# Code point ranges (inclusive) per label. Together with PREPENDED_MARKS (visible signs that
# happen to be category Cf) they cover every Cf character; a test holds this against unicodedata.
HIDDEN_RANGES: dict[str, tuple[tuple[int, int], ...]] = {
    "zero_width": (
        (0x180E, 0x180E),  # Mongolian vowel separator
        (0x200B, 0x200D),  # zero-width space, non-joiner, joiner
        (0x2060, 0x2064),  # word joiner, invisible times/separator/plus
        (0xFEFF, 0xFEFF),  # zero-width no-break space (BOM)
    ),
    "bidi": (
        (0x061C, 0x061C),  # Arabic letter mark
        (0x200E, 0x200F),  # left-to-right / right-to-left marks
        (0x202A, 0x202E),  # embeddings and overrides
        (0x2066, 0x2069),  # isolates
    ),
    "tag": ((0xE0001, 0xE0001), (0xE0020, 0xE007F)),
    "variation_selector": ((0xFE00, 0xFE0F), (0xE0100, 0xE01EF)),
    "format": (
        (0x00AD, 0x00AD),  # soft hyphen
        (0x206A, 0x206F),  # deprecated format characters
        (0xFFF9, 0xFFFB),  # interlinear annotation
        (0x13430, 0x1343F),  # Egyptian hieroglyph format controls
        (0x1BCA0, 0x1BCA3),  # shorthand format controls
        (0x1D173, 0x1D17A),  # musical symbol format controls
    ),
    # Cc without tab, line feed and carriage return.
    "control": ((0x00, 0x08), (0x0B, 0x0C), (0x0E, 0x1F), (0x7F, 0x9F)),
}

# Category Cf, but drawn: Arabic number signs and the like span the digits that follow them.
PREPENDED_MARKS = frozenset(
    [*range(0x0600, 0x0606), 0x06DD, 0x070F, 0x0890, 0x0891, 0x08E2, 0x110BD, 0x110CD]
)

_LABEL_OF: dict[str, str] = {
    chr(code): label
    for label, ranges in HIDDEN_RANGES.items()
    for low, high in ranges
    for code in range(low, high + 1)
}


def _char_class(ranges: tuple[tuple[int, int], ...]) -> str:
    return "".join(
        re.escape(chr(low)) if low == high else f"{re.escape(chr(low))}-{re.escape(chr(high))}"
        for low, high in ranges
    )


_ALL_RANGES = tuple(r for ranges in HIDDEN_RANGES.values() for r in ranges)
_HIDDEN = _char_class(_ALL_RANGES)
_VS = _char_class(HIDDEN_RANGES["variation_selector"])
# Hidden characters other than the emoji-style selectors, which may precede a joiner.
_HIDDEN_BUT_EMOJI_VS = _char_class(
    (*(r for r in _ALL_RANGES if r != (0xFE00, 0xFE0F)), (0xFE00, 0xFE0D))
)
_TAG_SPEC = _char_class(((0xE0030, 0xE0039), (0xE0061, 0xE007A)))

# The fast tests. ASCII text can only hold controls: deleting them from its bytes is a tight C
# loop. Other text is searched with a class of the hidden BMP ranges plus every astral code
# point: one range list sre can test in constant time per character (the exact class, with
# its astral ranges, is a linear scan per character, three times slower); runs it finds are
# looked at exactly.
_ASCII_CONTROLS = bytes(
    code for low, high in HIDDEN_RANGES["control"] for code in range(low, min(high, 0x7F) + 1)
)
_BMP_HIDDEN = _char_class(tuple(r for r in _ALL_RANGES if r[1] < 0x10000))
_MAYBE_HIDDEN_RUN = re.compile(f"[{_BMP_HIDDEN}\U00010000-\U0010ffff]+")
_HIDDEN_CHARS = frozenset(_LABEL_OF)

# The tag letters and digits of a subdivision flag (black flag, tags, cancel tag), kept.
_FLAG_BASE = "\U0001f3f4"
_FLAG_TAGS = re.compile(f"[{_TAG_SPEC}]{{2,7}}\U000e007f")
_JOINERS = frozenset("\u200c\u200d")
_EMOJI_SELECTORS = frozenset("\ufe0e\ufe0f")


@dataclass(frozen=True, slots=True)
class Hidden:
    """`text[start:end]` is a run of hidden characters of one `label`."""

    start: int
    end: int
    label: str


def find_hidden(text: str) -> list[Hidden]:
    """Every run of hidden characters in `text`, one `Hidden` per run of one label.

    Kept, not reported: a joiner (ZWJ, ZWNJ) between two visible characters (emoji sequences,
    Indic and Persian words; an emoji selector may stand before it); a single variation selector
    right after a visible character (emoji presentation, CJK variants); the tags of a
    subdivision flag. Two or more selectors in a row select nothing: smuggled data, reported.
    """
    if text.isascii():
        raw = text.encode()
        if len(raw.translate(None, _ASCII_CONTROLS)) == len(raw):
            return []
    found: list[Hidden] = []
    size = len(text)
    for maybe in _MAYBE_HIDDEN_RUN.finditer(text):
        run = maybe.group()
        if _HIDDEN_CHARS.isdisjoint(run):
            continue  # emoji and other astral characters, nothing hidden
        start, end = maybe.span()
        before = text[start - 1] if start else ""
        after = text[end] if end < size else ""
        judge = _judge_cached if len(run) <= _CACHED_RUN_CHARS else _judge
        for offset, stop, label in judge(before, run, after):
            found.append(Hidden(start + offset, start + stop, label))
    return found


# Emoji sequences repeat: their verdicts are cached (runs are maximal, so a run and the one
# character either side of it decide everything about it).
_CACHED_RUN_CHARS = 16


def _visible(char: str) -> bool:
    return char not in _HIDDEN_CHARS and not char.isspace()


def _judge(before: str, run: str, after: str) -> tuple[tuple[int, int, str], ...]:
    """The hidden runs of `run` as (start, end, label) offsets, given its neighbours."""
    text = before + run + after
    start = len(before)
    end = start + len(run)
    out: list[tuple[int, int, str]] = []

    def report(first: int, stop: int, label: str) -> None:
        first, stop = first - start, stop - start
        if out and out[-1][1] == first and out[-1][2] == label:
            out[-1] = (out[-1][0], stop, label)
        else:
            out.append((first, stop, label))

    index = start
    kept_selector = -1  # where the last variation selector kept stands
    while index < end:
        char = text[index]
        label = _LABEL_OF.get(char)
        if label is None:  # a visible astral character (an emoji)
            index += 1
            continue
        if label == "tag" and index > 0 and text[index - 1] == _FLAG_BASE:
            flag = _FLAG_TAGS.match(text, index)
            if flag is not None:
                index = flag.end()
                continue
        if label == "variation_selector":
            stop = index + 1
            while stop < end and _LABEL_OF.get(text[stop]) == "variation_selector":
                stop += 1
            if stop - index > 1 or index == 0 or not _visible(text[index - 1]):
                report(index, stop, label)
            else:
                kept_selector = index
            index = stop
            continue
        if char in _JOINERS and 0 < index < len(text) - 1:
            left, right = text[index - 1], text[index + 1]
            after_emoji = left in _EMOJI_SELECTORS and kept_selector == index - 1
            if (_visible(left) or after_emoji) and _visible(right):
                index += 1
                continue
        report(index, index + 1, label)
        index += 1
    return tuple(out)


_judge_cached = functools.lru_cache(maxsize=4096)(_judge)


@dataclass(slots=True)
class Sanitized:
    """What `sanitize` made of one text: the new text and what it found, per label."""

    text: str
    found: dict[str, int] = field(default_factory=dict)
    blocked: str | None = None  # the first label whose action is "block"
    flagged: bool = False
    normalized: bool = False


def sanitize(text: str, actions: Mapping[str, CharAction], nfkc: bool) -> Sanitized:
    """Strip, flag or block hidden characters by label, then NFKC-normalize if asked.

    `found` counts characters per label (labels whose action is "allow" are not counted).
    Stripping comes first so that a zero-width character cannot keep NFKC from folding what
    surrounds it.
    """
    result = Sanitized(text)
    hidden = find_hidden(text)
    if hidden:
        kept: list[str] = []
        pos = 0
        for run in hidden:
            action = actions[run.label]
            if action == "allow":
                continue
            result.found[run.label] = result.found.get(run.label, 0) + run.end - run.start
            if action == "block":
                result.blocked = result.blocked or run.label
            elif action == "flag":
                result.flagged = True
            else:  # strip
                kept.append(text[pos : run.start])
                pos = run.end
        if pos:
            kept.append(text[pos:])
            result.text = "".join(kept)
    if nfkc and not result.text.isascii() and not unicodedata.is_normalized("NFKC", result.text):
        result.text = unicodedata.normalize("NFKC", result.text)
        result.normalized = True
    return result
