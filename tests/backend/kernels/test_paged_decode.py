"""Paged decode attention (split-K) against its reference: head dims, GQA, block sizes, lengths."""

from __future__ import annotations

import pytest
import torch

from tests.backend.kernels.checks import assert_close, block_tables, poisoned, random

pytest.importorskip("triton")

from backend.kernels.kv_store import quantize_kv_ref
from backend.kernels.paged_decode import (
    paged_decode_attention,
    paged_decode_attention_ref,
)

# (head_dim, heads, kv_heads, block_size, context lens, dtype, splits); GQA = heads / kv_heads.
CASES = [
    (64, 2, 2, 16, [1, 17, 33], torch.float32, 1),
    (128, 6, 2, 32, [31, 32, 65], torch.float16, None),
    (64, 8, 1, 16, [1, 1000], torch.float32, None),
    (128, 8, 1, 32, [1000, 1], torch.float16, 3),
    (64, 6, 2, 32, [129, 64, 200], torch.float32, 2),
    (128, 3, 3, 16, [300], torch.float32, 5),
]


def _case_id(case: tuple) -> str:
    head_dim, heads, kv_heads, block_size, lens, dtype, splits = case
    name = str(dtype).removeprefix("torch.")
    return f"d{head_dim}-gqa{heads // kv_heads}-bs{block_size}-len{max(lens)}-{name}-s{splits}"


@pytest.mark.parametrize(
    ("head_dim", "heads", "kv_heads", "block_size", "lens", "dtype", "splits"),
    CASES,
    ids=[_case_id(c) for c in CASES],
)
def test_decode_matches_reference(
    device: torch.device,
    head_dim: int,
    heads: int,
    kv_heads: int,
    block_size: int,
    lens: list[int],
    dtype: torch.dtype,
    splits: int | None,
) -> None:
    gen = torch.Generator().manual_seed(sum(lens) + head_dim + heads)
    tables, num_blocks = block_tables(lens, block_size, gen, device)
    cache = random((num_blocks * block_size, 2, kv_heads, head_dim), dtype, device, gen)
    q = random((len(lens), heads, head_dim), dtype, device, gen)
    context_lens = torch.tensor(lens, dtype=torch.int32, device=device)
    args = (q, cache, tables, context_lens)
    opts = {"scale": head_dim**-0.5, "block_size": block_size, "max_context_len": max(lens)}
    out = poisoned(tuple(q.shape), dtype, device)
    paged_decode_attention(*args, **opts, num_splits=splits, out=out)
    assert_close(out, paged_decode_attention_ref(*args, **opts))


def test_decode_writes_rows_of_a_larger_output_and_zeros_for_empty_contexts(
    device: torch.device,
) -> None:
    gen = torch.Generator().manual_seed(7)
    lens = [0, 40, 5]
    tables, num_blocks = block_tables(lens, 16, gen, device)
    cache = random((num_blocks * 16, 2, 2, 64), torch.float32, device, gen)
    q = random((3, 4, 64), torch.float32, device, gen)
    context_lens = torch.tensor(lens, dtype=torch.int32, device=device)
    out = poisoned((5, 4, 64), torch.float32, device)
    opts = {"scale": 0.125, "block_size": 16, "max_context_len": 40}
    paged_decode_attention(q, cache, tables, context_lens, **opts, out=out[1:4])
    expected = paged_decode_attention_ref(q, cache, tables, context_lens, **opts)
    assert (expected[0] == 0).all()
    assert_close(out[1:4], expected)
    assert out[0].isnan().all() and out[4].isnan().all()


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16], ids=str)
def test_decode_reads_an_int8_cache(device: torch.device, dtype: torch.dtype) -> None:
    gen = torch.Generator().manual_seed(11)
    lens, block_size, kv_heads, head_dim = [1, 150, 77], 16, 2, 64
    tables, num_blocks = block_tables(lens, block_size, gen, device)
    floats = random((num_blocks * block_size, 2, kv_heads, head_dim), torch.float32, device, gen)
    cache, scales = quantize_kv_ref(floats)
    q = random((len(lens), 6, head_dim), dtype, device, gen)
    context_lens = torch.tensor(lens, dtype=torch.int32, device=device)
    args = (q, cache, tables, context_lens)
    opts = {"scale": head_dim**-0.5, "block_size": block_size, "max_context_len": max(lens)}
    out = poisoned(tuple(q.shape), dtype, device)
    paged_decode_attention(*args, **opts, num_splits=2, kv_scales=scales, out=out)
    assert_close(out, paged_decode_attention_ref(*args, **opts, kv_scales=scales))
