"""What the parent asks a worker process to measure: one job per phase, sent as JSON.

A job carries its whole workload (token ids), so a worker never rebuilds or re-seeds anything.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from engine.workload import BenchRequest


@dataclass(frozen=True)
class GemmJob:
    """Time fp32 matmuls of the model's shapes: the machine's compute limit."""

    model_folder: str
    threads: int
    tokens: int = 256  # rows of the activation (tokens in one step)
    seconds_per_shape: float = 1.0
    kind: str = "gemm"


@dataclass(frozen=True)
class EngineJob:
    """Run requests through backend.LLM's engine, stepping it by hand and timing every token."""

    label: str
    model_folder: str
    threads: int
    engine_options: dict[str, Any]
    requests: list[BenchRequest]
    warmup_prompts: list[list[int]]
    # None with auto_rate_load None: every request at once. Otherwise arrivals follow
    # request.arrival_s / rate_per_s.
    rate_per_s: float | None = None
    # With rate_per_s None: time calibration_prompts' prefills alone (after the warm-up) and
    # use rate = auto_rate_load / (the fastest of them).
    auto_rate_load: float | None = None
    calibration_prompts: list[list[int]] = field(default_factory=list)
    kind: str = "engine"


@dataclass(frozen=True)
class HFJob:
    """Run requests through transformers' generate() in static batches of batch_size."""

    label: str
    model_folder: str
    threads: int
    batch_size: int
    requests: list[BenchRequest]
    warmup_prompts: list[list[int]]
    kind: str = "hf"


Job = GemmJob | EngineJob | HFJob


def job_to_json(job: Job) -> dict[str, Any]:
    return asdict(job)


def job_from_json(data: dict[str, Any]) -> Job:
    data = dict(data)
    kind = data["kind"]
    if "requests" in data:
        data["requests"] = [BenchRequest.from_json(r) for r in data["requests"]]
    if kind == "gemm":
        return GemmJob(**data)
    if kind == "engine":
        return EngineJob(**data)
    if kind == "hf":
        return HFJob(**data)
    raise ValueError(f"unknown job kind {kind!r}")
