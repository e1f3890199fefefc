"""Int8 weight-only products: the Triton kernel's launch configurations against cuBLAS's bf16
product on the GPU; fp32 against int8 matmul and the embedded model's tokens/s on the CPU."""

from __future__ import annotations

import sys
import time
from functools import partial

import torch
import torch.nn.functional as F

from backend.quant import Int8Linear, quantize_linear_weights
from kernelbench.timing import graph_ms, time_ms

INT8_SHAPES = ((2048, 3072), (2048, 16384), (8192, 2048))


def int8_linear_sweep(
    device: torch.device, repeats: int, dtype: torch.dtype = torch.bfloat16
) -> list[dict[str, object]]:
    """Each launch configuration of the int8 kernel against the bf16 product (cuBLAS), timed
    from graph replays, per token count; a configuration whose product is off is marked so."""
    from backend.kernels.int8_linear import (
        CANDIDATES,
        choose_blocks,
        int8_linear,
        multiprocessors,
    )

    rows = []
    for in_f, out_f in INT8_SHAPES:
        q = Int8Linear.from_linear(torch.nn.Linear(in_f, out_f, bias=False, device=device))
        dense = (q.qweight.float() * q.scale.float()[:, None]).to(dtype)
        for tokens in (1, 16, 64, 256):
            x = torch.randn(tokens, in_f, device=device, dtype=dtype)
            want = F.linear(x.float(), dense.float())
            row: dict[str, object] = {"in": in_f, "out": out_f, "tokens": tokens}
            row["bf16_ms"] = graph_ms(partial(F.linear, x, dense), device, repeats)
            for blocks in CANDIDATES:
                product = partial(int8_linear, x, q.qweight, q.scale, blocks=blocks)
                error = float((product().float() - want).abs().max() / want.abs().max())
                label = "int8_" + "-".join(map(str, blocks)) + "_ms"
                row[label] = (
                    graph_ms(product, device, repeats)
                    if error < 2e-2
                    else f"wrong: relative error {error:.3g}"
                )
            chosen = choose_blocks(tokens, out_f, in_f, multiprocessors(device))
            row["chosen"] = "-".join(map(str, chosen))
            rows.append(row)
            print(f"int8 {row}", file=sys.stderr)
    return rows


# ---- CPU: int8 weights -------------------------------------------------------------------------


def int8_matmul(tokens: int, in_f: int, out_f: int, repeats: int) -> dict[str, float]:
    cpu = torch.device("cpu")
    linear = torch.nn.Linear(in_f, out_f, bias=False)
    q = Int8Linear.from_linear(linear)
    x = torch.randn(tokens, in_f)
    with torch.inference_mode():
        paths = {
            "fp32_ms": lambda: linear(x),
            "int8_dequant_ms": lambda: q(x),
            "int8pack_mm_ms": lambda: torch.ops.aten._weight_int8pack_mm(x, q.qweight, q.scale),
            "int8_dequant_weight_ms": lambda: F.linear(x, q.qweight.float() * q.scale[:, None]),
        }
        row = {name: time_ms(fn, cpu, repeats) for name, fn in paths.items()}
    return {"tokens": tokens, "in": in_f, "out": out_f, **row}


def model_bytes(model: torch.nn.Module) -> int:
    tensors = {t.data_ptr(): t for t in [*model.parameters(), *model.buffers()]}
    return sum(t.numel() * t.element_size() for t in tensors.values())


def engine_int8(prompts: int, max_tokens: int) -> dict[str, float]:
    from backend import LLM, SamplingParams

    llm = LLM(device="cpu", kv_cache_gb=0.25, num_threads=torch.get_num_threads())
    params = SamplingParams(max_tokens=max_tokens, temperature=0.0, ignore_eos=True)
    batch = [f"Write a short story about the number {i}." for i in range(prompts)]
    row: dict[str, float] = {}
    for label in ("fp32", "int8"):
        if label == "int8":
            quantize_linear_weights(llm.engine.model)
        llm.generate(batch[:1], SamplingParams(max_tokens=4), use_tqdm=False)
        t0 = time.perf_counter()
        llm.generate(batch, params, use_tqdm=False)
        row[f"{label}_tokens_per_s"] = prompts * max_tokens / (time.perf_counter() - t0)
        row[f"{label}_model_bytes"] = model_bytes(llm.engine.model)
    return row
