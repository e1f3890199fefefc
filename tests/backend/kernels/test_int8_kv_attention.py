"""TritonPagedAttention over an int8 KV cache matches the engine's PyTorch int8 path.

One step mixing a decode, a whole prompt and a chunk over a cached prefix: the Triton KV store
writes the same int8 values and scales, and attention gives the same output.
"""

from __future__ import annotations

import pytest
import torch

from backend.attention import PagedAttention
from backend.kv_cache import KVCache, quantize_kv
from tests.backend.test_int8_kv_cache import (
    BLOCK,
    HEAD_DIM,
    HEADS,
    KV_HEADS,
    config,
    step_metadata,
)

pytest.importorskip("triton")

from backend.kernels.triton_attention import TritonPagedAttention


def test_triton_attention_over_int8_cache_matches_the_pytorch_path(device: torch.device) -> None:
    gen = torch.Generator().manual_seed(3)
    slots = torch.randperm(12 * BLOCK, generator=gen).to(device)
    decode, prompt, chunk_context = slots[:21], slots[21:34], slots[34:58]
    meta = step_metadata(decode, prompt, chunk_context, new_chunk=9)
    tokens = meta.slot_mapping.numel()
    q, k, v = (
        torch.randn(tokens, h, HEAD_DIM, generator=gen).to(device)
        for h in (HEADS, KV_HEADS, KV_HEADS)
    )
    cached = torch.cat([decode[:-1], chunk_context[:15]])
    history = torch.randn(cached.numel(), 2, KV_HEADS, HEAD_DIM, generator=gen).to(device)

    outputs, caches = [], []
    for attention in (PagedAttention(HEAD_DIM**-0.5), TritonPagedAttention(HEAD_DIM**-0.5)):
        cache = KVCache(config(), 12, BLOCK, dtype=torch.float32, quantized=True, device=device)
        assert cache.scales is not None
        cache.values[0][cached], cache.scales[0][cached] = quantize_kv(history)
        outputs.append(attention.forward(q, k, v, cache.values[0], meta, cache.scales[0]).cpu())
        caches.append((cache.values[0].cpu().int(), cache.scales[0].cpu()))

    (want_values, want_scales), (got_values, got_scales) = caches
    assert (got_values - want_values).abs().max() <= 1  # a rounding tie may go either way
    torch.testing.assert_close(got_scales, want_scales, rtol=1e-6, atol=0)
    torch.testing.assert_close(outputs[1], outputs[0], atol=2e-4, rtol=2e-4)
