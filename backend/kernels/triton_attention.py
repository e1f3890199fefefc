"""TritonPagedAttention: the PagedAttention interface run by the Triton kernels on the GPU.

Reads block tables and lengths from the metadata (the runner builds them for TritonOps); without
them, derives tables of one-token blocks from the PyTorch path's slots.
"""

# q: [tokens, heads, head_dim]; k, v: [tokens, kv_heads, head_dim];
# kv_cache: [slots, 2, kv_heads, head_dim] (slot = block * block_size + offset), or int8 with
# kv_scales: [slots, 2, kv_heads] float32 (backend/kv_cache.py).

from __future__ import annotations

import torch

from backend.attention import AttentionMetadata, PagedAttention
from backend.kernels.kv_store import store_kv
from backend.kernels.paged_decode import paged_decode_attention
from backend.kernels.paged_prefill import paged_prefill_attention


class TritonPagedAttention(PagedAttention):
    """Decodes first, then prefill chunks, as in the flattened batch PagedAttention reads."""

    def forward(
        self,
        q: torch.Tensor,
        k: torch.Tensor,
        v: torch.Tensor,
        kv_cache: torch.Tensor,
        meta: AttentionMetadata,
        kv_scales: torch.Tensor | None = None,
    ) -> torch.Tensor:
        store_kv(k, v, kv_cache, meta.slot_mapping, kv_scales)
        out = torch.empty_like(q)
        b = meta.num_decodes
        if b:
            tables, lens, block_size, longest = _decode_inputs(meta)
            paged_decode_attention(
                q[:b],
                kv_cache,
                tables,
                lens,
                scale=self.scale,
                block_size=block_size,
                max_context_len=longest,
                kv_scales=kv_scales,
                out=out[:b],
            )
        if meta.prefills:
            first = meta.prefills[0].start
            tables, starts, lens, block_size, longest = _prefill_inputs(meta)
            paged_prefill_attention(
                q[first:],
                kv_cache,
                tables,
                starts,
                lens,
                scale=self.scale,
                block_size=block_size,
                max_query_len=longest,
                kv_scales=kv_scales,
                out=out[first:],
            )
        return out


def _decode_inputs(meta: AttentionMetadata) -> tuple[torch.Tensor, torch.Tensor, int, int]:
    """(block tables, context lengths, block size, longest context) for the decode rows."""
    if meta.decode_block_tables is not None:
        assert meta.decode_context_lens is not None
        return (
            meta.decode_block_tables,
            meta.decode_context_lens,
            meta.block_size,
            meta.decode_max_context,
        )
    # Without block tables, each slot is its own block of one token: the slots are the table.
    assert meta.decode_slots is not None and meta.decode_mask is not None
    slots = meta.decode_slots
    lens = (meta.decode_mask.view(slots.shape) == 0).sum(-1)
    return slots, lens, 1, slots.shape[1]


def _prefill_inputs(
    meta: AttentionMetadata,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, int, int]:
    """(block tables, query starts, context lengths, block size, most new tokens) for prefills."""
    spans = meta.prefills
    if meta.prefill_block_tables is not None:
        assert meta.prefill_query_start is not None and meta.prefill_context_lens is not None
        return (
            meta.prefill_block_tables,
            meta.prefill_query_start,
            meta.prefill_context_lens,
            meta.block_size,
            meta.prefill_max_query_len,
        )
    device = meta.slot_mapping.device
    rows, starts, lens = [], [0], []
    for span, following in zip(spans, [*spans[1:], None], strict=True):
        assert following is None or following.start == span.end, "prefill spans must be adjacent"
        slots = span.context_slots
        rows.append(meta.slot_mapping[span.start : span.end] if slots is None else slots)
        starts.append(starts[-1] + span.end - span.start)
        lens.append(rows[-1].shape[0])
    table = torch.nn.utils.rnn.pad_sequence(rows, batch_first=True)
    longest = max(span.end - span.start for span in spans)
    return table, _ints(starts, device), _ints(lens, device), 1, longest


def _ints(values: list[int], device: torch.device) -> torch.Tensor:
    return torch.tensor(values, dtype=torch.int32, device=device)
