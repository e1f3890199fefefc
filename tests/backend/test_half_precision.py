"""float16 and bfloat16 through the PyTorch path on the CPU: they run, and agree with float32.

A tiny random Llama, teacher-forced: at every position of float32's greedy continuations, the
half-precision engine's greedy token against float32's. Its random weights make argmax decisive,
so the bar (90%) is loose; measured: 100% for both dtypes. On the real SmolLM2 the same check
measured 98.4% for both (63 of 64 positions), too slow on a CPU for the suite.
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from backend import LLM, SamplingParams
from tests.backend.hf_reference import tiny_model

MAX_NEW = 16
TEXTS = ("The quick brown fox", "def fibonacci(n):\n    ", "Once upon a time", "1, 2, 3, 4,")


@pytest.fixture(scope="module")
def tiny_folder(tmp_path_factory: pytest.TempPathFactory, tokenizer_folder: Path) -> Path:
    return tiny_model(tmp_path_factory.mktemp("tiny-half"), tokenizer_folder, "llama")


@pytest.fixture(scope="module")
def float32_run(tiny_folder: Path) -> tuple[list[list[int]], list[list[int]]]:
    """(prompts, float32's greedy continuations)."""
    llm = LLM(str(tiny_folder), device="cpu", kv_cache_gb=0.01, num_threads=1)
    prompts = [llm.tokenizer.encode(t) for t in TEXTS]
    params = SamplingParams(max_tokens=MAX_NEW, temperature=0.0, ignore_eos=True)
    return prompts, [o.token_ids for o in llm.generate(prompts, params, use_tqdm=False)]


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_half_precision_on_cpu_runs_and_agrees_with_float32_greedy(
    dtype: str, tiny_folder: Path, float32_run: tuple[list[list[int]], list[list[int]]]
) -> None:
    llm = LLM(str(tiny_folder), device="cpu", kv_cache_gb=0.01, num_threads=1, dtype=dtype)
    engine = llm.engine
    half = getattr(torch, dtype)
    assert engine.kernels == "torch" and engine.runner.graphs is None
    assert engine.model.embed_tokens.weight.dtype == half
    assert engine.runner.kv_cache.values[0].dtype == half
    # The rope tables stay float32; the runner hands the sampler float32 logits.
    assert engine.model.rope.cos.dtype == torch.float32

    prompts, expected = float32_run
    greedy = SamplingParams(max_tokens=MAX_NEW, temperature=0.0, ignore_eos=True)
    free = llm.generate(prompts, greedy, use_tqdm=False)
    assert [len(o.token_ids) for o in free] == [MAX_NEW] * len(prompts)

    forced = [
        p + want[:k] for p, want in zip(prompts, expected, strict=True) for k in range(MAX_NEW)
    ]
    one = SamplingParams(max_tokens=1, temperature=0.0, ignore_eos=True, logprobs=0)
    outs = llm.generate(forced, one, use_tqdm=False)
    got = [o.token_ids[0] for o in outs]
    want = [t for tokens in expected for t in tokens]
    agreement = sum(a == b for a, b in zip(got, want, strict=True)) / len(want)
    assert agreement >= 0.9, f"{dtype} agrees with float32 at {agreement:.1%} of positions"
    logprobs = [o.outputs[0].logprobs for o in outs]
    assert all(lp is not None and math.isfinite(lp[0].logprob) for lp in logprobs)
