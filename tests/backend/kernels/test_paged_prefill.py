"""Varlen prefill attention over paged K/V against its reference: cached prefix, causal new part."""

from __future__ import annotations

import pytest
import torch

from tests.backend.kernels.checks import assert_close, block_tables, poisoned, random

pytest.importorskip("triton")

from backend.kernels.kv_store import quantize_kv_ref
from backend.kernels.paged_prefill import (
    paged_prefill_attention,
    paged_prefill_attention_ref,
)

# (head_dim, heads, kv_heads, block_size, [(cached prefix, new tokens)], dtype)
CASES = [
    (64, 2, 2, 16, [(0, 20), (17, 15)], torch.float32),
    (128, 6, 2, 32, [(0, 1), (40, 33), (31, 2)], torch.float16),
    (64, 8, 1, 16, [(999, 1), (0, 40)], torch.float32),
    (128, 3, 3, 32, [(64, 64)], torch.float16),
    (64, 6, 2, 16, [(5, 70), (0, 3)], torch.float32),
]


def _case_id(case: tuple) -> str:
    head_dim, heads, kv_heads, block_size, seqs, dtype = case
    longest = max(p + n for p, n in seqs)
    name = str(dtype).removeprefix("torch.")
    return f"d{head_dim}-gqa{heads // kv_heads}-bs{block_size}-ctx{longest}-{name}"


@pytest.mark.parametrize(
    ("head_dim", "heads", "kv_heads", "block_size", "seqs", "dtype"),
    CASES,
    ids=[_case_id(c) for c in CASES],
)
def test_prefill_matches_reference(
    device: torch.device,
    head_dim: int,
    heads: int,
    kv_heads: int,
    block_size: int,
    seqs: list[tuple[int, int]],
    dtype: torch.dtype,
) -> None:
    gen = torch.Generator().manual_seed(head_dim + heads + len(seqs))
    lens = [prefix + new for prefix, new in seqs]
    tables, num_blocks = block_tables(lens, block_size, gen, device)
    cache = random((num_blocks * block_size, 2, kv_heads, head_dim), dtype, device, gen)
    starts = [0]
    for _, new in seqs:
        starts.append(starts[-1] + new)
    q = random((starts[-1], heads, head_dim), dtype, device, gen)
    query_start = torch.tensor(starts, dtype=torch.int32, device=device)
    context_lens = torch.tensor(lens, dtype=torch.int32, device=device)
    args = (q, cache, tables, query_start, context_lens)
    longest = max(new for _, new in seqs)
    opts = {"scale": head_dim**-0.5, "block_size": block_size, "max_query_len": longest}
    out = poisoned(tuple(q.shape), dtype, device)
    paged_prefill_attention(*args, **opts, out=out)
    assert_close(out, paged_prefill_attention_ref(*args, **opts))


def test_prefill_reads_an_int8_cache(device: torch.device) -> None:
    gen = torch.Generator().manual_seed(12)
    dtype, block_size, kv_heads, head_dim = torch.float16, 32, 1, 128
    seqs = [(40, 9), (0, 35)]
    lens = [prefix + new for prefix, new in seqs]
    tables, num_blocks = block_tables(lens, block_size, gen, device)
    floats = random((num_blocks * block_size, 2, kv_heads, head_dim), torch.float32, device, gen)
    cache, scales = quantize_kv_ref(floats)
    q = random((44, 3, head_dim), dtype, device, gen)
    query_start = torch.tensor([0, 9, 44], dtype=torch.int32, device=device)
    context_lens = torch.tensor(lens, dtype=torch.int32, device=device)
    args = (q, cache, tables, query_start, context_lens)
    opts = {"scale": head_dim**-0.5, "block_size": block_size, "max_query_len": 35}
    out = poisoned(tuple(q.shape), dtype, device)
    paged_prefill_attention(*args, **opts, kv_scales=scales, out=out)
    assert_close(out, paged_prefill_attention_ref(*args, **opts, kv_scales=scales))
