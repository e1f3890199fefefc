"""Runs a workload through backend.LLM's engine: add_request() and step() by hand, timing tokens.

Every request at once (offline throughput), or each at its arrival time (an arrival rate).
"""

from __future__ import annotations

import sys
import time
from collections import deque
from dataclasses import asdict
from typing import Any

from tqdm import tqdm

from backend import LLM, SamplingParams
from backend.engine import LLMEngine
from backend.quant import Int8Linear
from engine.jobs import EngineJob
from engine.records import RequestRecord
from engine.workload import BenchRequest


def run_engine(job: EngineJob) -> dict[str, Any]:
    llm = LLM(job.model_folder, **job.engine_options)
    engine = llm.engine
    _warm_up(engine, job.warmup_prompts)
    rate, calibration = job.rate_per_s, None
    if rate is None and job.auto_rate_load is not None:
        calibration = _calibrate(engine, job.calibration_prompts)
        rate = job.auto_rate_load / calibration["prefill_s"]
    timing = _drive(engine, job.requests, rate, job.label)
    snapshot = engine.snapshot()
    return dict(
        timing,
        rate_per_s=rate,
        calibration=calibration,
        preemptions=engine.stats.preemptions,
        prefix_cache_queries_tokens=snapshot["prefix_cache_queries"],
        prefix_cache_hits_tokens=snapshot["prefix_cache_hits"],
        model_parameters=_parameters(engine),
        weight_bytes=_weight_bytes(engine),
        engine_config={k: _plain(v) for k, v in asdict(engine.config).items()},
        kv_cache_blocks=engine.block_manager.num_blocks,
        kv_cache_bytes=_kv_cache_bytes(engine),
        max_model_len=engine.max_model_len,
    )


def _drive(
    engine: LLMEngine, requests: list[BenchRequest], rate: float | None, label: str
) -> dict[str, Any]:
    """Add each request when it arrives, step until all are done; every token timed."""

    def arrival_s(r: BenchRequest) -> float:
        return r.arrival_s / rate if rate else 0.0

    # Built before the clock starts: the run measures the engine, not these constructors.
    params = {
        r.request_id: SamplingParams(max_tokens=r.max_tokens, temperature=0.0, ignore_eos=True)
        for r in requests
    }
    records = {
        r.request_id: RequestRecord(
            r.request_id, len(r.prompt_token_ids), r.max_tokens, arrival_s(r)
        )
        for r in requests
    }
    pending = deque(sorted(requests, key=arrival_s))
    bar = tqdm(total=len(requests), desc=label, unit="req", file=sys.stderr, dynamic_ncols=True)
    busy_s, steps = 0.0, 0
    start = time.monotonic()
    try:
        while pending or engine.has_unfinished():
            now_s = time.monotonic() - start
            while pending and arrival_s(pending[0]) <= now_s:
                r = pending.popleft()
                engine.add_request(
                    r.request_id,
                    r.prompt_token_ids,
                    params[r.request_id],
                    arrival_s=start + arrival_s(r),
                )
            if not engine.has_unfinished():
                time.sleep(max(0.0, arrival_s(pending[0]) - now_s))  # idle until the next one
                continue
            t0 = time.monotonic()
            outputs = engine.step()
            t1 = time.monotonic()
            busy_s += t1 - t0
            steps += 1
            for out in outputs:
                record = records[out.request_id]
                record.token_out(sum(len(d.token_ids) for d in out.deltas), t1 - start)
                record.cached_tokens = out.num_cached_tokens
                if out.finished:
                    record.finish_reason = out.deltas[-1].finish_reason
                    bar.update(1)
        wall_s = time.monotonic() - start
    finally:
        bar.close()
    return {
        "label": label,
        "wall_s": wall_s,
        "busy_s": busy_s,  # time inside step(): the rest is waiting for arrivals
        "steps": steps,
        "records": [records[r.request_id].to_json() for r in requests],
    }


def _warm_up(engine: LLMEngine, prompts: list[list[int]]) -> None:
    """A first prefill and a few decode steps, so lazy set-up is not timed."""
    params = SamplingParams(max_tokens=4, temperature=0.0, ignore_eos=True)
    for i, prompt in enumerate(prompts):
        engine.add_request(f"warm-up-{i}", prompt, params)
    while engine.has_unfinished():
        engine.step()


def _calibrate(engine: LLMEngine, prompts: list[list[int]]) -> dict[str, Any]:
    """How long one prompt's prefill takes on an otherwise idle engine (the fastest of a few)."""
    if not prompts:
        raise ValueError("an automatic rate needs calibration prompts")
    params = SamplingParams(max_tokens=1, temperature=0.0, ignore_eos=True)
    runs_s = []
    for i, prompt in enumerate(prompts):
        t0 = time.monotonic()
        engine.add_request(f"calibration-{i}", prompt, params)
        while engine.has_unfinished():
            engine.step()
        runs_s.append(time.monotonic() - t0)
    return {
        "prompt_tokens": [len(p) for p in prompts],
        "runs_s": runs_s,
        "prefill_s": min(runs_s),
    }


def _parameters(engine: LLMEngine) -> int:
    """Weights in the model, counting int8 ones (buffers of Int8Linear, not parameters)."""
    model = engine.model
    int8 = sum(m.qweight.numel() for m in model.modules() if isinstance(m, Int8Linear))
    return sum(p.numel() for p in model.parameters()) + int8


def _weight_bytes(engine: LLMEngine) -> int:
    """Bytes the model's weights take (tied ones once), int8 weights with their scales."""
    model = engine.model
    tensors = list(model.parameters())  # rope tables (buffers) are not weights
    for m in model.modules():
        if isinstance(m, Int8Linear):
            tensors += [t for t in (m.qweight, m.scale, m.bias) if t is not None]
    return sum(t.numel() * t.element_size() for t in tensors)


def _kv_cache_bytes(engine: LLMEngine) -> int:
    cache = engine.runner.kv_cache
    return sum(t.numel() * t.element_size() for t in cache.values + (cache.scales or []))


def _plain(value: Any) -> Any:
    return value if isinstance(value, int | float | str | bool | type(None)) else str(value)
