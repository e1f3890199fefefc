"""Paged decode attention's achieved bandwidth: the Triton kernel against the PyTorch path."""

from __future__ import annotations

import torch

from backend.attention import AttentionMetadata, PagedAttention
from kernelbench.timing import graph_ms, time_ms


def decode_attention(
    device: torch.device, dtype: torch.dtype, batch: int, context: int, heads: int,
    kv_heads: int, head_dim: int, repeats: int, block_size: int = 16,
) -> dict[str, object]:  # fmt: skip
    from backend.kernels.paged_decode import paged_decode_attention

    blocks_per_seq = -(-context // block_size)
    num_blocks = batch * blocks_per_seq
    cache = torch.randn(num_blocks * block_size, 2, kv_heads, head_dim, device=device).to(dtype)
    tables = torch.randperm(num_blocks, device=device).view(batch, blocks_per_seq).int()
    lens = torch.full((batch,), context, dtype=torch.int32, device=device)
    q = torch.randn(batch, heads, head_dim, device=device).to(dtype)
    opts = {"scale": head_dim**-0.5, "block_size": block_size, "max_context_len": context}
    triton_ms = time_ms(
        lambda: paged_decode_attention(q, cache, tables, lens, **opts), device, repeats
    )
    # The PyTorch path the CPU engine runs, on the same cache.
    slots = tables.long().unsqueeze(-1) * block_size + torch.arange(block_size, device=device)
    meta = AttentionMetadata(
        slot_mapping=torch.empty(0, dtype=torch.long, device=device), num_decodes=batch,
        decode_slots=slots.flatten(1)[:, :context],
        decode_mask=torch.zeros(batch, 1, 1, context, dtype=dtype, device=device),
    )  # fmt: skip
    empty = torch.empty(0, kv_heads, head_dim, dtype=dtype, device=device)
    torch_ms = time_ms(
        lambda: PagedAttention(head_dim**-0.5).forward(q, empty, empty, cache, meta),
        device,
        repeats,
    )
    kv_bytes = batch * context * 2 * kv_heads * head_dim * cache.element_size()
    row = {
        "batch": batch, "context": context, "heads": heads, "kv_heads": kv_heads,
        "head_dim": head_dim, "dtype": str(dtype), "kv_mb": kv_bytes / 1e6,
        "triton_ms": triton_ms, "torch_ms": torch_ms,
        "triton_gbs": kv_bytes / triton_ms / 1e6, "torch_gbs": kv_bytes / torch_ms / 1e6,
    }  # fmt: skip
    if device.type == "cuda":
        # K/V that fit in L2 are read from it on repeated calls: only larger ones measure HBM.
        row["fits_l2"] = kv_bytes <= torch.cuda.get_device_properties(device).L2_cache_size
        for name, fn in (
            ("triton", lambda: paged_decode_attention(q, cache, tables, lens, **opts)),
            ("torch", lambda: PagedAttention(head_dim**-0.5).forward(q, empty, empty, cache, meta)),
        ):
            ms = graph_ms(fn, device, repeats)
            row[f"{name}_graph_ms"] = ms
            row[f"{name}_graph_gbs"] = kv_bytes / ms / 1e6 if ms else None
    return row
