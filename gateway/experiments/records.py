"""One experiment read out of an audit log: per arm, the numbers its request records carry and
the feedback scores that name them. Two streaming passes; memory is a few numbers per request.

Which records count as what (errors, latency samples, matched feedback) is documented in
docs/experiments.md; `classify` is the one place that decides it.
"""

from __future__ import annotations

import math
from array import array
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any, TypeGuard

from gateway.audit.chains import read_log
from gateway.audit.encryption import Keyring
from gateway.audit.export import RecordFilter

FEEDBACK = "feedback"
REQUEST = "request"


class Outcome(Enum):
    OK = "ok"  # a 2xx answer delivered whole: a latency sample
    ERROR = "error"  # the gateway or an upstream failed (5xx, or a stream cut by the upstream)
    OTHER = "other"  # the client's doing (4xx, 429, went away): neither


def classify(record: dict[str, Any]) -> Outcome:
    status = record.get("status")
    outcome = record.get("outcome")
    if outcome == "upstream_failed" or (isinstance(status, int) and status >= 500):
        return Outcome.ERROR
    if outcome == "ok" and isinstance(status, int) and 200 <= status < 300:
        return Outcome.OK
    return Outcome.OTHER


def record_kind(record: dict[str, Any]) -> str:
    """`kind` of a record; request records written before kinds existed have none."""
    kind = record.get("kind")
    return kind if isinstance(kind, str) else REQUEST


@dataclass(slots=True)
class ShadowSamples:
    """The shadow copies of an arm's requests, as their `shadow` field reports them."""

    copies: int = 0
    errors: int = 0
    compared: int = 0  # copies whose answer was compared with the primary's
    exact_matches: int = 0
    latency_ms: array[float] = field(default_factory=lambda: array("d"))
    primary_latency_ms: array[float] = field(default_factory=lambda: array("d"))
    length: array[float] = field(default_factory=lambda: array("d"))


@dataclass(slots=True)
class ArmSamples:
    """Everything the report needs about one arm."""

    arm: str
    requests: int = 0
    errors: int = 0
    latency_ms: array[float] = field(default_factory=lambda: array("d"))
    ttft_ms: array[float] = field(default_factory=lambda: array("d"))
    with_usage: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    feedback: array[float] = field(default_factory=lambda: array("d"))
    backends: Counter[str] = field(default_factory=Counter)
    shadow: ShadowSamples = field(default_factory=ShadowSamples)


@dataclass(slots=True)
class ExperimentSamples:
    name: str
    arms: dict[str, ArmSamples] = field(default_factory=dict)
    # Request records of the experiment that carry no arm (not counted in any arm).
    without_arm: int = 0
    feedback_read: int = 0
    feedback_matched: int = 0
    # Experiment names seen in the window: what to suggest when `name` has no records.
    experiments_seen: set[str] = field(default_factory=set)

    @property
    def requests(self) -> int:
        return sum(arm.requests for arm in self.arms.values())


def read_experiment(
    directory: Path, name: str, where: RecordFilter, keys: Keyring | None = None
) -> ExperimentSamples:
    """The experiment `name` in the log at `directory` (every chain in it, for a gateway that
    ran several workers): request records selected by `where` (their arrival time), feedback
    from any time (it often comes after the window closes, and may reach another worker).

    Raises AuditFileError for a damaged log and KeyProblem without the key an encrypted
    record needs, as `sluice audit export` does.
    """
    scores = feedback_scores(line.value for line in read_log(directory, keys))
    samples = ExperimentSamples(name, feedback_read=sum(len(s) for s in scores.values()))
    for line in read_log(directory, keys):
        record = line.value
        if record_kind(record) != REQUEST:
            continue
        experiment = record.get("experiment")
        if not isinstance(experiment, str) or not where.matches(record):
            continue
        if experiment != name:
            samples.experiments_seen.add(experiment)
            continue
        add_request(samples, record, scores)
    return samples


Scores = dict[tuple[Any, str], list[float]]


def feedback_scores(records: Iterable[dict[str, Any]]) -> Scores:
    """(tenant, request_id) -> its scores in log order; a request's last score is the one that
    counts (a client may correct itself). Keyed by tenant so one tenant cannot score another's
    requests."""
    scores: Scores = {}
    for record in records:
        if record_kind(record) != FEEDBACK:
            continue
        request_id, score = record.get("request_id"), record.get("score")
        if isinstance(request_id, str) and _finite(score):
            scores.setdefault((record.get("tenant"), request_id), []).append(float(score))
    return scores


def add_request(samples: ExperimentSamples, record: dict[str, Any], scores: Scores) -> None:
    arm_name = record.get("arm")
    if not isinstance(arm_name, str):
        samples.without_arm += 1
        return
    arm = samples.arms.get(arm_name)
    if arm is None:
        arm = samples.arms[arm_name] = ArmSamples(arm_name)
    arm.requests += 1
    outcome = classify(record)
    latency = record.get("latency_ms")
    if outcome is Outcome.ERROR:
        arm.errors += 1
    elif outcome is Outcome.OK and _finite(latency):
        arm.latency_ms.append(latency)
        ttft = record.get("ttft_ms")
        if _finite(ttft):
            arm.ttft_ms.append(ttft)
    usage = record.get("usage")
    if isinstance(usage, dict):
        prompt, completion = usage.get("prompt_tokens"), usage.get("completion_tokens")
        if isinstance(prompt, int) and isinstance(completion, int):
            arm.with_usage += 1
            arm.prompt_tokens += prompt
            arm.completion_tokens += completion
    route = record.get("route")
    if isinstance(route, dict) and isinstance(route.get("backend"), str):
        arm.backends[route["backend"]] += 1
    request_id = record.get("request_id")
    if isinstance(request_id, str):
        # Popped: a request id a client reused scores only the first request that had it.
        given = scores.pop((record.get("tenant"), request_id), None)
        if given:
            arm.feedback.append(given[-1])
            samples.feedback_matched += len(given)
    shadow = record.get("shadow")
    if isinstance(shadow, dict):
        _add_shadow(arm.shadow, shadow, latency)


def _add_shadow(samples: ShadowSamples, shadow: dict[str, Any], primary_latency: Any) -> None:
    samples.copies += 1
    status = shadow.get("status")
    if not (isinstance(status, int) and 200 <= status < 300):
        samples.errors += 1
        return
    latency = shadow.get("latency_ms")
    if _finite(latency) and _finite(primary_latency):
        samples.latency_ms.append(latency)
        samples.primary_latency_ms.append(primary_latency)
    exact = shadow.get("exact_match")
    if isinstance(exact, bool):
        samples.compared += 1
        samples.exact_matches += exact
    length = shadow.get("length")
    if _finite(length):
        samples.length.append(length)


def _finite(value: Any) -> TypeGuard[float]:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
