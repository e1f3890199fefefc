"""Stop strings: finds where the output must end, also when a stop string spans several tokens.
Scans only the text that could hold a new match: each check costs O(chunk + longest stop)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(slots=True)
class StopHit:
    """Where the output ends (`index` into the full text, after truncation) and which stop hit."""

    index: int
    stop: str


class StopChecker:
    """Checks the growing output text for a request's stop strings, one chunk at a time.

    "Earliest" means the first match to complete, as if the text had arrived one character at a
    time (ties go to the match that starts first), so the answer never depends on how the text was
    cut into tokens: with stops "abcd" and "bc", the text "abcd" stops at "bc".
    A streaming caller must hold back the last `holdback` characters until the next check: they
    could be the start of a stop string that the next chunk completes.
    """

    def __init__(self, stops: Sequence[str], *, include_in_output: bool = False) -> None:
        if any(not stop for stop in stops):
            raise ValueError("stop strings must be non-empty")
        # Longest first, so that at equal end the one that starts first is seen first.
        self._stops = sorted(set(stops), key=len, reverse=True)
        self._include_in_output = include_in_output
        self._holdback = max((len(stop) for stop in self._stops), default=1) - 1

    @property
    def holdback(self) -> int:
        """How many trailing characters could still be the start of a stop string."""
        return self._holdback

    def check(self, text: str, new_chars: int) -> StopHit | None:
        """The earliest stop match ending in the last `new_chars` characters of `text`, if any."""
        old_end = len(text) - new_chars
        best: tuple[int, int, str] | None = None  # (end, start, stop)
        for stop in self._stops:
            # A new match must end after old_end, so it starts after old_end - len(stop).
            start = text.find(stop, max(0, old_end - len(stop) + 1))
            if start < 0:
                continue
            end = start + len(stop)
            if best is None or end < best[0]:
                best = (end, start, stop)
        if best is None:
            return None
        end, start, stop = best
        return StopHit(end if self._include_in_output else start, stop)
