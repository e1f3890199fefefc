"""Attention over the paged KV cache: the one interface the model calls, and its PyTorch version.

A step's tokens are flattened: single-token decodes first, then prefill chunks. The Triton
kernels (GPU) implement the same `PagedAttention.forward` signature.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F


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


class PagedAttention:
    """q: [tokens, heads, head_dim]; k, v: [tokens, kv_heads, head_dim];
    kv_cache: [slots, 2, kv_heads, head_dim] (slot = block * block_size + offset)."""

    def __init__(self, scale: float):
        self.scale = scale

    def forward(
        self,
        q: torch.Tensor,
        k: torch.Tensor,
        v: torch.Tensor,
        kv_cache: torch.Tensor,
        meta: AttentionMetadata,
    ) -> torch.Tensor:
        kv_cache.index_copy_(0, meta.slot_mapping, torch.stack((k, v), dim=1))
        out = torch.empty_like(q)
        if meta.num_decodes:
            assert meta.decode_slots is not None and meta.decode_mask is not None
            groups = meta.decode_groups or [(0, meta.num_decodes, meta.decode_slots.shape[1])]
            for start, end, width in groups:
                out[start:end] = self._decode(
                    q[start:end],
                    kv_cache,
                    meta.decode_slots[start:end, :width],
                    meta.decode_mask[start:end, :, :, :width],
                )
        for span in meta.prefills:
            out[span.start : span.end] = self._prefill(q, k, v, kv_cache, span)
        return out

    def _decode(
        self, q: torch.Tensor, kv_cache: torch.Tensor, slots: torch.Tensor, mask: torch.Tensor
    ) -> torch.Tensor:
        # q: [n, heads, head_dim]; slots: [n, context]; mask: [n, 1, 1, context] additive
        # Whole rows (K and V of one slot) through index_select: a memcpy per slot.
        ctx = _gather(kv_cache, slots.reshape(-1)).view(*slots.shape, *kv_cache.shape[1:])
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
        span: PrefillSpan,
    ) -> torch.Tensor:
        qs = q[span.start : span.end].transpose(0, 1)
        if span.context_slots is None:
            keys = k[span.start : span.end].transpose(0, 1)
            values = v[span.start : span.end].transpose(0, 1)
            o = F.scaled_dot_product_attention(
                qs, keys, values, is_causal=True, scale=self.scale, enable_gqa=True
            )
        else:
            ctx = _gather(kv_cache, span.context_slots)
            keys = ctx[:, 0].transpose(0, 1)
            values = ctx[:, 1].transpose(0, 1)
            o = F.scaled_dot_product_attention(
                qs, keys, values, attn_mask=span.mask, scale=self.scale, enable_gqa=True
            )
        return o.transpose(0, 1)


def _gather(kv_cache: torch.Tensor, slots: torch.Tensor) -> torch.Tensor:
    # kv_cache: [slots, 2, kv_heads, head_dim], slots: [n] -> [n, 2, kv_heads, head_dim]
    rows = kv_cache.view(kv_cache.shape[0], -1).index_select(0, slots)
    return rows.view(slots.shape[0], *kv_cache.shape[1:])
