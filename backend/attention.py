"""Attention over the paged KV cache: the one interface the model calls, and its PyTorch version.

A step's tokens are flattened: single-token decodes first, then prefill chunks. The Triton
kernels (GPU) implement the same `PagedAttention.forward` signature.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from backend.kv_cache import dequantize_kv, quantize_kv


@dataclass(slots=True)
class PrefillSpan:
    """One sequence's new tokens [start, end) in the flattened batch."""

    start: int
    end: int
    # Slots of the whole context (cached prefix + the new tokens), or None when the new
    # tokens are the whole context and attention can read them directly.
    context_slots: torch.Tensor | None = None
    # [new tokens, context] additive mask (0 or -inf); None with context_slots None.
    mask: torch.Tensor | None = None


@dataclass(slots=True)
class AttentionMetadata:
    # slot_mapping: [tokens] where each new token's K/V is written.
    slot_mapping: torch.Tensor
    num_decodes: int = 0
    # decode_slots: [decodes, max_context] slots to read; decode_mask: [decodes, 1, 1, max_context]
    # additive (0 where a key is attended, -inf past the sequence's end), built once per step.
    decode_slots: torch.Tensor | None = None
    decode_mask: torch.Tensor | None = None
    # Decodes sorted by context length, as (start, end, width) groups: each group reads only
    # decode_slots[start:end, :width]. Empty: one group over everything.
    decode_groups: list[tuple[int, int, int]] = field(default_factory=list)
    prefills: list[PrefillSpan] = field(default_factory=list)
    # What the Triton kernels read instead of slots and masks (ModelOps.reads_block_tables);
    # tables are padded with block 0, lengths and starts are int32, the maxima host ints.
    # decode_block_tables: [decodes, max_blocks]; decode_context_lens: [decodes] (0: a padding
    # row, read nothing); decode_max_context: bounds every context length (under a CUDA graph,
    # the model's limit).
    block_size: int = 0
    decode_block_tables: torch.Tensor | None = None
    decode_context_lens: torch.Tensor | None = None
    decode_max_context: int = 0
    # prefill_block_tables: [prefills, max_blocks]; prefill_query_start: [prefills + 1] rows of
    # each chunk from the first prefill row; prefill_context_lens: [prefills] cached + new tokens.
    prefill_block_tables: torch.Tensor | None = None
    prefill_query_start: torch.Tensor | None = None
    prefill_context_lens: torch.Tensor | None = None
    prefill_max_query_len: int = 0


