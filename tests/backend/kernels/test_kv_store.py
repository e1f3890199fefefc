"""KV store against index_copy_: only the mapped slots change, skipped (-1) tokens write nothing."""

from __future__ import annotations

import pytest
import torch

from tests.backend.kernels.checks import poisoned, random

pytest.importorskip("triton")

from backend.kernels.kv_store import store_kv, store_kv_ref


@pytest.mark.parametrize(
    ("kv_heads", "head_dim", "dtype"),
    [(1, 64, torch.float32), (3, 128, torch.float16), (8, 64, torch.float16)],
    ids=["kv1-d64-float32", "kv3-d128-float16", "kv8-d64-float16"],
)
def test_store_writes_exactly_the_mapped_slots(
    device: torch.device, kv_heads: int, head_dim: int, dtype: torch.dtype
) -> None:
    gen = torch.Generator().manual_seed(kv_heads * head_dim)
    tokens, num_slots = 37, 96
    # k and v as views into one fused projection, the way the model hands them over.
    qkv = random((tokens, 3 * kv_heads, head_dim), dtype, device, gen)
    k, v = qkv[:, kv_heads : 2 * kv_heads], qkv[:, 2 * kv_heads :]
    slots = torch.randperm(num_slots, generator=gen)[:tokens]
    slots[[3, 20]] = -1
    slots = slots.to(device)
    cache = poisoned((num_slots, 2, kv_heads, head_dim), dtype, device)
    expected = cache.clone()
    store_kv(k, v, cache, slots)
    store_kv_ref(k, v, expected, slots)
    torch.testing.assert_close(cache, expected, rtol=0, atol=0, equal_nan=True)
    assert cache[slots[slots >= 0]].isfinite().all()
    assert cache.isnan().sum() == (num_slots - tokens + 2) * 2 * kv_heads * head_dim


@pytest.mark.parametrize(("kv_heads", "head_dim"), [(3, 64), (2, 128)])
def test_int8_store_quantizes_per_token_and_head(
    device: torch.device, kv_heads: int, head_dim: int
) -> None:
    gen = torch.Generator().manual_seed(kv_heads + head_dim)
    tokens, num_slots = 21, 48
    k = random((tokens, kv_heads, head_dim), torch.float16, device, gen)
    v = random((tokens, kv_heads, head_dim), torch.float16, device, gen) * 0.01
    slots = torch.randperm(num_slots, generator=gen)[:tokens]
    slots[5] = -1
    slots = slots.to(device)
    cache = torch.full((num_slots, 2, kv_heads, head_dim), -128, dtype=torch.int8, device=device)
    scales = poisoned((num_slots, 2, kv_heads), torch.float32, device)
    expected, expected_scales = cache.clone(), scales.clone()
    store_kv(k, v, cache, slots, scales)
    store_kv_ref(k, v, expected, slots, expected_scales)
    written = slots[slots >= 0]
    # Division may round differently on a GPU: allow one step, and check the round trip.
    assert (cache.int() - expected.int()).abs().max() <= 1
    assert (cache[written] != -128).all() and scales[written].isfinite().all()
    torch.testing.assert_close(scales, expected_scales, rtol=1e-6, atol=0, equal_nan=True)
    keep = slots >= 0
    for i, x in enumerate((k[keep], v[keep])):
        restored = cache[written, i].float() * scales[written, i][..., None]
        step = scales[written, i][..., None]
        assert ((restored - x.float()).abs() <= step * 0.5 + 1e-6).all()
