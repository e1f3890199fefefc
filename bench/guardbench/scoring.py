"""Quality arithmetic, pure: span matching, precision/recall, leaks, over-redaction, percentiles.

A detected span matches a gold span of the same label when they overlap (a phone number found
without its extension still counts; a card number found as a phone number does not).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np

from guardbench.labeled import Gold


@dataclass(frozen=True, slots=True)
class Found:
    """A span a detector reported."""

    start: int
    end: int
    label: str


@dataclass(slots=True)
class Counts:
    tp: int = 0
    fp: int = 0
    fn: int = 0

    def add(self, other: Counts) -> None:
        self.tp += other.tp
        self.fp += other.fp
        self.fn += other.fn

    @property
    def precision(self) -> float | None:
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else None

    @property
    def recall(self) -> float | None:
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else None

    @property
    def f1(self) -> float | None:
        p, r = self.precision, self.recall
        return 2 * p * r / (p + r) if p is not None and r is not None and p + r else None

    def as_dict(self) -> dict[str, float | int | None]:
        return {
            "tp": self.tp,
            "fp": self.fp,
            "fn": self.fn,
            "precision": self.precision,
            "recall": self.recall,
            "f1": self.f1,
        }


def _overlaps(a_start: int, a_end: int, b_start: int, b_end: int) -> bool:
    return a_start < b_end and b_start < a_end


def match_spans(gold: Sequence[Gold], found: Sequence[Found]) -> dict[str, Counts]:
    """Per label: gold spans found (tp), missed (fn), and detections matching no gold (fp)."""
    counts: dict[str, Counts] = {}
    for g in gold:
        hit = any(f.label == g.label and _overlaps(f.start, f.end, g.start, g.end) for f in found)
        c = counts.setdefault(g.label, Counts())
        if hit:
            c.tp += 1
        else:
            c.fn += 1
    for f in found:
        if not any(f.label == g.label and _overlaps(f.start, f.end, g.start, g.end) for g in gold):
            counts.setdefault(f.label, Counts()).fp += 1
    return counts


def leaked(text: str, gold: Sequence[Gold], upstream: str) -> list[str]:
    """The labels of gold entities whose value is still verbatim in what went upstream."""
    return [g.label for g in gold if text[g.start : g.end] in upstream]


def outside_gold(length: int, gold: Sequence[Gold], found: Sequence[Found]) -> tuple[int, int]:
    """(characters detected outside every gold span, characters outside every gold span)."""
    is_gold = np.zeros(length, dtype=bool)
    for g in gold:
        is_gold[g.start : g.end] = True
    is_found = np.zeros(length, dtype=bool)
    for f in found:
        is_found[f.start : f.end] = True
    return int((is_found & ~is_gold).sum()), int((~is_gold).sum())


@dataclass(slots=True)
class Binary:
    """A yes/no detector against labels: its counts, and how many true negatives there were."""

    counts: Counts = field(default_factory=Counts)
    negatives: int = 0

    def add(self, truth: bool, said: bool) -> None:
        if truth and said:
            self.counts.tp += 1
        elif truth:
            self.counts.fn += 1
        elif said:
            self.counts.fp += 1
        if not truth:
            self.negatives += 1

    @property
    def false_positive_rate(self) -> float | None:
        return self.counts.fp / self.negatives if self.negatives else None

    def as_dict(self) -> dict[str, float | int | None]:
        return {
            **self.counts.as_dict(),
            "n": self.counts.tp + self.counts.fn + self.negatives,
            "false_positive_rate": self.false_positive_rate,
        }


def percentiles(samples_s: Iterable[float]) -> dict[str, float | int | None]:
    """p50, p90, p99, mean and max in microseconds, with the sample count."""
    values = np.asarray(list(samples_s), dtype=float) * 1e6
    if values.size == 0:
        return {"n": 0, "p50_us": None, "p90_us": None, "p99_us": None, "mean_us": None}
    p50, p90, p99 = np.percentile(values, [50, 90, 99])
    return {
        "n": int(values.size),
        "p50_us": float(p50),
        "p90_us": float(p90),
        "p99_us": float(p99),
        "mean_us": float(values.mean()),
        "max_us": float(values.max()),
    }
