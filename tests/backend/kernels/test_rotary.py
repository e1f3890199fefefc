"""Rotary embedding in place against its reference, with default and llama3-scaled tables."""

from __future__ import annotations

import pytest
import torch

from backend.model_config import ModelConfig
from backend.rope import RotaryEmbedding
from tests.backend.kernels.checks import assert_close, random

pytest.importorskip("triton")

from backend.kernels.rotary import apply_rotary_, apply_rotary_ref

LLAMA3 = {
    "rope_type": "llama3",
    "factor": 8.0,
    "low_freq_factor": 1.0,
    "high_freq_factor": 4.0,
    "original_max_position_embeddings": 512,
}


def tables(head_dim: int, scaling: dict | None, device: torch.device) -> RotaryEmbedding:
    config = ModelConfig(
        architecture="llama", vocab_size=32, hidden_size=head_dim * 2, intermediate_size=8,
        num_layers=1, num_heads=2, num_kv_heads=1, head_dim=head_dim, rms_norm_eps=1e-5,
        rope_theta=500000.0 if scaling else 10000.0, rope_scaling=scaling,
        max_position_embeddings=4096, tie_word_embeddings=True, attention_bias=False,
        bos_token_id=None, eos_token_ids=(),
    )  # fmt: skip
    return RotaryEmbedding(config, 4096).to(device)


@pytest.mark.parametrize(
    ("head_dim", "heads", "kv_heads", "dtype", "scaling"),
    [
        (64, 2, 2, torch.float32, None),
        (128, 6, 2, torch.float16, LLAMA3),
        (64, 8, 1, torch.float32, LLAMA3),
    ],
    ids=["d64-gqa1-float32-default", "d128-gqa3-float16-llama3", "d64-gqa8-float32-llama3"],
)
def test_rotary_in_place_matches_reference(
    device: torch.device,
    head_dim: int,
    heads: int,
    kv_heads: int,
    dtype: torch.dtype,
    scaling: dict | None,
) -> None:
    gen = torch.Generator().manual_seed(head_dim + heads)
    rope = tables(head_dim, scaling, device)
    tokens = 11
    positions = torch.randint(0, 4096, (tokens,), generator=gen).to(device)
    # q and k as views into one fused projection, rotated where they lie.
    qkv = random((tokens, heads + 2 * kv_heads, head_dim), dtype, device, gen)
    expected = qkv.clone()
    q, k = qkv[:, :heads], qkv[:, heads : heads + kv_heads]
    apply_rotary_(q, k, positions, rope.cos, rope.sin)
    apply_rotary_ref(expected[:, :heads], expected[:, heads : heads + kv_heads], positions,
                     rope.cos, rope.sin)  # fmt: skip
    assert_close(qkv, expected)
