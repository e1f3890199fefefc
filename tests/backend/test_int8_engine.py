"""int8 weights and int8 KV cache in the engine, on the embedded SmolLM2.

Teacher-forced over the fixed text set shipped with the tests: the int8 variants' argmax must
match float32's at 95% of positions or more and perplexity stay within 2%; int8 KV holds 3.76
times float32's blocks in the same memory; prefix-cache hits and copy-on-write forks over an
int8 cache give the same greedy tokens as computing everything afresh.
"""

from __future__ import annotations

import copy
import logging
import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from backend import LLM, SamplingParams
from backend.attention import AttentionMetadata, PrefillSpan
from backend.kv_cache import KVCache, kv_bytes_per_block
from backend.models.llama import LlamaForCausalLM
from backend.quant import Int8Linear, quantize_linear_weights

TEXTS = Path(__file__).parent / "kernels" / "data" / "int8_texts.txt"
KV_CACHE_GB = 0.02
CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def one_thread() -> object:
    # One thread: on a shared machine, waiting OpenMP threads make two several times slower.
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def fp32_llm(smollm2_folder: Path, one_thread: object) -> LLM:
    return LLM(str(smollm2_folder), kv_cache_gb=KV_CACHE_GB, num_threads=1)


class LogLines(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


@pytest.fixture(scope="module")
def int8_start(smollm2_folder: Path, one_thread: object) -> tuple[LLM, list[str]]:
    """The int8 engine, and what it logged while starting."""
    logger = logging.getLogger("sluicegate.engine")
    handler, level = LogLines(), logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        llm = LLM(
            str(smollm2_folder),
            kv_cache_gb=KV_CACHE_GB,
            num_threads=1,
            weights="int8",
            kv_cache_dtype="int8",
        )
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
    return llm, handler.lines


@pytest.fixture(scope="module")
def int8_llm(int8_start: tuple[LLM, list[str]]) -> LLM:
    return int8_start[0]


# ---- accuracy: teacher-forced over the text set --------------------------------------------


def chunk_logits(
    model: LlamaForCausalLM, cache: KVCache, tokens: list[int], start: int, end: int
) -> torch.Tensor:
    """Logits after each of tokens[start:end], the prefix read from the cache (slot: position)."""
    span = PrefillSpan(0, end - start)
    if start:
        keys, queries = torch.arange(end), torch.arange(start, end)
        span.context_slots = keys
        span.mask = torch.zeros(end - start, end).masked_fill_(
            keys[None, :] > queries[:, None], float("-inf")
        )
    meta = AttentionMetadata(slot_mapping=torch.arange(start, end), prefills=[span])
    ids, positions = torch.tensor(tokens[start:end]), torch.arange(start, end)
    hidden = model(ids, positions, cache.values, meta, cache.scales)
    return model.compute_logits(hidden).float()


@torch.inference_mode()
def score(
    model: LlamaForCausalLM, docs: list[list[int]], *, int8_kv: bool
) -> tuple[torch.Tensor, float]:
    """(argmax after every position, perplexity) over docs, each in two prefill chunks: the
    second reads the first's K/V back from the (int8) cache, as a cached prefix is read."""
    predictions, nll, count = [], 0.0, 0
    for tokens in docs:
        n, half = len(tokens), len(tokens) // 2
        blocks = -(-n // 16)
        cache = KVCache(
            model.config, blocks, 16, dtype=torch.float32, quantized=int8_kv, device=CPU
        )
        logits = torch.cat(
            [
                chunk_logits(model, cache, tokens, 0, half),
                chunk_logits(model, cache, tokens, half, n),
            ]
        )[:-1]
        targets = torch.tensor(tokens[1:])
        nll += float(F.cross_entropy(logits, targets, reduction="sum"))
        count += len(targets)
        predictions.append(logits.argmax(-1))
    return torch.cat(predictions), math.exp(nll / count)


@pytest.fixture(scope="module")
def docs(fp32_llm: LLM) -> list[list[int]]:
    return [fp32_llm.tokenizer.encode(t.strip()) for t in TEXTS.read_text().split("\n\n")]


@pytest.fixture(scope="module")
def float32_scores(fp32_llm: LLM, docs: list[list[int]]) -> tuple[torch.Tensor, float]:
    return score(fp32_llm.engine.model, docs, int8_kv=False)


@pytest.mark.parametrize(
    ("weights", "int8_kv"),
    [("int8", False), ("auto", True), ("int8", True)],
    ids=["int8-weights", "int8-kv", "int8-weights-and-kv"],
)
def test_int8_keeps_greedy_tokens_and_perplexity(
    fp32_llm: LLM,
    int8_llm: LLM,
    docs: list[list[int]],
    float32_scores: tuple[torch.Tensor, float],
    weights: str,
    int8_kv: bool,
) -> None:
    expected, float_ppl = float32_scores
    # The int8 engine's own weights, quantized at load by weights="int8".
    model = int8_llm.engine.model if weights == "int8" else fp32_llm.engine.model
    actual, ppl = score(model, docs, int8_kv=int8_kv)
    assert expected.numel() > 500
    agreement = float((actual == expected).float().mean())
    assert agreement >= 0.95, f"greedy agreement {agreement:.3f}"
    assert abs(ppl / float_ppl - 1) <= 0.02, f"perplexity {float_ppl:.3f} -> {ppl:.3f}"


# ---- the engine's set-up -------------------------------------------------------------------


def test_int8_engine_quantizes_every_linear_but_lm_head(int8_llm: LLM) -> None:
    model = int8_llm.engine.model
    int8 = [name for name, m in model.named_modules() if isinstance(m, Int8Linear)]
    assert len(int8) == 4 * model.config.num_layers
    assert not isinstance(model.lm_head, Int8Linear)
    assert model.lm_head.weight is model.embed_tokens.weight
    # The same layers the standalone quantizer picks, so the accuracy test measures the engine.
    assert quantize_linear_weights(copy.deepcopy(model)) == 0


def test_int8_kv_holds_3_76_times_the_float32_blocks_in_the_same_memory(
    fp32_llm: LLM, int8_llm: LLM
) -> None:
    config = fp32_llm.engine.model_config
    assert config.head_dim == 64
    fp32_blocks = fp32_llm.engine.block_manager.num_blocks
    int8_blocks = int8_llm.engine.block_manager.num_blocks
    pool = int(KV_CACHE_GB * 2**30)
    # Per head and token: float32 256 bytes; int8 64 + a float32 scale 4 = 68 bytes.
    assert kv_bytes_per_block(config, 16, torch.float32) == 30 * 2 * 16 * 3 * 256
    assert kv_bytes_per_block(config, 16, torch.float32, quantized=True) == 30 * 2 * 16 * 3 * 68
    assert fp32_blocks == pool // (30 * 2 * 16 * 3 * 256)
    assert int8_blocks == pool // (30 * 2 * 16 * 3 * 68)
    assert int8_blocks / fp32_blocks >= 3.7  # 256 / 68 = 3.76, floors aside
    # Against a 16-bit cache (GPU dtypes): 128 / 68 = 1.88 with head_dim 64.
    bf16 = kv_bytes_per_block(config, 16, torch.bfloat16)
    assert bf16 / kv_bytes_per_block(config, 16, torch.float32, quantized=True) == 128 / 68
    tensors = int8_llm.engine.runner.kv_cache
    assert tensors.values[0].dtype == torch.int8 and tensors.scales is not None
    held = sum(t.numel() * t.element_size() for t in tensors.values + tensors.scales)
    assert held == int8_blocks * kv_bytes_per_block(config, 16, torch.float32, quantized=True)
    assert held <= pool


def test_int8_engine_logs_its_kv_pool_and_weights_at_start(
    int8_start: tuple[LLM, list[str]],
) -> None:
    llm, lines = int8_start
    blocks = llm.engine.block_manager.num_blocks
    pool = next(line for line in lines if line.startswith("KV cache:"))
    assert f"{blocks} blocks of 16 tokens ({blocks * 16} tokens)" in pool
    assert "int8 + float32 scales" in pool and f"{30 * 2 * 16 * 3 * 68} bytes per block" in pool
    assert "weights: 120 linear layers quantized to int8 (lm_head kept)" in lines


# ---- prefix caching and copy-on-write over an int8 cache -----------------------------------

GREEDY = SamplingParams(max_tokens=10, temperature=0.0, ignore_eos=True)


def prompts(llm: LLM) -> tuple[list[int], list[int]]:
    """Two prompts sharing two full blocks, the second ending mid-block."""
    system = llm.tokenizer.encode(
        "You are a careful assistant who answers questions about rivers, mills and "
        "the old sluice gates that farmers used to keep their fields dry in spring, when the "
        "snow melts in the hills and every stream runs high."
    )
    assert len(system) > 32
    shared = system[:32]
    first = shared + llm.tokenizer.encode(" Where do rivers begin?")
    second = shared + llm.tokenizer.encode(" Why did the mill need a sluice gate at all?")
    assert len(second) % 16 != 0
    return first, second


def test_prefix_cache_hit_over_int8_kv_gives_the_fresh_greedy_tokens(int8_llm: LLM) -> None:
    first, second = prompts(int8_llm)
    engine = int8_llm.engine
    engine.block_manager.reset_prefix_cache()
    (fresh,) = int8_llm.generate([second], GREEDY, use_tqdm=False)
    assert fresh.num_cached_tokens == 0
    engine.block_manager.reset_prefix_cache()
    int8_llm.generate([first], SamplingParams(max_tokens=1), use_tqdm=False)
    (cached,) = int8_llm.generate([second], GREEDY, use_tqdm=False)
    assert cached.num_cached_tokens == 32
    assert cached.outputs[0].token_ids == fresh.outputs[0].token_ids


def test_copy_on_write_forks_over_int8_kv_agree_with_one_sequence(
    int8_llm: LLM, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, second = prompts(int8_llm)
    engine = int8_llm.engine
    engine.block_manager.reset_prefix_cache()
    (one,) = int8_llm.generate([second], GREEDY, use_tqdm=False)
    engine.block_manager.reset_prefix_cache()
    # The forks share the prompt's partly filled last block: their first writes copy it, and
    # the copy must carry the block's scales (see test_int8_kv_cache for the copy itself).
    copies: list[tuple[int, int]] = []
    copy_blocks = engine.runner.copy_blocks

    def spy(pairs: list[tuple[int, int]]) -> None:
        copies.extend(pairs)
        copy_blocks(pairs)

    monkeypatch.setattr(engine.runner, "copy_blocks", spy)
    params = SamplingParams(n=2, max_tokens=10, temperature=0.0, ignore_eos=True)
    (two,) = int8_llm.generate([second], params, use_tqdm=False)
    assert copies, "no copy-on-write happened"
    assert [o.token_ids for o in two.outputs] == [one.outputs[0].token_ids] * 2
    bm = engine.block_manager
    assert bm.num_free_blocks == bm.num_blocks
