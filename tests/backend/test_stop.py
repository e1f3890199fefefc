"""StopChecker: stop strings found within a chunk, across chunks, and however the text is split;
the earliest to complete wins, and held-back text never leaks a stop string that later completes."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from backend.stop import StopChecker, StopHit


def feed(checker: StopChecker, chunks: list[str]) -> tuple[StopHit | None, str]:
    """Feeds chunks one at a time as a streaming engine would; returns the hit and the text."""
    text = ""
    for chunk in chunks:
        text += chunk
        hit = checker.check(text, len(chunk))
        if hit is not None:
            return hit, text
    return None, text


def reference_hit(text: str, stops: list[str], include: bool) -> StopHit | None:
    """The first stop to complete as characters arrive one by one; at equal end, the longest."""
    for end in range(1, len(text) + 1):
        done = [stop for stop in stops if text[:end].endswith(stop)]
        if done:
            stop = max(done, key=len)
            return StopHit(end if include else end - len(stop), stop)
    return None


def test_stop_within_one_chunk_ends_the_output_before_it() -> None:
    text = "hello END world"
    assert StopChecker(["END"]).check(text, len(text)) == StopHit(6, "END")


def test_include_in_output_ends_the_output_after_the_stop() -> None:
    text = "hello END world"
    checker = StopChecker(["END"], include_in_output=True)
    assert checker.check(text, len(text)) == StopHit(9, "END")


def test_stop_split_across_chunks_is_found_when_it_completes() -> None:
    checker = StopChecker(["<|end|>"])
    assert feed(checker, ["Sure<", "|en"]) == (None, "Sure<|en")
    hit, text = feed(checker, ["Sure<", "|en", "d|> more"])
    assert hit == StopHit(4, "<|end|>")
    assert text[: hit.index] == "Sure"


def test_no_false_positive_on_a_partial_or_interrupted_stop() -> None:
    checker = StopChecker(["END", "\n\n"])
    assert feed(checker, ["EN", "", " E N D", "\n", "x\n"]) == (None, "EN E N D\nx\n")
    assert checker.check("the en", 6) is None
    assert checker.check("END", 2)  # sanity: the same checker does see a real one


def test_earliest_to_complete_wins_among_overlapping_stops() -> None:
    assert StopChecker(["abcd", "bc"]).check("xabcdy", 6) == StopHit(2, "bc")
    assert StopChecker(["bc", "abc"]).check("xabcy", 5) == StopHit(1, "abc")
    assert StopChecker(["zz", "b"]).check("a zz b", 6) == StopHit(2, "zz")


def test_a_match_in_already_checked_text_is_not_reported_again() -> None:
    checker = StopChecker(["END"])
    assert checker.check("END and more", len(" and more")) is None
    assert checker.check("xEN" + "D", 1) == StopHit(1, "END")


def test_holdback_is_one_less_than_the_longest_stop() -> None:
    assert StopChecker(["a", "abcd", "xy"]).holdback == 3
    assert StopChecker(["a"]).holdback == 0
    assert StopChecker([]).holdback == 0
    assert StopChecker([]).check("anything", 8) is None


def test_empty_stop_string_is_rejected() -> None:
    with pytest.raises(ValueError, match="non-empty"):
        StopChecker(["ok", ""])


ALPHABET = "abc"
stops_strategy = st.lists(st.text(ALPHABET, min_size=1, max_size=4), min_size=1, max_size=4)


@st.composite
def chunked_text(draw: st.DrawFn) -> list[str]:
    text = draw(st.text(ALPHABET, max_size=40))
    cuts = sorted(draw(st.sets(st.integers(0, len(text)), max_size=10)))
    bounds = [0, *cuts, len(text)]
    return [text[a:b] for a, b in itertools.pairwise(bounds)]


@given(stops=stops_strategy, chunks=chunked_text(), include=st.booleans())
def test_earliest_stop_is_found_however_the_text_is_chunked(
    stops: list[str], chunks: list[str], include: bool
) -> None:
    full = "".join(chunks)
    expected = reference_hit(full, stops, include)
    hit, _ = feed(StopChecker(stops, include_in_output=include), chunks)
    assert hit == expected
    char_by_char, _ = feed(StopChecker(stops, include_in_output=include), list(full))
    assert char_by_char == expected
    whole, _ = feed(StopChecker(stops, include_in_output=include), [full])
    assert whole == expected


@given(stops=stops_strategy, chunks=chunked_text())
def test_streamed_text_never_includes_a_stop_that_completes_later(
    stops: list[str], chunks: list[str]
) -> None:
    checker = StopChecker(stops)
    text, streamed = "", ""
    for chunk in chunks:
        text += chunk
        hit = checker.check(text, len(chunk))
        if hit is not None:
            final = text[: hit.index]
            break
        streamed = text[: max(0, len(text) - checker.holdback)]
    else:
        final = text
    assert final.startswith(streamed)
