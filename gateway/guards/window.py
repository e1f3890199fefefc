"""A sliding window over streamed text: matches split across chunks are caught before they leave.

`SlidingWindow` holds back the last `window` characters (the longest match its scanner can
report) and any match that touches the end of what has arrived, since more text could still
extend it. Everything before that is final: its matches are rewritten (or the stream blocked)
and it is returned. Joining every `feed` and the `flush` gives exactly `rewrite_all` of the
whole text, wherever the chunks were cut, as long as no match is longer than `window`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Span:
    """A match in a text: `text[start:end]` is a `label` (entity type or category)."""

    start: int
    end: int
    label: str
    score: float = 1.0


# Finds matches in a text. Pure and synchronous: it runs once per streamed piece.
Scan = Callable[[str], list[Span]]
# What a match becomes: its replacement text; raises GuardBlocked to stop the stream.
Replace = Callable[[str, Span], str]


def disjoint(spans: list[Span]) -> list[Span]:
    """Spans sorted by start with overlaps dropped (the earlier, then the longer, wins)."""
    out: list[Span] = []
    for span in sorted(spans, key=lambda s: (s.start, -s.end)):
        if span.end <= span.start:
            continue
        if out and span.start < out[-1].end:
            continue
        out.append(span)
    return out


def rewrite(text: str, spans: list[Span], replace: Replace) -> str:
    """`text` with every (disjoint) span replaced; text outside the spans is kept as it is."""
    if not spans:
        return text
    parts: list[str] = []
    pos = 0
    for span in spans:
        parts.append(text[pos : span.start])
        parts.append(replace(text, span))
        pos = span.end
    parts.append(text[pos:])
    return "".join(parts)


def rewrite_all(text: str, scan: Scan, replace: Replace) -> str:
    return rewrite(text, disjoint(scan(text)), replace)


class SlidingWindow:
    """A `StreamFilter` from a scanner: see the module docstring.

    The scanner also sees up to `window` characters already sent, as left context, so that
    word boundaries and lookbehinds judge a piece the way they would judge the whole text.
    """

    __slots__ = ("_buffer", "_context", "replace", "scan", "window")

    def __init__(self, scan: Scan, replace: Replace, window: int) -> None:
        if window < 1:
            raise ValueError("window must be at least 1 character")
        self.scan = scan
        self.replace = replace
        self.window = window
        self._buffer = ""
        self._context = ""

    @property
    def held(self) -> int:
        """Characters held back right now."""
        return len(self._buffer)

    def feed(self, text: str) -> str:
        if not text:
            return ""
        context = self._context
        seen = context + self._buffer + text
        spans = _after(disjoint(self.scan(seen)), len(context))
        cut = len(seen) - self.window
        final: list[Span] = []
        for span in spans:
            if span.end >= len(seen):
                cut = min(cut, span.start)  # it may still grow: hold it back from its start
                break
            if span.start >= cut:
                break
            final.append(span)
            cut = max(cut, span.end)
        if cut <= len(context):
            # Nothing final yet. A blocked match is caught once final: it never leaves first.
            self._buffer = seen[len(context) :]
            return ""
        self._buffer = seen[cut:]
        self._context = seen[max(0, cut - self.window) : cut]
        return _rewrite_range(seen, len(context), cut, final, self.replace)

    def flush(self) -> str:
        context = self._context
        seen = context + self._buffer
        self._buffer = self._context = ""
        spans = _after(disjoint(self.scan(seen)), len(context))
        return _rewrite_range(seen, len(context), len(seen), spans, self.replace)


def _after(spans: list[Span], start: int) -> list[Span]:
    """The spans that begin at or after `start` (earlier ones were decided already)."""
    return [span for span in spans if span.start >= start]


def _rewrite_range(text: str, start: int, end: int, spans: list[Span], replace: Replace) -> str:
    parts: list[str] = []
    pos = start
    for span in spans:
        parts.append(text[pos : span.start])
        parts.append(replace(text, span))
        pos = span.end
    parts.append(text[pos:end])
    return "".join(parts)
