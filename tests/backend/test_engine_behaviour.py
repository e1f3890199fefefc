"""Engine behaviour beyond greedy parity: seeds, n > 1 with copy-on-write, stops, cancellation,
bad input. Runs on a tiny random-weight Llama (fast) with the real SmolLM2 tokenizer."""

from __future__ import annotations

import asyncio
import random
from pathlib import Path

import pytest

from backend import LLM, SamplingParams
from backend.async_engine import AsyncEngine
from backend.engine import LLMEngine
from backend.engine_config import EngineConfig
from backend.outputs import EngineInputError
from backend.sampling_params import InvalidSamplingParams
from tests.backend.hf_reference import tiny_model


@pytest.fixture(scope="module")
def tiny_folder(tmp_path_factory: pytest.TempPathFactory, tokenizer_folder: Path) -> Path:
    return tiny_model(tmp_path_factory.mktemp("tiny") / "llama", tokenizer_folder)


@pytest.fixture(scope="module")
def llm(tiny_folder: Path) -> LLM:
    return LLM(str(tiny_folder), kv_cache_gb=0.02, max_num_seqs=32)


def free_all(llm: LLM) -> bool:
    bm = llm.engine.block_manager
    return bm.num_free_blocks == bm.num_blocks and not llm.engine.has_unfinished()


def test_seeded_sampling_is_independent_of_the_rest_of_the_batch(llm: LLM) -> None:
    prompt = llm.tokenizer.encode("The weather today is")
    seeded = SamplingParams(max_tokens=20, temperature=0.9, top_p=0.95, seed=1234)
    (alone,) = llm.generate([prompt], seeded, use_tqdm=False)
    others = [
        (llm.tokenizer.encode("Something else entirely " * 3), SamplingParams(max_tokens=30)),
        (llm.tokenizer.encode("x"), SamplingParams(max_tokens=5, temperature=0.0)),
        (prompt, SamplingParams(max_tokens=25, temperature=1.3, top_k=50, seed=99)),
    ]
    mixed = llm.generate(
        [o[0] for o in others] + [prompt], [o[1] for o in others] + [seeded], use_tqdm=False
    )
    assert mixed[-1].token_ids == alone.token_ids
    (again,) = llm.generate([prompt], seeded, use_tqdm=False)
    assert again.token_ids == alone.token_ids
    other_seed = SamplingParams(max_tokens=20, temperature=0.9, top_p=0.95, seed=4321)
    assert llm.generate([prompt], other_seed, use_tqdm=False)[0].token_ids != alone.token_ids


def test_n_greedy_copies_share_the_prompt_and_agree_with_n_1(llm: LLM) -> None:
    # Prompt ends mid-block, so every copy's first write hits the shared block: copy-on-write.
    prompt = llm.tokenizer.encode("Shared prompt with a partial last block " * 3)
    assert len(prompt) % 16 != 0
    (one,) = llm.generate([prompt], SamplingParams(max_tokens=30, temperature=0.0), use_tqdm=False)
    (three,) = llm.generate(
        [prompt], SamplingParams(n=3, max_tokens=30, temperature=0.0), use_tqdm=False
    )
    assert [o.token_ids for o in three.outputs] == [one.token_ids] * 3
    assert free_all(llm)


def test_n_sampled_copies_differ_and_are_reproducible(llm: LLM) -> None:
    prompt = llm.tokenizer.encode("Tell me a story")
    params = SamplingParams(n=4, max_tokens=16, temperature=1.0, seed=7)
    (a,) = llm.generate([prompt], params, use_tqdm=False)
    (b,) = llm.generate([prompt], params, use_tqdm=False)
    assert [o.token_ids for o in a.outputs] == [o.token_ids for o in b.outputs]
    assert len({tuple(o.token_ids) for o in a.outputs}) > 1


