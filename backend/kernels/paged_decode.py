"""Paged decode attention: one query token per sequence against K/V read through block tables.

Flash-decoding: a context is split across programs (split-K) and a second pass merges the parts.
"""

# q: [batch, heads, head_dim]; kv_cache: [slots, 2, kv_heads, head_dim], slot = block * block_size
# + offset (float, or int8 with kv_scales: [slots, 2, kv_heads] float32, see kv_store);
# block_tables: [batch, max_blocks] int; context_lens: [batch] int; out: like q.
# Split pass: partial [batch, heads, splits, head_dim] fp32; row max, sum [batch, heads, splits].

from __future__ import annotations

import torch
import triton
import triton.language as tl

# Keys per inner iteration; any block size divides or is divided by it (both are powers of two).
BLOCK_N = 64
# Below this many keys per split, another split costs more in the merge than it saves.
MIN_SPLIT_TOKENS = 256


@triton.jit
def _split_kernel(
    q_ptr, cache_ptr, scales_ptr, tables_ptr, lens_ptr, part_ptr, max_ptr, sum_ptr,
    scale_log2e,
    stride_qb, stride_qh,
    stride_cs, stride_ckv, stride_ch,
    stride_ss, stride_skv,
    stride_tb,
    split_len,
    num_splits,
    GROUP: tl.constexpr, GROUP_PAD: tl.constexpr,
    HEAD_DIM: tl.constexpr, DIM_PAD: tl.constexpr,
    BLOCK_SIZE: tl.constexpr, BLOCK_N: tl.constexpr,
    PRECISION: tl.constexpr, QUANTIZED: tl.constexpr,
):  # fmt: skip
    b = tl.program_id(0)
    kv_head = tl.program_id(1)
    split = tl.program_id(2)
    context = tl.load(lens_ptr + b)
    start = split * split_len
    end = tl.minimum(start + split_len, context)

    # All query heads sharing this KV head form the rows of one tile (GQA: K/V read once).
    g = tl.arange(0, GROUP_PAD)
    d = tl.arange(0, DIM_PAD)
    heads = kv_head * GROUP + g
    d_ok = d < HEAD_DIM
    q_ok = (g < GROUP)[:, None] & d_ok[None, :]
    q = tl.load(
        q_ptr + b * stride_qb + heads[:, None] * stride_qh + d[None, :], mask=q_ok, other=0.0
    )

    row_max = tl.full([GROUP_PAD], float("-inf"), tl.float32)
    row_sum = tl.zeros([GROUP_PAD], tl.float32)
    acc = tl.zeros([GROUP_PAD, DIM_PAD], tl.float32)
    for n0 in range(start, end, BLOCK_N):
        pos = n0 + tl.arange(0, BLOCK_N)
        valid = pos < end
        block = tl.load(tables_ptr + b * stride_tb + pos // BLOCK_SIZE, mask=valid, other=0)
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
        scores = tl.where(valid[None, :], scores, float("-inf"))
        # Every tile holds at least one valid key, so the new max is finite.
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

    # Splits past a sequence's end store max -inf and sum 0: the merge gives them no weight.
    stats = (b * tl.num_programs(1) * GROUP + heads) * num_splits + split
    g_ok = g < GROUP
    tl.store(max_ptr + stats, row_max, mask=g_ok)
    tl.store(sum_ptr + stats, row_sum, mask=g_ok)
    tl.store(part_ptr + stats[:, None] * HEAD_DIM + d[None, :], acc, mask=q_ok)


@triton.jit
def _merge_kernel(
    part_ptr, max_ptr, sum_ptr, out_ptr,
    stride_ob, stride_oh,
    num_splits,
    HEAD_DIM: tl.constexpr, DIM_PAD: tl.constexpr, SPLITS_PAD: tl.constexpr,
):  # fmt: skip
    b = tl.program_id(0)
    h = tl.program_id(1)
    s = tl.arange(0, SPLITS_PAD)
    d = tl.arange(0, DIM_PAD)
    s_ok = s < num_splits
    row = (b * tl.num_programs(1) + h) * num_splits + s
    maxes = tl.load(max_ptr + row, mask=s_ok, other=float("-inf"))
    top = tl.max(maxes, 0)
    # A zero-length context (a padded batch row) has no finite max: it yields zeros, not NaN.
    top = tl.where(top == float("-inf"), 0.0, top)
    weights = tl.exp2(maxes - top)
    total = tl.sum(tl.load(sum_ptr + row, mask=s_ok, other=0.0) * weights, 0)
    part_ok = s_ok[:, None] & (d < HEAD_DIM)[None, :]
    parts = tl.load(part_ptr + row[:, None] * HEAD_DIM + d[None, :], mask=part_ok, other=0.0)
    o = tl.sum(parts * weights[:, None], 0) / tl.where(total > 0, total, 1.0)
    out = out_ptr + b * stride_ob + h * stride_oh + d
    tl.store(out, o.to(out_ptr.dtype.element_ty), mask=d < HEAD_DIM)


def choose_splits(batch: int, kv_heads: int, max_context_len: int, device: torch.device) -> int:
    """Enough splits to give every streaming multiprocessor about two programs, none too short."""
    programs = 2 * (
        torch.cuda.get_device_properties(device).multi_processor_count
        if device.type == "cuda"
        else 1
    )
    wanted = triton.cdiv(programs, batch * kv_heads)
    return max(1, min(wanted, triton.cdiv(max_context_len, MIN_SPLIT_TOKENS)))


def paged_decode_attention(
    q: torch.Tensor,
    kv_cache: torch.Tensor,
    block_tables: torch.Tensor,
    context_lens: torch.Tensor,
    *,
    scale: float,
    block_size: int,
    max_context_len: int,
    num_splits: int | None = None,
    kv_scales: torch.Tensor | None = None,
    out: torch.Tensor | None = None,
) -> torch.Tensor:
    """Attention output [batch, heads, head_dim]; written into `out` when given.

    max_context_len bounds context_lens (a host int, so no device sync; under a CUDA graph pass
    the model's limit). A context length of 0 gives a zero row.
    """
    batch, heads, head_dim = q.shape
    kv_heads = kv_cache.shape[2]
    assert q.stride(2) == 1 and kv_cache.stride(3) == 1, "head_dim must be contiguous"
    assert block_size & (block_size - 1) == 0, "block_size must be a power of two"
    quantized = kv_cache.dtype == torch.int8
    assert not quantized or (kv_scales is not None and kv_scales.stride(2) == 1)
    scales = kv_scales if quantized else kv_cache
    if out is None:
        out = torch.empty_like(q)
    if batch == 0:
        return out
    group = heads // kv_heads
    splits = num_splits or choose_splits(batch, kv_heads, max_context_len, q.device)
    splits = max(1, min(splits, triton.cdiv(max(max_context_len, 1), BLOCK_N)))
    split_len = triton.cdiv(triton.cdiv(max(max_context_len, 1), splits), BLOCK_N) * BLOCK_N
    partial = torch.empty(batch, heads, splits, head_dim, dtype=torch.float32, device=q.device)
    maxes = torch.empty(batch, heads, splits, dtype=torch.float32, device=q.device)
    sums = torch.empty_like(maxes)
    dim_pad = max(16, triton.next_power_of_2(head_dim))
    _split_kernel[(batch, kv_heads, splits)](
        q, kv_cache, scales, block_tables, context_lens, partial, maxes, sums,
        scale * 1.4426950408889634,
        q.stride(0), q.stride(1),
        kv_cache.stride(0), kv_cache.stride(1), kv_cache.stride(2),
        scales.stride(0), scales.stride(1),
        block_tables.stride(0),
        split_len,
        splits,
        GROUP=group, GROUP_PAD=max(16, triton.next_power_of_2(group)),
        HEAD_DIM=head_dim, DIM_PAD=dim_pad,
        BLOCK_SIZE=block_size, BLOCK_N=BLOCK_N,
        PRECISION="ieee" if q.dtype == torch.float32 else "tf32", QUANTIZED=quantized,
    )  # fmt: skip
    _merge_kernel[(batch, heads)](
        partial, maxes, sums, out,
        out.stride(0), out.stride(1),
        splits,
        HEAD_DIM=head_dim, DIM_PAD=dim_pad, SPLITS_PAD=triton.next_power_of_2(splits),
    )  # fmt: skip
    return out


def paged_decode_attention_ref(
    q: torch.Tensor,
    kv_cache: torch.Tensor,
    block_tables: torch.Tensor,
    context_lens: torch.Tensor,
    *,
    scale: float,
    block_size: int,
    max_context_len: int,
    num_splits: int | None = None,
    kv_scales: torch.Tensor | None = None,
    out: torch.Tensor | None = None,
) -> torch.Tensor:
    """The same attention, one sequence at a time in float32 (num_splits is ignored)."""
    if out is None:
        out = torch.empty_like(q)
    group = q.shape[1] // kv_cache.shape[2]
    for b, context in enumerate(context_lens.tolist()):
        if context == 0:
            out[b] = 0
            continue
        pos = torch.arange(context, device=q.device)
        slots = block_tables[b, pos // block_size].long() * block_size + pos % block_size
        keys, values = (_dequantized(kv_cache, kv_scales, slots, i) for i in (0, 1))
        keys = keys.repeat_interleave(group, dim=1)  # [ctx, heads, dim]
        values = values.repeat_interleave(group, dim=1)
        scores = torch.einsum("hd,thd->ht", q[b].float(), keys) * scale
        out[b] = torch.einsum("ht,thd->hd", scores.softmax(-1), values).to(q.dtype)
    return out


def _dequantized(
    kv_cache: torch.Tensor, kv_scales: torch.Tensor | None, slots: torch.Tensor, kv: int
) -> torch.Tensor:
    """K (kv=0) or V (kv=1) rows of slots in float32: [slots, kv_heads, head_dim]."""
    rows = kv_cache[slots, kv].float()
    return rows if kv_scales is None else rows * kv_scales[slots, kv][..., None]
