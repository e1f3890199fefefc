"""The report's statistics against values worked out by hand and against their promised coverage."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest

from gateway.experiments.stats import (
    SRM_ALPHA,
    compare_means,
    compare_proportions,
    mean,
    proportion,
    quantile,
    sample_ratio,
)


def test_quantile_interval_covers_the_true_median_at_its_level() -> None:
    rng = np.random.default_rng(0)
    covered = 0
    for _ in range(400):
        estimate = quantile(rng.standard_normal(101), 0.5, 0.95)
        assert estimate.low is not None and estimate.high is not None
        covered += estimate.low <= 0.0 <= estimate.high
    # Order-statistic intervals are conservative: at least 95% (binomial slack for 400 runs).
    assert covered >= 0.93 * 400


def test_quantile_interval_is_left_out_when_samples_are_too_few() -> None:
    estimate = quantile(np.arange(10.0), 0.99, 0.95)
    assert estimate.value == pytest.approx(8.91)
    assert estimate.low is None and estimate.high is None
    assert quantile(np.empty(0), 0.5, 0.95).value is None


def test_wilson_interval_of_no_errors_is_not_zero_width() -> None:
    estimate = proportion(0, 50, 0.95)
    z2 = 1.959964**2
    assert estimate.value == 0 and estimate.low == pytest.approx(0, abs=1e-12)
    assert estimate.high == pytest.approx(z2 / (50 + z2), rel=1e-4)


def test_mean_interval_is_student_t() -> None:
    estimate = mean(np.array([1.0, 2.0, 3.0, 4.0]), 0.95)
    half = 3.182446 * (math.sqrt(5 / 3) / 2)  # t(0.975, 3) * s / sqrt(n)
    assert estimate.value == 2.5
    assert (estimate.low, estimate.high) == pytest.approx((2.5 - half, 2.5 + half), rel=1e-5)
    assert mean(np.array([7.0]), 0.95).low is None


def test_two_proportion_z_by_hand() -> None:
    found = compare_proportions(60, 1000, 20, 1000, 0.95)
    assert found is not None
    pooled_se = math.sqrt(0.04 * 0.96 * (2 / 1000))
    (test,) = found.tests
    assert test.name == "two_proportion_z"
    assert test.statistic == pytest.approx(0.04 / pooled_se)
    assert test.p_value == pytest.approx(math.erfc(0.04 / pooled_se / math.sqrt(2)))
    assert found.diff.value == pytest.approx(0.04) and found.relative == pytest.approx(2.0)
    half = 1.959964 * math.sqrt(0.06 * 0.94 / 1000 + 0.02 * 0.98 / 1000)
    assert (found.diff.low, found.diff.high) == pytest.approx((0.04 - half, 0.04 + half), 1e-5)


def test_two_proportions_without_any_error_are_not_different() -> None:
    found = compare_proportions(0, 500, 0, 400, 0.95)
    assert found is not None and found.tests[0].p_value == 1.0
    assert compare_proportions(1, 10, 0, 0, 0.95) is None


def test_compare_means_finds_a_shift_and_its_size() -> None:
    rng = np.random.default_rng(1)
    control, treatment = rng.normal(100, 10, 3000), rng.normal(103, 10, 3000)
    found = compare_means(treatment, control, 0.95, rank_test=True)
    assert found is not None
    assert [t.name for t in found.tests] == ["welch_t", "mann_whitney_u"]
    assert all(t.p_value is not None and t.p_value < 1e-6 for t in found.tests)
    assert found.diff.low is not None and found.diff.high is not None
    assert found.diff.low < 3 < found.diff.high
    assert compare_means(treatment[:1], control, 0.95, rank_test=True) is None


def test_constant_arms_give_null_statistics_without_warnings() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        found = compare_means(np.full(20, 0.5), np.full(30, 0.5), 0.95, rank_test=False)
    assert found is not None and found.diff.value == 0
    assert found.tests[0].statistic is None and found.diff.low is None


def test_sample_ratio_matches_a_fair_split_and_flags_a_broken_one() -> None:
    fair = sample_ratio({"a": 5030, "b": 4970}, {"a": 50, "b": 50})
    assert fair.mismatch is False and fair.p_value is not None and fair.p_value > 0.5
    broken = sample_ratio({"a": 5500, "b": 4500}, {"a": 1, "b": 1})
    assert broken.chi2 == pytest.approx(100.0)
    assert broken.p_value is not None and broken.p_value < SRM_ALPHA and broken.mismatch
    weighted = sample_ratio({"a": 9000, "b": 1000}, {"a": 0.9, "b": 0.1})
    assert weighted.mismatch is False and weighted.expected == {"a": 9000.0, "b": 1000.0}


def test_sample_ratio_counts_missing_and_unexpected_arms() -> None:
    silent = sample_ratio({"a": 100}, {"a": 1, "b": 1})  # b got nothing at all
    assert silent.observed == {"a": 100, "b": 0} and silent.mismatch
    stray = sample_ratio({"a": 50, "b": 50, "c": 3}, {"a": 1, "b": 1})
    assert stray.mismatch and stray.problems == (
        "arm 'c' has 3 requests but is not in the weights",
    )
    zero = sample_ratio({"a": 50, "b": 2}, {"a": 1, "b": 0})
    assert zero.mismatch and "no weight" in zero.problems[0]
    alone = sample_ratio({"a": 50}, {"a": 1})
    assert alone.p_value is None and alone.mismatch is False
