"""The engine with kernels="triton" gives transformers' greedy tokens and the PyTorch path's.

The whole LLM on a tiny random Llama (interpreted on the CPU, float32): prompts of different
lengths under a token budget that puts the longest prompt's chunks beside the others' decodes,
then the same prompts again from the prefix cache; int8 weights and int8 KV through the kernels;
decode batches padded to a CUDA-graph size. With TRITON_INTERPRET=0 on a CUDA machine the same
tests run the compiled kernels, and the engine captures and replays real CUDA graphs.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from transformers import AutoModelForCausalLM, LlamaConfig

from backend import LLM, SamplingParams
from backend.model_runner import ModelRunner
from backend.sequence import Sequence
from tests.backend.hf_reference import TOKENIZER_FILES, hf_greedy, load_hf

pytest.importorskip("triton")

# The interpreter costs milliseconds per program and most kernels run a program per token and
# layer: a handful of tokens, two layers and blocks of 4 keep the file to seconds.
MAX_NEW = 3
GREEDY = SamplingParams(max_tokens=MAX_NEW, temperature=0.0, ignore_eos=True)
# 2, 6 and 11 tokens under a budget of 8: the first step prefills the two short prompts, the
# next two decode them beside the long prompt's two chunks.
PROMPTS = ([5, 6], list(range(200, 206)), list(range(300, 311)))
BUDGET = 8
BLOCK_SIZE = 4
CLOSE = {"atol": 1e-4, "rtol": 1e-4}


@pytest.fixture(scope="module")
def one_thread() -> Iterator[None]:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def tiny_folder(tmp_path_factory: pytest.TempPathFactory, tokenizer_folder: Path) -> Path:
    """Two layers, GQA 2, head_dim 16; weights wide enough that greedy tokens vary and argmax
    is decisive."""
    config = LlamaConfig(
        vocab_size=49152, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256,
        tie_word_embeddings=True, bos_token_id=1, eos_token_id=2,
    )  # fmt: skip
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    with torch.no_grad():
        for p in model.parameters():
            if p.dim() > 1:
                p.normal_(0.0, 0.2)
    folder = tmp_path_factory.mktemp("tiny-llama")
    model.save_pretrained(folder)
    for name in TOKENIZER_FILES:
        if (tokenizer_folder / name).exists():
            (folder / name).write_bytes((tokenizer_folder / name).read_bytes())
    return folder


@pytest.fixture(scope="module")
def expected(tiny_folder: Path) -> list[list[int]]:
    hf = load_hf(tiny_folder)
    return [hf_greedy(hf, p, MAX_NEW) for p in PROMPTS]


def engine(folder: Path, device: torch.device, kernels: str, **options: object) -> LLM:
    # A small pool: the interpreter copies every tensor argument (the whole cache) per launch.
    return LLM(
        str(folder), device=str(device), kernels=kernels, block_size=BLOCK_SIZE,
        kv_cache_gb=2**-13, max_num_batched_tokens=BUDGET, num_threads=1, **options,
    )  # fmt: skip


def record_steps(llm: LLM) -> list[list[int]]:
    """The tokens per sequence of every step the runner executes from now on."""
    steps: list[list[int]] = []
    runner = llm.engine.runner
    execute = runner.execute

    def recording(seqs: list[Sequence], num_new_tokens: list[int]):  # type: ignore[no-untyped-def]
        steps.append(list(num_new_tokens))
        return execute(seqs, num_new_tokens)

    runner.execute = recording  # type: ignore[method-assign]
    return steps


def generate(llm: LLM, prompts: tuple[list[int], ...] = PROMPTS) -> list[list[int]]:
    return [o.token_ids for o in llm.generate(list(prompts), GREEDY, use_tqdm=False)]


def test_triton_engine_matches_transformers_beside_decodes_and_from_cached_prefix(
    tiny_folder: Path, expected: list[list[int]], device: torch.device, one_thread: None
) -> None:
    llm = engine(tiny_folder, device, "triton")
    assert llm.engine.kernels == "triton"
    assert (llm.engine.runner.graphs is not None) == (device.type == "cuda")
    steps = record_steps(llm)
    assert generate(llm) == expected
    mixed = [s for s in steps if 1 in s and any(n > 1 for n in s)]
    assert mixed, f"no step mixed decodes with a prefill chunk: {steps}"

    hits = llm.engine.block_manager.stats.hits_tokens
    assert generate(llm) == expected
    # The long prompt's two full blocks and the middle one's one block, from the cache.
    assert llm.engine.block_manager.stats.hits_tokens - hits == 3 * BLOCK_SIZE

    torch_llm = engine(tiny_folder, device, "torch")
    assert torch_llm.engine.kernels == "torch"
    assert generate(torch_llm) == expected


def test_int8_weights_and_kv_through_the_kernels_give_the_torch_paths_tokens(
    tiny_folder: Path, device: torch.device, one_thread: None
) -> None:
    int8 = {"weights": "int8", "kv_cache_dtype": "int8"}
    prompts = PROMPTS[:2]
    want = generate(engine(tiny_folder, device, "torch", **int8), prompts)
    llm = engine(tiny_folder, device, "triton", **int8)
    linear = llm.engine.model.layers[0].mlp.gate_up_proj
    assert linear.triton is True  # type: ignore[union-attr]
    assert generate(llm, prompts) == want


def test_decodes_padded_to_a_graph_size_give_the_unpadded_logits(
    tiny_folder: Path, device: torch.device, one_thread: None
) -> None:
    """Three decodes padded to a batch of 4 through DecodeGraphs' static buffers (replayed from
    a captured graph on CUDA, run eagerly elsewhere) against the kernels without padding; five,
    above the largest size, run unpadded in the same runner. Contexts come from a random cache."""
    model = engine(tiny_folder, device, "triton").engine.model
    eager = ModelRunner(model, 10, 16, device=device, dtype=torch.float32)
    padded = ModelRunner(
        model, 10, 16, device=device, dtype=torch.float32, cuda_graph_sizes=(1, 2, 4),
        max_model_len=32,
    )  # fmt: skip
    assert padded.graphs is not None
    padded_runs: list[int] = []
    run = padded.graphs.run
    padded.graphs.run = lambda inputs: padded_runs.append(len(inputs)) or run(inputs)  # type: ignore[method-assign]

    def decode(runner: ModelRunner, count: int) -> torch.Tensor:
        gen = torch.Generator().manual_seed(count)
        for values in runner.kv_cache.values:
            values.copy_(torch.randn(values.shape, generator=gen))
        seqs = []
        for i, n in enumerate((3, 17, 9, 2, 20)[:count]):
            seq = Sequence(i, f"r{i}", torch.randint(0, 49152, (n,), generator=gen).tolist(), n, 8)
            seq.num_computed_tokens = n - 1
            seq.block_table = [2 * i, 2 * i + 1]
            seqs.append(seq)
        order, logits = runner.execute(seqs, [1] * count)
        return logits[torch.tensor(order).argsort()]

    for count in (3, 5):
        torch.testing.assert_close(decode(padded, count), decode(eager, count), **CLOSE)
        # The padding row wrote no K/V: both caches hold the same tokens.
        for got, want in zip(padded.kv_cache.values, eager.kv_cache.values, strict=True):
            torch.testing.assert_close(got, want, **CLOSE)
    assert padded_runs == [3]


@pytest.mark.parametrize("dtype", ["bfloat16", "float16"])
def test_half_precision_on_cuda_gives_the_float32_greedy_tokens(
    tiny_folder: Path, expected: list[list[int]], device: torch.device, dtype: str
) -> None:
    """bf16/fp16 through the compiled kernels and captured graphs, checked against transformers'
    float32 tokens (the tiny model's argmax is decisive enough for half precision). CUDA only:
    the interpreter has no bfloat16."""
    if device.type != "cuda":
        pytest.skip("half precision through the compiled kernels needs CUDA")
    llm = engine(tiny_folder, device, "triton", dtype=dtype)
    assert llm.engine.runner.graphs is not None
    assert generate(llm) == expected
    assert generate(engine(tiny_folder, device, "torch", dtype=dtype)) == expected
