"""KV store: write each new token's K and V into its cache slot, quantizing when the cache is int8.

A negative slot skips the token (padding rows of a CUDA-graph batch write nothing).
"""

# k, v: [tokens, kv_heads, head_dim]; kv_cache: [slots, 2, kv_heads, head_dim] (float, or int8
# with kv_scales: [slots, 2, kv_heads] float32, one symmetric scale per token, K/V and head);
# slot_mapping: [tokens] int, slot = block * block_size + offset, or -1 to skip.

from __future__ import annotations

import torch
import triton
import triton.language as tl

from backend.kv_cache import quantize_kv


@triton.jit
def _quantize(x, scale_ptr, ok_h):
    # Symmetric per-head int8: round half away from zero of x / (absmax / 127).
    xf = x.to(tl.float32)
    scale = tl.maximum(tl.max(tl.abs(xf), 1), 1e-8) / 127.0
    tl.store(scale_ptr, scale, mask=ok_h)
    y = xf / scale[:, None]
    return tl.where(y >= 0, tl.floor(y + 0.5), tl.ceil(y - 0.5)).to(tl.int8)


@triton.jit
def _store_kernel(
    k_ptr, v_ptr, cache_ptr, scales_ptr, slots_ptr,
    stride_kt, stride_kh, stride_vt, stride_vh,
    stride_cs, stride_ckv, stride_ch,
    stride_ss, stride_skv,
    KV_HEADS: tl.constexpr, HEADS_PAD: tl.constexpr,
    HEAD_DIM: tl.constexpr, DIM_PAD: tl.constexpr, QUANTIZED: tl.constexpr,
):  # fmt: skip
    t = tl.program_id(0).to(tl.int64)
    slot = tl.load(slots_ptr + t).to(tl.int64)
    if slot < 0:
        return
    h = tl.arange(0, HEADS_PAD)
    d = tl.arange(0, DIM_PAD)
    ok_h = h < KV_HEADS
    ok = ok_h[:, None] & (d < HEAD_DIM)[None, :]
    k = tl.load(k_ptr + t * stride_kt + h[:, None] * stride_kh + d[None, :], mask=ok, other=0.0)
    v = tl.load(v_ptr + t * stride_vt + h[:, None] * stride_vh + d[None, :], mask=ok, other=0.0)
    dest = cache_ptr + slot * stride_cs + h[:, None] * stride_ch + d[None, :]
    if QUANTIZED:
        scale = scales_ptr + slot * stride_ss + h
        tl.store(dest, _quantize(k, scale, ok_h), mask=ok)
        tl.store(dest + stride_ckv, _quantize(v, scale + stride_skv, ok_h), mask=ok)
    else:
        tl.store(dest, k.to(cache_ptr.dtype.element_ty), mask=ok)
        tl.store(dest + stride_ckv, v.to(cache_ptr.dtype.element_ty), mask=ok)


def store_kv(
    k: torch.Tensor,
    v: torch.Tensor,
    kv_cache: torch.Tensor,
    slot_mapping: torch.Tensor,
    kv_scales: torch.Tensor | None = None,
) -> None:
    """Copy k and v into kv_cache at slot_mapping, in place (int8 caches also fill kv_scales)."""
    tokens, kv_heads, head_dim = k.shape
    assert k.stride(2) == 1 and v.stride(2) == 1 and kv_cache.stride(3) == 1
    quantized = kv_cache.dtype == torch.int8
    assert not quantized or (kv_scales is not None and kv_scales.stride(2) == 1)
    if tokens == 0:
        return
    scales = kv_scales if quantized else kv_cache
    _store_kernel[(tokens,)](
        k, v, kv_cache, scales, slot_mapping,
        k.stride(0), k.stride(1), v.stride(0), v.stride(1),
        kv_cache.stride(0), kv_cache.stride(1), kv_cache.stride(2),
        scales.stride(0), scales.stride(1),
        KV_HEADS=kv_heads, HEADS_PAD=triton.next_power_of_2(kv_heads),
        HEAD_DIM=head_dim, DIM_PAD=triton.next_power_of_2(head_dim), QUANTIZED=quantized,
    )  # fmt: skip


def quantize_kv_ref(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """[..., head_dim] -> (int8 values, float32 scales [...]), rounding as the kernel does.

    The engine's CPU path quantizes with this same function (backend.kv_cache.quantize_kv).
    """
    return quantize_kv(x)


def store_kv_ref(
    k: torch.Tensor,
    v: torch.Tensor,
    kv_cache: torch.Tensor,
    slot_mapping: torch.Tensor,
    kv_scales: torch.Tensor | None = None,
) -> None:
    """The same copy through index_copy_."""
    keep = slot_mapping >= 0
    slots = slot_mapping[keep].long()
    rows = torch.stack((k[keep], v[keep]), dim=1)
    if kv_cache.dtype == torch.int8:
        assert kv_scales is not None
        values, scales = quantize_kv_ref(rows)
        kv_cache.index_copy_(0, slots, values)
        kv_scales.index_copy_(0, slots, scales)
    else:
        kv_cache.index_copy_(0, slots, rows.to(kv_cache.dtype))