class PagedAttention:
    """q: [tokens, heads, head_dim]; k, v: [tokens, kv_heads, head_dim];
    kv_cache: [slots, 2, kv_heads, head_dim] (slot = block * block_size + offset) in q's dtype,
    or int8 with kv_scales: [slots, 2, kv_heads] float32 (see backend/kv_cache.py).

    With an int8 cache every attention reads K/V back dequantized, also a prompt's own: a token
    then sees the same keys whether its prefix came from the prefix cache or not.
    """

    def __init__(self, scale: float):
        self.scale = scale

    def forward(
        self,
        q: torch.Tensor,
        k: torch.Tensor,
        v: torch.Tensor,
        kv_cache: torch.Tensor,
        meta: AttentionMetadata,
        kv_scales: torch.Tensor | None = None,
    ) -> torch.Tensor:
        if kv_scales is None:
            kv_cache.index_copy_(0, meta.slot_mapping, torch.stack((k, v), dim=1))
        else:
            _store_int8(k, v, kv_cache, kv_scales, meta.slot_mapping)
        out = torch.empty_like(q)
        if meta.num_decodes:
            assert meta.decode_slots is not None and meta.decode_mask is not None
            groups = meta.decode_groups or [(0, meta.num_decodes, meta.decode_slots.shape[1])]
            for start, end, width in groups:
                out[start:end] = self._decode(
                    q[start:end],
                    kv_cache,
                    kv_scales,
                    meta.decode_slots[start:end, :width],
                    meta.decode_mask[start:end, :, :, :width],
                )
        for span in meta.prefills:
            out[span.start : span.end] = self._prefill(
                q, k, v, kv_cache, kv_scales, span, meta.slot_mapping
            )
        return out

    def _decode(
        self,
        q: torch.Tensor,
        kv_cache: torch.Tensor,
        kv_scales: torch.Tensor | None,
        slots: torch.Tensor,
        mask: torch.Tensor,
    ) -> torch.Tensor:
        # q: [n, heads, head_dim]; slots: [n, context]; mask: [n, 1, 1, context] additive
        ctx = _gather(kv_cache, kv_scales, slots.reshape(-1), q.dtype)
        ctx = ctx.view(*slots.shape, *kv_cache.shape[1:])
        keys = ctx[:, :, 0].transpose(1, 2)
        values = ctx[:, :, 1].transpose(1, 2)
        o = F.scaled_dot_product_attention(
            q.unsqueeze(2), keys, values, attn_mask=mask, scale=self.scale, enable_gqa=True
        )
        return o.squeeze(2)

    def _prefill(
        self,
        q: torch.Tensor,
        k: torch.Tensor,
        v: torch.Tensor,
        kv_cache: torch.Tensor,
        kv_scales: torch.Tensor | None,
        span: PrefillSpan,
        slot_mapping: torch.Tensor,
    ) -> torch.Tensor:
        rows = slice(span.start, span.end)
        mask = span.mask
        if span.context_slots is not None:
            ctx = _gather(kv_cache, kv_scales, span.context_slots, q.dtype)
            keys, values = ctx[:, 0], ctx[:, 1]
        elif kv_scales is not None:
            # The prompt's own K/V as the int8 cache holds them: see the class docstring.
            ctx = _gather(kv_cache, kv_scales, slot_mapping[rows], q.dtype)
            keys, values = ctx[:, 0], ctx[:, 1]
        else:
            keys, values = k[rows], v[rows]
        o = F.scaled_dot_product_attention(
            q[rows].transpose(0, 1),
            keys.transpose(0, 1),
            values.transpose(0, 1),
            attn_mask=mask,
            is_causal=mask is None,
            scale=self.scale,
            enable_gqa=True,
        )
        return o.transpose(0, 1)


def _gather(
    kv_cache: torch.Tensor, kv_scales: torch.Tensor | None, slots: torch.Tensor, dtype: torch.dtype
) -> torch.Tensor:
    """K/V rows of slots [n] in dtype: [n, 2, kv_heads, head_dim]; int8 rows dequantized."""
    # Whole rows (K and V of one slot) through index_select: a memcpy per slot.
    rows = _rows(kv_cache, slots)
    if kv_scales is None:
        return rows
    # Only the rows read are widened, never the whole pool.
    return dequantize_kv(rows, _rows(kv_scales, slots), dtype)


def _rows(table: torch.Tensor, slots: torch.Tensor) -> torch.Tensor:
    return table.view(table.shape[0], -1).index_select(0, slots).view(-1, *table.shape[1:])


def _store_int8(
    k: torch.Tensor,
    v: torch.Tensor,
    kv_cache: torch.Tensor,
    kv_scales: torch.Tensor,
    slot_mapping: torch.Tensor,
) -> None:
    """Quantize k and v per token and head into their slots, scales beside them."""
    if kv_cache.is_cuda:
        # One Triton launch quantizes and scatters; imported here so the CPU never needs Triton.
        from backend.kernels.kv_store import store_kv

        store_kv(k, v, kv_cache, slot_mapping, kv_scales)
        return
    values, scales = quantize_kv(torch.stack((k, v), dim=1))
    kv_cache.index_copy_(0, slot_mapping, values)
    kv_scales.index_copy_(0, slot_mapping, scales)
