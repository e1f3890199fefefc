"""The whole model with TritonPagedAttention swapped in matches the PyTorch path, step by step.

A tiny random Llama through the real ModelRunner: prefills, a chunked prefill over a cached
prefix, and decodes of different lengths in the same steps.
"""

from __future__ import annotations

import pytest
import torch

from backend.model_config import ModelConfig
from backend.model_runner import ModelRunner
from backend.models.llama import LlamaForCausalLM
from backend.sequence import Sequence

pytest.importorskip("triton")

from backend.kernels.triton_attention import TritonPagedAttention

BLOCK_SIZE = 16
NUM_BLOCKS = 24
# Steps of (new tokens per sequence): whole prompts and a first chunk, then decodes beside the
# second chunk (which reads its prefix from the cache), then decodes only.
PROMPTS = (37, 5, 50)
STEPS = ((37, 5, 20), (1, 1, 30), (1, 1, 1), (1, 1, 1))


def tiny_llama(device: torch.device, seed: int = 0) -> LlamaForCausalLM:
    config = ModelConfig(
        architecture="llama", vocab_size=512, hidden_size=96, intermediate_size=160,
        num_layers=2, num_heads=6, num_kv_heads=2, head_dim=16, rms_norm_eps=1e-5,
        rope_theta=10000.0, rope_scaling=None, max_position_embeddings=256,
        tie_word_embeddings=True, attention_bias=False, bos_token_id=None, eos_token_ids=(),
    )  # fmt: skip
    torch.manual_seed(seed)
    model = LlamaForCausalLM(config, max_positions=256)
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0.0, 0.08) if p.dim() > 1 else p.uniform_(0.8, 1.2)
    return model.to(device).eval()


def run_steps(model: LlamaForCausalLM, device: torch.device) -> list[torch.Tensor]:
    """Logits of every step, with the same tokens and shuffled block tables each time."""
    gen = torch.Generator().manual_seed(1)
    runner = ModelRunner(model, NUM_BLOCKS, BLOCK_SIZE, device=device, dtype=torch.float32)
    blocks = torch.randperm(NUM_BLOCKS, generator=gen).tolist()
    seqs = []
    for i, n in enumerate(PROMPTS):
        tokens = torch.randint(0, 512, (n,), generator=gen).tolist()
        seq = Sequence(i, f"r{i}", tokens, n, 16)
        seq.block_table = [blocks.pop() for _ in range(-(-(n + 8) // BLOCK_SIZE))]
        seqs.append(seq)
    logits = []
    for step in STEPS:
        _, step_logits = runner.execute(seqs, step)
        logits.append(step_logits)
        for seq, n in zip(seqs, step, strict=True):
            seq.num_computed_tokens += n
            if seq.num_computed_tokens == seq.num_tokens:
                seq.token_ids.append(int(torch.randint(0, 512, (1,), generator=gen)))
    return logits


def test_model_with_triton_attention_matches_pytorch_attention(device: torch.device) -> None:
    model = tiny_llama(device)
    expected = run_steps(model, device)
    for layer in model.layers:
        layer.self_attn.attn = TritonPagedAttention(scale=layer.self_attn.attn.scale)
    actual = run_steps(model, device)
    assert [t.shape[0] for t in actual] == [2, 3, 3, 3]
    for got, want in zip(actual, expected, strict=True):
        torch.testing.assert_close(got, want, atol=1e-4, rtol=1e-4)
