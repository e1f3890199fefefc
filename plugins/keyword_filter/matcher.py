"""Finding configured terms in text: literal keywords and labelled regexes, as `Span`s.

Pure and synchronous, so the same scanner serves whole texts and the sliding window of a
stream. Compiled once per guard.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from gateway.guards import Span

KEYWORD_LABEL = "keyword"


@dataclass(frozen=True, slots=True)
class Matcher:
    """Every configured term, compiled: `scan(text)` lists the matches, without overlaps."""

    patterns: tuple[tuple[str, re.Pattern[str]], ...]

    @classmethod
    def build(
        cls,
        keywords: Iterable[str],
        patterns: Mapping[str, str],
        *,
        case_sensitive: bool,
        whole_words: bool,
    ) -> Matcher:
        flags = 0 if case_sensitive else re.IGNORECASE
        compiled: list[tuple[str, re.Pattern[str]]] = []
        words = sorted(set(keywords), key=len, reverse=True)  # the longest alternative wins
        if words:
            alternatives = "|".join(re.escape(word) for word in words)
            if whole_words:
                # Not \b: a keyword may start or end with punctuation ("c++", "#secret").
                alternatives = rf"(?<!\w)(?:{alternatives})(?!\w)"
            compiled.append((KEYWORD_LABEL, re.compile(alternatives, flags)))
        for label, pattern in patterns.items():
            compiled.append((label, re.compile(pattern, flags)))
        return cls(tuple(compiled))

    def scan(self, text: str) -> list[Span]:
        spans = [
            Span(match.start(), match.end(), label)
            for label, pattern in self.patterns
            for match in pattern.finditer(text)
            if match.end() > match.start()
        ]
        return disjoint(spans) if len(self.patterns) > 1 else spans


def disjoint(spans: list[Span]) -> list[Span]:
    """Spans by start, overlaps dropped: the earlier, then the longer, wins."""
    out: list[Span] = []
    for span in sorted(spans, key=lambda s: (s.start, -s.end)):
        if not out or span.start >= out[-1].end:
            out.append(span)
    return out


def rewrite(text: str, spans: list[Span], replacement: str) -> str:
    """`text` with every span replaced; `{label}` in `replacement` becomes the span's label."""
    parts: list[str] = []
    pos = 0
    for span in spans:
        parts.append(text[pos : span.start])
        parts.append(replacement.replace("{label}", span.label))
        pos = span.end
    parts.append(text[pos:])
    return "".join(parts)
