"""The sliding window: whatever way a stream is cut, it lets out exactly what the whole-text
rewrite would, and never lets a match out before it is final."""

from __future__ import annotations

import itertools
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.guards.base import Decision, GuardBlocked
from gateway.guards.window import SlidingWindow, Span, disjoint, rewrite, rewrite_all

EMAIL = re.compile(r"\b[\w.+-]+@[\w-]+\.[a-z]{2,}\b")
WORD = re.compile(r"\bsecret\b")
WINDOW = 40


def scan(text: str) -> list[Span]:
    spans = [Span(m.start(), m.end(), "EMAIL") for m in EMAIL.finditer(text)]
    return spans + [Span(m.start(), m.end(), "WORD") for m in WORD.finditer(text)]


def redact(text: str, span: Span) -> str:
    return f"<{span.label}>"


def stream(text: str, cuts: list[int], window: int = WINDOW) -> str:
    filt = SlidingWindow(scan, redact, window)
    points = [0, *sorted(set(cuts)), len(text)]
    out = [filt.feed(text[a:b]) for a, b in itertools.pairwise(points)]
    return "".join(out) + filt.flush()


TEXT = "mail bob.smith@example.com about the secret plan; not secretive, x@y.org."


def test_every_two_cut_split_matches_the_whole_text_rewrite() -> None:
    want = rewrite_all(TEXT, scan, redact)
    assert want == "mail <EMAIL> about the <WORD> plan; not secretive, <EMAIL>."
    for i in range(len(TEXT) + 1):
        for j in range(i, len(TEXT) + 1):
            assert stream(TEXT, [i, j]) == want, (i, j)


def test_one_character_at_a_time() -> None:
    assert stream(TEXT, list(range(len(TEXT)))) == rewrite_all(TEXT, scan, redact)


def test_nothing_of_a_match_leaves_before_it_is_final() -> None:
    filt = SlidingWindow(scan, redact, WINDOW)
    sent = ""
    for char in TEXT:
        sent += filt.feed(char)
        assert "bob.smith" not in sent and "x@y" not in sent
    sent += filt.flush()
    assert "@" not in sent


def test_text_is_held_back_at_most_the_window_plus_a_growing_match() -> None:
    filt = SlidingWindow(scan, redact, 10)
    filt.feed("a" * 100)
    assert filt.held == 10


def test_block_raised_when_the_match_becomes_final_and_nothing_of_it_sent() -> None:
    def block(text: str, span: Span) -> str:
        raise GuardBlocked(Decision.block("words", f"found {span.label}"))

    filt = SlidingWindow(scan, block, WINDOW)
    sent = ""
    with pytest.raises(GuardBlocked):
        for char in "ok so the secret is out" + " " * WINDOW:
            sent += filt.feed(char)
    assert "secret" not in sent
    assert sent.startswith("ok so the")


def test_disjoint_keeps_the_earlier_then_longer_span() -> None:
    spans = [Span(5, 9, "B"), Span(0, 4, "A"), Span(0, 6, "C"), Span(7, 7, "EMPTY")]
    assert disjoint(spans) == [Span(0, 6, "C")]


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.sampled_from(["a", "b", " ", "@", ".", "com", "x@y.org", "secret", "é", "\n"]),
        max_size=40,
    ).map("".join),
    st.lists(st.integers(min_value=0, max_value=200), max_size=8),
)
def test_any_chunking_equals_the_whole_text_rewrite(text: str, cuts: list[int]) -> None:
    cuts = [c for c in cuts if c <= len(text)]
    assert stream(text, cuts) == rewrite_all(text, scan, redact)


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=60), st.data())
def test_rewrite_never_touches_text_outside_spans(text: str, data: st.DataObject) -> None:
    bounds = data.draw(st.lists(st.integers(0, len(text)), max_size=6))
    pairs = sorted(zip(bounds[::2], bounds[1::2], strict=False))
    spans = disjoint([Span(min(a, b), max(a, b), "X") for a, b in pairs])
    out = rewrite(text, spans, lambda t, s: f"[{s.end - s.start}]")
    pos = 0
    for span in spans:  # walk the output: outside text verbatim, each span its marker
        gap = text[pos : span.start]
        assert out.startswith(gap)
        out = out[len(gap) :]
        marker = f"[{span.end - span.start}]"
        assert out.startswith(marker)
        out = out[len(marker) :]
        pos = span.end
    assert out == text[pos:]