def test_stop_string_ends_the_text_and_is_never_streamed(llm: LLM) -> None:
    prompt = llm.tokenizer.encode("Count:")
    (free_run,) = llm.generate(
        [prompt], SamplingParams(max_tokens=40, temperature=0.0, ignore_eos=True), use_tqdm=False
    )
    text = free_run.text
    stop = text[len(text) // 2 : len(text) // 2 + 3]
    assert stop.strip()
    engine = llm.engine
    params = SamplingParams(max_tokens=40, temperature=0.0, ignore_eos=True, stop=[stop])
    engine.add_request("stop-test", prompt, params)
    streamed, last = "", None
    while engine.has_unfinished():
        for out in engine.step():
            streamed += out.deltas[0].text
            last = out.deltas[0]
    assert last is not None and last.finish_reason == "stop" and last.stop_reason == stop
    assert streamed == text[: text.index(stop)]


def test_hundreds_of_requests_with_random_cancellations_free_every_block(llm: LLM) -> None:
    engine, rng = llm.engine, random.Random(0)
    live: list[str] = []
    for i in range(300):
        prompt = [rng.randrange(100, 40000) for _ in range(rng.randrange(1, 120))]
        params = SamplingParams(max_tokens=rng.randrange(1, 40), temperature=rng.choice([0, 1]))
        engine.add_request(f"load-{i}", prompt, params, priority=rng.randrange(3))
        live.append(f"load-{i}")
        if i % 7 == 0:
            for out in engine.step():
                if out.finished:
                    live.remove(out.request_id)
        if rng.random() < 0.2 and live:
            victim = live.pop(rng.randrange(len(live)))
            assert engine.abort_request(victim) is not None
    while engine.has_unfinished():
        if rng.random() < 0.05 and live:
            engine.abort_request(live.pop(rng.randrange(len(live))))
        for out in engine.step():
            if out.finished and out.request_id in live:
                live.remove(out.request_id)
    assert live == []
    assert engine.num_requests == 0
    assert free_all(llm)


def test_max_tokens_beyond_the_context_is_clipped_to_fit(tiny_folder: Path) -> None:
    small = LLM(str(tiny_folder), kv_cache_gb=0.02, max_model_len=64)
    prompt = small.tokenizer.encode("word " * 40)
    (out,) = small.generate(
        [prompt], SamplingParams(max_tokens=1000, temperature=0, ignore_eos=True), use_tqdm=False
    )
    assert out.finish_reason == "length"
    assert len(prompt) + len(out.token_ids) == 64


def test_bad_input_gets_clear_errors(tiny_folder: Path) -> None:
    engine = LLMEngine(EngineConfig(model=str(tiny_folder), kv_cache_gb=0.02, max_model_len=64))
    ok = SamplingParams()
    with pytest.raises(EngineInputError, match="empty"):
        engine.add_request("a", [], ok)
    with pytest.raises(EngineInputError, match="64 tokens") as info:
        engine.add_request("b", [5] * 64, ok)
    assert info.value.param == "messages"
    with pytest.raises(EngineInputError, match="token ids"):
        engine.add_request("c", [5, 10**9], ok)
    engine.add_request("d", [5], ok)
    with pytest.raises(EngineInputError, match="already"):
        engine.add_request("d", [5], ok)
    with pytest.raises(InvalidSamplingParams, match="temperature"):
        SamplingParams(temperature=-1)
    with pytest.raises(InvalidSamplingParams, match="top_p"):
        SamplingParams(top_p=float("nan"))


async def test_async_stream_cancellation_frees_blocks_at_once(llm: LLM) -> None:
    engine = AsyncEngine(llm.engine)
    try:
        prompt = llm.tokenizer.encode("Stream me something long")
        params = SamplingParams(max_tokens=500, temperature=0.0, ignore_eos=True)
        received = 0
        async for out in engine.stream(prompt, params):
            received += len(out.deltas[0].token_ids)
            if received >= 5:
                break  # the caller goes away mid-stream
        for _ in range(200):
            if free_all(llm):
                break
            await asyncio.sleep(0.01)
        assert free_all(llm)
        result = await engine.generate(prompt, SamplingParams(max_tokens=8, temperature=0.0))
        assert len(result.token_ids) == 8
    finally:
        await engine.aclose()


def test_penalties_see_the_whole_history(llm: LLM) -> None:
    # A repetition penalty must change greedy output on a repetitive prompt: it only can if
    # the engine hands the sampler the prompt and output tokens.
    prompt = llm.tokenizer.encode("again " * 30)
    plain = SamplingParams(max_tokens=20, temperature=0.0, ignore_eos=True)
    penalised = SamplingParams(
        max_tokens=20, temperature=0.0, ignore_eos=True, repetition_penalty=5.0
    )
    (a,) = llm.generate([prompt], plain, use_tqdm=False)
    (b,) = llm.generate([prompt], penalised, use_tqdm=False)
    assert a.token_ids != b.token_ids
