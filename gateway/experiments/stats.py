"""The statistics of an experiment report, as pure functions over numbers (scipy underneath).

Intervals are two-sided at `confidence`; a value that cannot be computed (too few samples) is
None rather than NaN, so it serialises as JSON null. docs/experiments.md says which test is which.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from scipy import stats

Samples = NDArray[np.float64]
# The sample-ratio check flags a split at this p-value: strict, since a real mismatch shows
# with overwhelming evidence at any useful size, and a false alarm stops a valid experiment.
SRM_ALPHA = 0.001


@dataclass(frozen=True, slots=True)
class Estimate:
    value: float | None
    low: float | None = None
    high: float | None = None


@dataclass(frozen=True, slots=True)
class Test:
    """A significance test: its statistic and two-sided p-value."""

    name: str
    statistic: float | None
    p_value: float | None


@dataclass(frozen=True, slots=True)
class Difference:
    """`treatment - control` with its interval, and the test(s) behind it."""

    diff: Estimate
    relative: float | None  # diff / control's value
    tests: tuple[Test, ...]


@dataclass(frozen=True, slots=True)
class SampleRatio:
    """Observed arm sizes against the split the weights promise (a chi-square goodness of fit)."""

    observed: dict[str, int]
    expected: dict[str, float]
    chi2: float | None
    p_value: float | None
    mismatch: bool
    problems: tuple[str, ...]


def quantile(values: Samples, q: float, confidence: float) -> Estimate:
    """The `q` quantile with a distribution-free interval from order statistics: the ranks
    between which the true quantile lies with probability >= `confidence` (binomial)."""
    n = len(values)
    if n == 0:
        return Estimate(None)
    ordered = np.sort(values)
    point = float(np.quantile(ordered, q))
    tail = (1 - confidence) / 2
    low_rank = int(stats.binom.ppf(tail, n, q))  # 1-based ranks of the interval's ends
    high_rank = int(stats.binom.ppf(1 - tail, n, q)) + 1
    if low_rank < 1 or high_rank > n:
        return Estimate(point)  # too few samples for an interval at this level
    return Estimate(point, float(ordered[low_rank - 1]), float(ordered[high_rank - 1]))


def proportion(successes: int, n: int, confidence: float) -> Estimate:
    """A rate with its Wilson score interval (sound near 0 and 1, unlike the normal one)."""
    if n == 0:
        return Estimate(None)
    ci = stats.binomtest(successes, n).proportion_ci(confidence, method="wilson")
    return Estimate(successes / n, float(ci.low), float(ci.high))


def mean(values: Samples, confidence: float) -> Estimate:
    """The mean with a Student t interval."""
    n = len(values)
    if n == 0:
        return Estimate(None)
    average = float(np.mean(values))
    if n < 2:
        return Estimate(average)
    sem = float(stats.sem(values))
    if sem == 0:
        return Estimate(average, average, average)
    half = float(stats.t.ppf((1 + confidence) / 2, n - 1)) * sem
    return Estimate(average, average - half, average + half)


def compare_means(
    treatment: Samples, control: Samples, confidence: float, rank_test: bool
) -> Difference | None:
    """Welch's t (unequal variances) on the means, and with `rank_test` Mann-Whitney U, which
    asks whether one arm's values tend to be larger: robust to the long tails of latencies."""
    if len(treatment) < 2 or len(control) < 2:
        return None
    tests: list[Test] = []
    with warnings.catch_warnings():
        # Arms of (nearly) constant values: the statistic comes out non-finite and is
        # reported as null, which says more than scipy's precision warning on stderr.
        warnings.simplefilter("ignore", RuntimeWarning)
        welch = stats.ttest_ind(treatment, control, equal_var=False)
        tests.append(Test("welch_t", _number(welch.statistic), _number(welch.pvalue)))
        if rank_test:
            ranks = stats.mannwhitneyu(treatment, control, alternative="two-sided")
            tests.append(Test("mann_whitney_u", _number(ranks.statistic), _number(ranks.pvalue)))
        ci = welch.confidence_interval(confidence) if math.isfinite(welch.statistic) else None
    diff = float(np.mean(treatment) - np.mean(control))
    interval = (
        Estimate(diff, _number(ci.low), _number(ci.high)) if ci is not None else Estimate(diff)
    )
    base = float(np.mean(control))
    return Difference(interval, diff / base if base else None, tuple(tests))


def compare_proportions(
    treatment_hits: int, treatment_n: int, control_hits: int, control_n: int, confidence: float
) -> Difference | None:
    """Two-proportion z test (pooled variance under the null) and a Wald interval for the
    difference (unpooled)."""
    if treatment_n == 0 or control_n == 0:
        return None
    p1, p2 = treatment_hits / treatment_n, control_hits / control_n
    pooled = (treatment_hits + control_hits) / (treatment_n + control_n)
    se_null = math.sqrt(pooled * (1 - pooled) * (1 / treatment_n + 1 / control_n))
    if se_null == 0:
        z, p_value = 0.0, 1.0  # both arms all hits or all misses: nothing to tell apart
    else:
        z = (p1 - p2) / se_null
        p_value = float(2 * stats.norm.sf(abs(z)))
    se = math.sqrt(p1 * (1 - p1) / treatment_n + p2 * (1 - p2) / control_n)
    half = float(stats.norm.ppf((1 + confidence) / 2)) * se
    diff = Estimate(p1 - p2, p1 - p2 - half, p1 - p2 + half)
    return Difference(diff, (p1 - p2) / p2 if p2 else None, (Test("two_proportion_z", z, p_value),))


def sample_ratio(observed: Mapping[str, int], weights: Mapping[str, float]) -> SampleRatio:
    """Chi-square test of the arm sizes against `weights` (any positive scale).

    Traffic in an arm the weights do not list, or give no weight, is a mismatch by itself.
    """
    total_weight = sum(weights.values())
    arms = list(weights) + [arm for arm in observed if arm not in weights]
    counts = {arm: observed.get(arm, 0) for arm in arms}
    n = sum(counts.values())
    expected = {arm: n * weights.get(arm, 0.0) / total_weight for arm in arms}
    problems = tuple(
        f"arm {arm!r} has {counts[arm]} requests but "
        + ("no weight" if arm in weights else "is not in the weights")
        for arm in arms
        if counts[arm] and not expected[arm]
    )
    tested = [arm for arm in arms if expected[arm] > 0]
    if problems:
        return SampleRatio(counts, expected, None, 0.0, True, problems)
    if n == 0 or len(tested) < 2:
        return SampleRatio(counts, expected, None, None, False, ())
    result = stats.chisquare([counts[a] for a in tested], [expected[a] for a in tested])
    p_value = float(result.pvalue)
    return SampleRatio(counts, expected, float(result.statistic), p_value, p_value < SRM_ALPHA, ())


def percentiles(values: Samples, qs: Sequence[float], confidence: float) -> dict[str, Estimate]:
    """`{"p50": ..., "p95": ...}` for the quantiles `qs` (0.5, 0.95, ...)."""
    return {f"p{round(q * 100):d}": quantile(values, q, confidence) for q in qs}


def _number(value: object) -> float | None:
    number = float(value)  # type: ignore[arg-type]
    return number if math.isfinite(number) else None
