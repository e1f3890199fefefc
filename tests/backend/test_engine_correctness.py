"""Greedy output of the engine against Hugging Face transformers, token for token (float32).

Alone, all in one batch, over a shared cached prefix, and with a pool so small it preempts.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from backend import LLM, SamplingParams
from tests.backend.hf_reference import hf_greedy, load_hf, tiny_model

# The reference runs transformers token by token on the real model: slow on 2 busy cores.
pytestmark = pytest.mark.timeout(900)

MAX_NEW = 16
GREEDY = SamplingParams(max_tokens=MAX_NEW, temperature=0.0, ignore_eos=True)


def _prompts(llm: LLM) -> list[list[int]]:
    tok = llm.tokenizer
    system = {"role": "system", "content": "You are a concise assistant. " * 6}
    chats = [
        [{"role": "user", "content": "What is the capital of France?"}],
        [system, {"role": "user", "content": "Name three colours."}],
        [
            {"role": "user", "content": "Hi! Who are you?"},
            {"role": "assistant", "content": "I am a small language model."},
            {"role": "user", "content": "What can you do for me today?"},
        ],
        [system, {"role": "user", "content": "Write a haiku about the sea " * 8}],
    ]
    texts = [
        "The quick brown fox",
        "def fibonacci(n):\n    ",
        "Once upon a time, " * 12,
        "1, 2, 3, 4,",
    ]
    return [tok.apply_chat_template(c) for c in chats] + [tok.encode(t) for t in texts]


@pytest.fixture(scope="module")
def smollm2(smollm2_folder: Path) -> tuple[LLM, object]:
    return LLM(str(smollm2_folder), kv_cache_gb=0.25), load_hf(smollm2_folder)


@pytest.fixture(scope="module")
def expected(smollm2: tuple[LLM, object]) -> list[list[int]]:
    llm, hf = smollm2
    return [hf_greedy(hf, p, MAX_NEW) for p in _prompts(llm)]  # type: ignore[arg-type]


def test_prompts_cover_several_blocks_and_chats(smollm2: tuple[LLM, object]) -> None:
    prompts = _prompts(smollm2[0])
    assert len(prompts) >= 8
    assert max(len(p) for p in prompts) > 5 * 16


def test_greedy_matches_transformers_one_at_a_time(smollm2, expected) -> None:
    llm, _ = smollm2
    for prompt, want in zip(_prompts(llm), expected, strict=True):
        llm.engine.block_manager.reset_prefix_cache()
        (got,) = llm.generate([prompt], GREEDY, use_tqdm=False)
        assert got.token_ids == want


def test_greedy_matches_transformers_in_one_batch(smollm2, expected) -> None:
    llm, _ = smollm2
    outs = llm.generate(_prompts(llm), GREEDY, use_tqdm=False)
    assert [o.token_ids for o in outs] == expected


def test_greedy_matches_transformers_from_cached_prefix(smollm2, expected) -> None:
    llm, _ = smollm2
    prompts = _prompts(llm)
    llm.generate(prompts, GREEDY, use_tqdm=False)  # fills the prefix cache
    hits_before = llm.engine.block_manager.stats.hits_tokens
    outs = llm.generate(prompts, GREEDY, use_tqdm=False)
    assert llm.engine.block_manager.stats.hits_tokens - hits_before >= sum(
        (len(p) - 1) // 16 * 16 for p in prompts
    )
    assert [o.token_ids for o in outs] == expected


def test_greedy_matches_transformers_under_preemption(smollm2_folder: Path, smollm2, expected):
    llm = smollm2[0]
    prompts = _prompts(llm)
    longest = max(len(p) for p in prompts) + MAX_NEW
    # Room for the longest sequence and little else: sequences must be preempted and recomputed.
    blocks = -(-longest // 16) + 4
    small = LLM(str(smollm2_folder), kv_cache_gb=(blocks + 0.5) * 16 * 46080 / 2**30)
    assert small.engine.block_manager.num_blocks == blocks
    outs = small.generate(prompts, GREEDY, use_tqdm=False)
    assert small.engine.stats.preemptions > 0
    assert [o.token_ids for o in outs] == expected
    assert small.engine.block_manager.num_free_blocks == blocks


def test_chunked_prefill_matches_transformers(smollm2_folder: Path, smollm2, expected) -> None:
    llm = smollm2[0]
    chunked = LLM(str(smollm2_folder), kv_cache_gb=0.1, max_num_batched_tokens=32)
    outs = chunked.generate(_prompts(llm), GREEDY, use_tqdm=False)
    assert [o.token_ids for o in outs] == expected


@pytest.mark.parametrize("kind", ["llama", "llama3", "mistral", "qwen2"])
def test_model_families_match_transformers(kind: str, tmp_path: Path, tokenizer_folder: Path):
    folder = tiny_model(tmp_path / kind, tokenizer_folder, kind)
    llm = LLM(str(folder), kv_cache_gb=0.05)
    hf = load_hf(folder)
    prompts = [llm.tokenizer.encode(t) for t in ("Hello there", "A longer prompt " * 20)]
    want = [hf_greedy(hf, p, 24) for p in prompts]
    params = SamplingParams(max_tokens=24, temperature=0.0, ignore_eos=True)
    assert [o.token_ids for o in llm.generate(prompts, params, use_tqdm=False)] == want
