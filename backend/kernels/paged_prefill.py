"""Prefill attention over the paged KV cache, varlen: sequences of any lengths in one launch.

New tokens attend to their sequence's cached prefix and, causally, to themselves.
"""

# q: [tokens, heads, head_dim] (sequence p's new tokens are rows query_start[p]:query_start[p + 1]);
# kv_cache: [slots, 2, kv_heads, head_dim], already holding the new tokens' K/V (float, or int8
# with kv_scales: [slots, 2, kv_heads] float32, see kv_store);
# block_tables: [seqs, max_blocks] int; query_start: [seqs + 1] int; context_lens: [seqs] int
# (cached prefix + new tokens); out: like q.

from __future__ import annotations

import torch
import triton
import triton.language as tl

BLOCK_M = 32
BLOCK_N = 64


@triton.jit
def _prefill_kernel(
    q_ptr, cache_ptr, scales_ptr, tables_ptr, start_ptr, lens_ptr, out_ptr,
    scale_log2e,
    stride_qt, stride_qh,
    stride_cs, stride_ckv, stride_ch,
    stride_ss, stride_skv,
    stride_tb,
    stride_ot, stride_oh,
    GROUP: tl.constexpr,
    HEAD_DIM: tl.constexpr, DIM_PAD: tl.constexpr,
    BLOCK_SIZE: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr,
    PRECISION: tl.constexpr, QUANTIZED: tl.constexpr,
):  # fmt: skip
    tile = tl.program_id(0)
    seq = tl.program_id(1)
    head = tl.program_id(2)
    kv_head = head // GROUP
    q_first = tl.load(start_ptr + seq)
    q_len = tl.load(start_ptr + seq + 1) - q_first
    if tile * BLOCK_M >= q_len:
        return
    context = tl.load(lens_ptr + seq)
    prefix = context - q_len

    m = tile * BLOCK_M + tl.arange(0, BLOCK_M)
    d = tl.arange(0, DIM_PAD)
    d_ok = d < HEAD_DIM
    q_ok = (m < q_len)[:, None] & d_ok[None, :]
    rows = (q_first + m).to(tl.int64)
    q_ptrs = q_ptr + rows[:, None] * stride_qt + head * stride_qh + d[None, :]
    q = tl.load(q_ptrs, mask=q_ok, other=0.0)
    q_pos = prefix + m

    row_max = tl.full([BLOCK_M], float("-inf"), tl.float32)
    row_sum = tl.zeros([BLOCK_M], tl.float32)
    acc = tl.zeros([BLOCK_M, DIM_PAD], tl.float32)
    # Keys up to the tile's last query position; key 0 is in every row's first tile, so every
    # row's running max is finite from the first iteration on.
    end = tl.minimum(context, prefix + (tile + 1) * BLOCK_M)
    for n0 in range(0, end, BLOCK_N):
        pos = n0 + tl.arange(0, BLOCK_N)
        valid = pos < end
        block = tl.load(tables_ptr + seq * stride_tb + pos // BLOCK_SIZE, mask=valid, other=0)
        slot = block.to(tl.int64) * BLOCK_SIZE + pos % BLOCK_SIZE
        kv_ok = valid[:, None] & d_ok[None, :]
        k_ptrs = cache_ptr + slot[:, None] * stride_cs + kv_head * stride_ch + d[None, :]
        k = tl.load(k_ptrs, mask=kv_ok, other=0.0)
        # int8 K/V: per-token scales fold into the scores and probabilities, not into K and V.
        s_ptrs = scales_ptr + slot * stride_ss + kv_head
        if QUANTIZED:
            k = k.to(q.dtype)
        scores = tl.dot(q, tl.trans(k), input_precision=PRECISION) * scale_log2e
        if QUANTIZED:
            scores *= tl.load(s_ptrs, mask=valid, other=0.0)[None, :]
        allowed = valid[None, :] & (pos[None, :] <= q_pos[:, None])
        scores = tl.where(allowed, scores, float("-inf"))
        new_max = tl.maximum(row_max, tl.max(scores, 1))
        alpha = tl.exp2(row_max - new_max)
        p = tl.exp2(scores - new_max[:, None])
        row_sum = row_sum * alpha + tl.sum(p, 1)
        v = tl.load(k_ptrs + stride_ckv, mask=kv_ok, other=0.0)
        if QUANTIZED:
            p *= tl.load(s_ptrs + stride_skv, mask=valid, other=0.0)[None, :]
            v = v.to(q.dtype)
        acc = acc * alpha[:, None] + tl.dot(p.to(v.dtype), v, input_precision=PRECISION)
        row_max = new_max

    o = acc / row_sum[:, None]
    out_ptrs = out_ptr + rows[:, None] * stride_ot + head * stride_oh + d[None, :]
    tl.store(out_ptrs, o.to(out_ptr.dtype.element_ty), mask=q_ok)


def paged_prefill_attention(
    q: torch.Tensor,
    kv_cache: torch.Tensor,
    block_tables: torch.Tensor,
    query_start: torch.Tensor,
    context_lens: torch.Tensor,
    *,
    scale: float,
    block_size: int,
    max_query_len: int,
    kv_scales: torch.Tensor | None = None,
    out: torch.Tensor | None = None,
) -> torch.Tensor:
    """Attention output [tokens, heads, head_dim]; written into `out` when given.

    max_query_len bounds the new tokens of any sequence (a host int: the grid is sized by it).
    """
    tokens, heads, head_dim = q.shape
    kv_heads = kv_cache.shape[2]
    assert q.stride(2) == 1 and kv_cache.stride(3) == 1, "head_dim must be contiguous"
    assert block_size & (block_size - 1) == 0, "block_size must be a power of two"
    quantized = kv_cache.dtype == torch.int8
    assert not quantized or (kv_scales is not None and kv_scales.stride(2) == 1)
    scales = kv_scales if quantized else kv_cache
    if out is None:
        out = torch.empty_like(q)
    seqs = context_lens.shape[0]
    if tokens == 0 or seqs == 0:
        return out
    grid = (triton.cdiv(max_query_len, BLOCK_M), seqs, heads)
    _prefill_kernel[grid](
        q, kv_cache, scales, block_tables, query_start, context_lens, out,
        scale * 1.4426950408889634,
        q.stride(0), q.stride(1),
        kv_cache.stride(0), kv_cache.stride(1), kv_cache.stride(2),
        scales.stride(0), scales.stride(1),
        block_tables.stride(0),
        out.stride(0), out.stride(1),
        GROUP=heads // kv_heads,
        HEAD_DIM=head_dim, DIM_PAD=max(16, triton.next_power_of_2(head_dim)),
        BLOCK_SIZE=block_size, BLOCK_M=BLOCK_M, BLOCK_N=BLOCK_N,
        PRECISION="ieee" if q.dtype == torch.float32 else "tf32", QUANTIZED=quantized,
    )  # fmt: skip
    return out


def paged_prefill_attention_ref(
    q: torch.Tensor,
    kv_cache: torch.Tensor,
    block_tables: torch.Tensor,
    query_start: torch.Tensor,
    context_lens: torch.Tensor,
    *,
    scale: float,
    block_size: int,
    max_query_len: int,
    kv_scales: torch.Tensor | None = None,
    out: torch.Tensor | None = None,
) -> torch.Tensor:
    """The same attention, one sequence at a time in float32."""
    if out is None:
        out = torch.empty_like(q)
    group = q.shape[1] // kv_cache.shape[2]
    starts = query_start.tolist()
    for p, context in enumerate(context_lens.tolist()):
        first, last = starts[p], starts[p + 1]
        pos = torch.arange(context, device=q.device)
        slots = block_tables[p, pos // block_size].long() * block_size + pos % block_size
        keys, values = (_dequantized(kv_cache, kv_scales, slots, i) for i in (0, 1))
        keys = keys.repeat_interleave(group, dim=1)  # [ctx, heads, dim]
        values = values.repeat_interleave(group, dim=1)
        scores = torch.einsum("qhd,khd->hqk", q[first:last].float(), keys) * scale
        q_pos = torch.arange(context - (last - first), context, device=q.device)
        scores = scores.masked_fill(pos[None, None, :] > q_pos[None, :, None], float("-inf"))
        o = torch.einsum("hqk,khd->qhd", scores.softmax(-1), values)
        out[first:last] = o.to(q.dtype)
    return out


def _dequantized(
    kv_cache: torch.Tensor, kv_scales: torch.Tensor | None, slots: torch.Tensor, kv: int
) -> torch.Tensor:
    """K (kv=0) or V (kv=1) rows of slots in float32: [slots, kv_heads, head_dim]."""
    rows = kv_cache[slots, kv].float()
    return rows if kv_scales is None else rows * kv_scales[slots, kv][..., None]
