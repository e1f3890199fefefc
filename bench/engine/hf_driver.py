"""Runs a workload through transformers' generate(): static batches in arrival order, left-padded.

A streamer timestamps every decoding step, so each request gets its own TTFT and TPOT.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterator
from typing import Any

import torch
from tqdm import tqdm
from transformers.generation.streamers import BaseStreamer

from engine.jobs import HFJob
from engine.records import RequestRecord
from engine.workload import BenchRequest


class StepClock(BaseStreamer):  # type: ignore[misc]
    """A generate() streamer that notes when each step's tokens came out.

    generate() calls put() once with the prompt before the prefill, then once per step with
    that step's token for every row of the batch (on the CPU, without deferral).
    """

    def __init__(self) -> None:
        super().__init__()
        self.prompt_seen = False
        self.token_times: list[float] = []  # token_times[k]: when the (k+1)-th token came out

    def put(self, value: torch.Tensor) -> None:
        if not self.prompt_seen:
            self.prompt_seen = True
            return
        self.token_times.append(time.monotonic())

    def end(self) -> None:
        pass


def run_hf(job: HFJob) -> dict[str, Any]:
    torch.set_num_threads(job.threads)
    model = _load(job.model_folder)
    pad_id = _pad_id(model)
    warmup = [BenchRequest(f"warm-up-{i}", p, 4) for i, p in enumerate(job.warmup_prompts)]
    for batch in _batches(warmup, job.batch_size):
        _generate(model, batch, pad_id)

    records = {
        r.request_id: RequestRecord(r.request_id, len(r.prompt_token_ids), r.max_tokens)
        for r in job.requests
    }
    generated_tokens = padded_prompt_tokens = 0
    bar = tqdm(
        total=len(job.requests), desc=job.label, unit="req", file=sys.stderr, dynamic_ncols=True
    )
    start = time.monotonic()
    try:
        for batch in _batches(job.requests, job.batch_size):
            token_times = _generate(model, batch, pad_id)
            for r in batch:
                record = records[r.request_id]
                # A request's tokens are the first max_tokens of its row; the batch goes on
                # for its longest request, and the rest of the row is thrown away.
                record.first_token_s = token_times[0] - start
                record.last_token_s = token_times[r.max_tokens - 1] - start
                record.output_tokens = r.max_tokens
                record.finish_reason = "length"
            generated_tokens += len(batch) * len(token_times)
            padded_prompt_tokens += len(batch) * max(len(r.prompt_token_ids) for r in batch)
            bar.update(len(batch))
        wall_s = time.monotonic() - start
    finally:
        bar.close()
    return {
        "label": job.label,
        "batch_size": job.batch_size,
        "wall_s": wall_s,
        "busy_s": wall_s,
        "records": [records[r.request_id].to_json() for r in job.requests],
        "generated_tokens": generated_tokens,  # with the tokens thrown away
        "padded_prompt_tokens": padded_prompt_tokens,  # with the padding
        "attn_implementation": getattr(model.config, "_attn_implementation", None),
        "model_parameters": sum(p.numel() for p in model.parameters()),
    }


def _load(folder: str) -> Any:
    os.environ["HF_HUB_OFFLINE"] = "1"
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(
        folder, dtype=torch.float32, local_files_only=True
    ).eval()
    # Like the engine's ignore_eos: an EOS token does not end a row, max_new_tokens does.
    model.generation_config.eos_token_id = None
    return model


def _pad_id(model: Any) -> int:
    for candidate in (model.generation_config.pad_token_id, model.config.eos_token_id, 0):
        if isinstance(candidate, int):
            return candidate
    return 0


def _batches(requests: list[BenchRequest], size: int) -> Iterator[list[BenchRequest]]:
    for i in range(0, len(requests), size):
        yield requests[i : i + size]


def _generate(model: Any, batch: list[BenchRequest], pad_id: int) -> list[float]:
    """Greedy generate() for one left-padded batch; returns when each step's tokens came out."""
    width = max(len(r.prompt_token_ids) for r in batch)
    input_ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
    attention_mask = torch.zeros((len(batch), width), dtype=torch.long)
    for row, r in enumerate(batch):
        n = len(r.prompt_token_ids)
        input_ids[row, width - n :] = torch.tensor(r.prompt_token_ids, dtype=torch.long)
        attention_mask[row, width - n :] = 1
    max_new_tokens = max(r.max_tokens for r in batch)
    clock = StepClock()
    with torch.inference_mode():
        out = model.generate(
            input_ids=input_ids,
            attention_mask=attention_mask,
            max_new_tokens=max_new_tokens,
            do_sample=False,
            eos_token_id=None,
            pad_token_id=pad_id,
            streamer=clock,
        )
    new_tokens = out.shape[1] - width
    if new_tokens != max_new_tokens or len(clock.token_times) != max_new_tokens:
        raise RuntimeError(
            f"generate() made {new_tokens} tokens in {len(clock.token_times)} steps for a batch "
            f"that asked for {max_new_tokens}"
        )
    return clock.token_times
