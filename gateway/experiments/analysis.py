"""An experiment's report as plain data: per-arm metrics, each arm against the control, and the
sample-ratio check. The JSON output is exactly this; the text table is drawn from it.

Keys are documented in docs/experiments.md ("JSON output"); change both together.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from gateway.experiments.records import ArmSamples, ExperimentSamples, ShadowSamples
from gateway.experiments.stats import (
    SRM_ALPHA,
    Difference,
    Estimate,
    Samples,
    compare_means,
    compare_proportions,
    mean,
    percentiles,
    proportion,
    sample_ratio,
)

QUANTILES = (0.5, 0.95, 0.99)
REPORT_VERSION = 1


def choose_control(arms: list[str], weights: Mapping[str, float], asked: str | None) -> str:
    """The arm others are compared with: the one asked for, else one named `control`, else the
    first arm of the weights, else the first in name order. ValueError if `asked` is unknown."""
    if asked is not None:
        if asked not in arms:
            raise ValueError(f"--control {asked!r} is not an arm with records ({_listed(arms)})")
        return asked
    if "control" in arms:
        return "control"
    for arm in weights:
        if arm in arms:
            return arm
    return sorted(arms)[0]


def analyse(
    samples: ExperimentSamples,
    weights: Mapping[str, float],
    weights_source: str,
    control: str,
    alpha: float,
    window: Mapping[str, str | None],
) -> dict[str, Any]:
    """The report. `weights` are the split the experiment should have (equal when none were
    configured: `weights_source` says which); intervals are at `1 - alpha`."""
    confidence = 1 - alpha
    arms = [samples.arms[name] for name in _arm_order(samples, weights, control)]
    srm = sample_ratio({arm.arm: arm.requests for arm in arms}, weights)
    total = samples.requests
    return {
        "version": REPORT_VERSION,
        "experiment": samples.name,
        "window": dict(window),
        "alpha": alpha,
        "control": control,
        "requests": total,
        "requests_without_arm": samples.without_arm,
        "arms": [_arm(arm, total, weights, confidence) for arm in arms],
        "comparisons": [
            _comparison(arm, samples.arms[control], confidence, alpha)
            for arm in arms
            if arm.arm != control
        ],
        "sample_ratio": {
            "weights": dict(weights),
            "weights_source": weights_source,
            "observed": srm.observed,
            "expected": srm.expected,
            "chi2": srm.chi2,
            "p_value": srm.p_value,
            "threshold": SRM_ALPHA,
            "mismatch": srm.mismatch,
            "problems": list(srm.problems),
        },
        "feedback": {"records": samples.feedback_read, "matched": samples.feedback_matched},
    }


def _arm_order(samples: ExperimentSamples, weights: Mapping[str, float], control: str) -> list[str]:
    rest = [a for a in weights if a in samples.arms and a != control]
    rest += sorted(a for a in samples.arms if a not in weights and a != control)
    return [control, *rest]


def _arm(
    arm: ArmSamples, total: int, weights: Mapping[str, float], confidence: float
) -> dict[str, Any]:
    latency, ttft, feedback = _array(arm.latency_ms), _array(arm.ttft_ms), _array(arm.feedback)
    weight_sum = sum(weights.values())
    return {
        "arm": arm.arm,
        "backends": dict(arm.backends.most_common()),
        "requests": arm.requests,
        "share": arm.requests / total if total else None,
        "expected_share": weights.get(arm.arm, 0.0) / weight_sum if weight_sum else None,
        "errors": arm.errors,
        "error_rate": _estimate(proportion(arm.errors, arm.requests, confidence)),
        "latency_ms": _distribution(latency, confidence),
        "ttft_ms": _distribution(ttft, confidence),
        "tokens": {
            "requests_with_usage": arm.with_usage,
            "prompt": arm.prompt_tokens,
            "completion": arm.completion_tokens,
            "prompt_mean": arm.prompt_tokens / arm.with_usage if arm.with_usage else None,
            "completion_mean": (arm.completion_tokens / arm.with_usage if arm.with_usage else None),
        },
        "feedback": {"n": len(feedback), "mean": _estimate(mean(feedback, confidence))},
        "shadow": _shadow(arm.shadow, confidence) if arm.shadow.copies else None,
    }


def _distribution(values: Samples, confidence: float) -> dict[str, Any]:
    out: dict[str, Any] = {
        "n": len(values),
        "mean": float(np.mean(values)) if len(values) else None,
    }
    for name, estimate in percentiles(values, QUANTILES, confidence).items():
        out[name] = _estimate(estimate)
    return out


def _shadow(shadow: ShadowSamples, confidence: float) -> dict[str, Any]:
    latency, primary = _array(shadow.latency_ms), _array(shadow.primary_latency_ms)
    return {
        "copies": shadow.copies,
        "error_rate": _estimate(proportion(shadow.errors, shadow.copies, confidence)),
        "exact_match_rate": _estimate(
            proportion(shadow.exact_matches, shadow.compared, confidence)
        ),
        "length_mean": float(np.mean(shadow.length)) if len(shadow.length) else None,
        "latency_ms_p50": float(np.median(latency)) if len(latency) else None,
        "primary_latency_ms_p50": float(np.median(primary)) if len(primary) else None,
    }


def _comparison(
    arm: ArmSamples, control: ArmSamples, confidence: float, alpha: float
) -> dict[str, Any]:
    def means(treatment: Any, base: Any, rank_test: bool) -> dict[str, Any] | None:
        diff = compare_means(_array(treatment), _array(base), confidence, rank_test)
        return _difference(diff, alpha)

    errors = compare_proportions(
        arm.errors, arm.requests, control.errors, control.requests, confidence
    )
    return {
        "arm": arm.arm,
        "control": control.arm,
        "latency_ms": means(arm.latency_ms, control.latency_ms, True),
        "ttft_ms": means(arm.ttft_ms, control.ttft_ms, True),
        "error_rate": _difference(errors, alpha),
        "feedback": means(arm.feedback, control.feedback, False),
    }


def _difference(found: Difference | None, alpha: float) -> dict[str, Any] | None:
    if found is None:
        return None
    return {
        **_estimate(found.diff),
        "relative": found.relative,
        "tests": {
            test.name: {
                "statistic": test.statistic,
                "p_value": test.p_value,
                "significant": test.p_value is not None and test.p_value < alpha,
            }
            for test in found.tests
        },
    }


def _estimate(estimate: Estimate) -> dict[str, Any]:
    ci = None if estimate.low is None or estimate.high is None else [estimate.low, estimate.high]
    return {"value": estimate.value, "ci": ci}


def _array(values: Any) -> Samples:
    return np.frombuffer(values, dtype=np.float64) if len(values) else np.empty(0)


def _listed(names: list[str]) -> str:
    return ", ".join(sorted(names)) or "none"
