#!/usr/bin/env python3
"""Kernel benchmark: decode attention bandwidth and decode tokens/s on the GPU; int8 weights on CPU.

    .venv/bin/python bench/kernels.py           # GPU sections when CUDA is present, CPU always
    .venv/bin/python bench/kernels.py --quick   # fewer shapes and steps
    TRITON_INTERPRET=1 .venv/bin/python bench/kernels.py --smoke   # GPU code paths on the CPU, tiny

GPU: paged decode attention's achieved bandwidth (K/V bytes read / time) against the device's
measured copy bandwidth, beside the PyTorch path; end-to-end decode tokens/s of a random-weight
model with the Triton attention, eager and under a CUDA graph. CPU: fp32 against int8 weight-only
matmul (three ways), and the embedded model's tokens/s and weight bytes with float32 and int8.
Results go to bench/results/kernels-<device>.json with the device name, load and git commit.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from backend.attention import AttentionMetadata, PagedAttention  # noqa: E402
from backend.model_config import ModelConfig  # noqa: E402
from backend.models.llama import LlamaForCausalLM  # noqa: E402
from backend.quant import Int8Linear, quantize_linear_weights  # noqa: E402

# (name, hidden, intermediate, layers, heads, kv_heads, head_dim, vocab)
MODELS = [
    ("smollm2-135m", 576, 1536, 30, 9, 3, 64, 49152),
    ("llama-3.2-1b", 2048, 8192, 16, 32, 8, 64, 128256),
]


def time_ms(fn: Callable[[], object], device: torch.device, repeats: int) -> float:
    """Median milliseconds of fn over repeats, after two warm-up calls."""
    fn()
    fn()
    samples = []
    for _ in range(repeats):
        if device.type == "cuda":
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            fn()
            end.record()
            end.synchronize()
            samples.append(start.elapsed_time(end))
        else:
            t0 = time.perf_counter()
            fn()
            samples.append((time.perf_counter() - t0) * 1e3)
    return sorted(samples)[len(samples) // 2]


# ---- GPU: attention bandwidth -------------------------------------------------------------------


def copy_bandwidth_gbs(device: torch.device, size_bytes: int, repeats: int) -> float:
    src = torch.empty(size_bytes, dtype=torch.uint8, device=device)
    dst = torch.empty_like(src)
    ms = time_ms(lambda: dst.copy_(src), device, repeats)
    return 2 * size_bytes / ms / 1e6


def decode_attention(
    device: torch.device, dtype: torch.dtype, batch: int, context: int, heads: int,
    kv_heads: int, head_dim: int, repeats: int, block_size: int = 16,
) -> dict[str, float]:  # fmt: skip
    from backend.kernels.paged_decode import paged_decode_attention

    blocks_per_seq = -(-context // block_size)
    num_blocks = batch * blocks_per_seq
    cache = torch.randn(num_blocks * block_size, 2, kv_heads, head_dim, device=device).to(dtype)
    tables = torch.randperm(num_blocks, device=device).view(batch, blocks_per_seq).int()
    lens = torch.full((batch,), context, dtype=torch.int32, device=device)
    q = torch.randn(batch, heads, head_dim, device=device).to(dtype)
    opts = {"scale": head_dim**-0.5, "block_size": block_size, "max_context_len": context}
    triton_ms = time_ms(
        lambda: paged_decode_attention(q, cache, tables, lens, **opts), device, repeats
    )
    # The PyTorch path the CPU engine runs, on the same cache.
    slots = tables.long().unsqueeze(-1) * block_size + torch.arange(block_size, device=device)
    meta = AttentionMetadata(
        slot_mapping=torch.empty(0, dtype=torch.long, device=device), num_decodes=batch,
        decode_slots=slots.flatten(1)[:, :context],
        decode_mask=torch.zeros(batch, 1, 1, context, dtype=dtype, device=device),
    )  # fmt: skip
    empty = torch.empty(0, kv_heads, head_dim, dtype=dtype, device=device)
    torch_ms = time_ms(
        lambda: PagedAttention(head_dim**-0.5).forward(q, empty, empty, cache, meta),
        device,
        repeats,
    )
    kv_bytes = batch * context * 2 * kv_heads * head_dim * cache.element_size()
    return {
        "batch": batch, "context": context, "heads": heads, "kv_heads": kv_heads,
        "head_dim": head_dim, "dtype": str(dtype), "triton_ms": triton_ms, "torch_ms": torch_ms,
        "triton_gbs": kv_bytes / triton_ms / 1e6, "torch_gbs": kv_bytes / torch_ms / 1e6,
    }  # fmt: skip


# ---- GPU: end-to-end decode, eager and CUDA graph -----------------------------------------------


def random_model(spec: tuple, device: torch.device, dtype: torch.dtype) -> LlamaForCausalLM:
    _, hidden, inter, layers, heads, kv_heads, head_dim, vocab = spec
    config = ModelConfig(
        architecture="llama", vocab_size=vocab, hidden_size=hidden, intermediate_size=inter,
        num_layers=layers, num_heads=heads, num_kv_heads=kv_heads, head_dim=head_dim,
        rms_norm_eps=1e-5, rope_theta=10000.0, rope_scaling=None, max_position_embeddings=8192,
        tie_word_embeddings=True, attention_bias=False, bos_token_id=None, eos_token_ids=(),
    )  # fmt: skip
    with torch.device(device):
        model = LlamaForCausalLM(config, 8192)
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0.0, 0.02)
    return model.to(dtype).eval()


def decode_tokens_per_s(
    spec: tuple, device: torch.device, dtype: torch.dtype, batch: int, context: int,
    steps: int, graph: bool, triton_attention: bool, block_size: int = 16,
) -> float:  # fmt: skip
    from backend.kernels.triton_attention import TritonPagedAttention

    model = random_model(spec, device, dtype)
    config = model.config
    if triton_attention:
        for layer in model.layers:
            layer.self_attn.attn = TritonPagedAttention(layer.self_attn.attn.scale)
    width = context + steps + 1
    blocks = -(-width // block_size)
    shape = (batch * blocks * block_size, 2, config.num_kv_heads, config.head_dim)
    caches = [torch.randn(shape, device=device).to(dtype) for _ in range(config.num_layers)]
    table = torch.arange(batch * blocks, device=device).view(batch, blocks)
    slots = (table.unsqueeze(-1) * block_size + torch.arange(block_size, device=device)).flatten(1)
    slots = slots[:, :width].contiguous()
    # Static inputs: a step only copies new values into them (what a CUDA graph replays over).
    ids = torch.zeros(batch, dtype=torch.long, device=device)
    positions = torch.full((batch,), context, dtype=torch.long, device=device)
    mask = torch.zeros(batch, 1, 1, width, dtype=dtype, device=device)
    meta = AttentionMetadata(
        slot_mapping=slots[:, context].clone(), num_decodes=batch, decode_slots=slots,
        decode_mask=mask,
    )  # fmt: skip
    keys = torch.arange(width, device=device)

    def prepare(position: int) -> None:
        positions.fill_(position)
        meta.slot_mapping.copy_(slots[:, position])
        mask.copy_(torch.where(keys <= position, 0.0, float("-inf")).to(dtype).expand_as(mask))

    def step() -> torch.Tensor:
        hidden = model(ids, positions, caches, meta)
        return model.compute_logits(hidden).argmax(-1)

    run = step
    with torch.inference_mode():
        prepare(context)
        if graph:
            stream = torch.cuda.Stream()
            stream.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(stream):
                step()
                step()
            torch.cuda.current_stream().wait_stream(stream)
            cuda_graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(cuda_graph):
                tokens = step()

            def run() -> torch.Tensor:
                cuda_graph.replay()
                return tokens

        step()

        def loop() -> None:
            for i in range(steps):
                prepare(context + i)
                ids.copy_(run())

        ms = time_ms(loop, device, repeats=3)
    return batch * steps / ms * 1e3


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

    llm = LLM(kv_cache_gb=0.25, num_threads=torch.get_num_threads())
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


# ---- entry point --------------------------------------------------------------------------------


def machine(device: torch.device) -> dict[str, object]:
    commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True)
    dirty = subprocess.run(["git", "diff", "--quiet"], cwd=ROOT).returncode != 0
    return {
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "cpu": platform.processor() or platform.machine(), "cpus": os.cpu_count(),
        "torch_threads": torch.get_num_threads(), "load_average": os.getloadavg(),
        "torch": torch.__version__, "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "git_commit": commit.stdout.strip(), "git_dirty": dirty,
    }  # fmt: skip


def gpu_results(device: torch.device, smoke: bool, quick: bool, repeats: int) -> dict:
    dtype = torch.float16 if smoke else torch.bfloat16
    gpu: dict[str, object] = {}
    if device.type == "cuda":
        gpu["copy_gbs"] = copy_bandwidth_gbs(device, 2**30, repeats)
    # (batch, context, heads, kv_heads, head_dim): Llama-3-8B's and SmolLM2's attention.
    shapes = [(2, 100, 6, 2, 64)]
    if not smoke:
        contexts = ((1, 4096), (8, 4096), (64, 1024), (64, 4096), (1, 32768))
        heads = ((32, 8, 128), (9, 3, 64))
        shapes = [(b, c, *h) for h in heads for b, c in contexts][: 4 if quick else None]
    gpu["decode_attention"] = [
        decode_attention(device, dtype, *shape, repeats=repeats) for shape in shapes
    ]
    specs = [("tiny", 64, 96, 2, 4, 2, 16, 256)] if smoke else MODELS
    batches, context, steps = ((2,), 16, 2) if smoke else ((1, 16, 64), 512, 32)
    graphs = (False, True) if device.type == "cuda" else (False,)
    rows = []
    for spec in specs:
        for batch in batches:
            for attention in ("triton", "torch"):
                for graph in graphs:
                    rate = decode_tokens_per_s(
                        spec, device, dtype, batch, context, steps, graph, attention == "triton"
                    )
                    rows.append(
                        {"model": spec[0], "batch": batch, "context": context,
                         "attention": attention, "cuda_graph": graph, "tokens_per_s": rate}
                    )  # fmt: skip
    gpu["decode_tokens_per_s"] = rows
    return gpu


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer shapes, steps and repeats")
    parser.add_argument("--smoke", action="store_true", help="GPU code paths on the CPU, tiny")
    parser.add_argument("--skip-engine", action="store_true", help="no embedded-model run")
    parser.add_argument("--threads", type=int, help="CPU threads (default: all usable cores)")
    parser.add_argument("--out", type=Path, help="results file (default bench/results/...)")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads or len(os.sched_getaffinity(0)))
    cuda = torch.cuda.is_available() and not args.smoke
    device = torch.device("cuda" if cuda else "cpu")
    repeats = 3 if args.smoke else 10 if args.quick else 30
    results: dict[str, object] = {"machine": machine(device)}
    if cuda or args.smoke:
        results["gpu"] = gpu_results(device, args.smoke, args.quick, repeats)
    if not args.smoke:
        shapes = [(576, 1536), (1536, 576), (576, 3072)]
        results["cpu_int8_matmul"] = [
            int8_matmul(m, k, n, repeats) for k, n in shapes for m in (1, 32, 128, 512)
        ]
        if not args.skip_engine:
            results["cpu_int8_engine"] = engine_int8(4, 16 if args.quick else 32)
    text = json.dumps(results, indent=2)
    print(text)
    if not args.smoke or args.out:
        name = torch.cuda.get_device_name(device) if cuda else "cpu"
        out = (
            args.out
            or ROOT / "bench" / "results" / f"kernels-{name.lower().replace(' ', '-')}.json"
        )
        out.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
