"""Int8 weight-only linear: x @ (weight * scale).T + bias, the int8 weight widened tile by tile.

Per-output-channel scales, applied once to the float32 accumulator; activations stay in their dtype.
The tile sizes follow the shape (choose_blocks); with few output tiles the reduction is split
across programs (split-K) and a second pass sums their float32 partials.
"""

# x: [tokens, in_features]; weight: [out_features, in_features] int8; scale: [out_features];
# bias: [out_features] or None; returns [tokens, out_features] in x's dtype.

from __future__ import annotations

from functools import cache
from typing import NamedTuple

import torch
import torch.nn.functional as F
import triton
import triton.language as tl


class Blocks(NamedTuple):
    """One launch configuration: tile sizes (powers of two, each at least 16), warps, stages,
    and split: programs sharing one output tile's reduction (split-K, for few output tiles),
    each writing a float32 partial that a second pass sums."""

    m: int
    n: int
    k: int
    warps: int = 4
    stages: int = 3
    split: int = 1


# What bench/kernels.py sweeps on a GPU (and the tests check); choose_blocks picks among them.
CANDIDATES = (
    Blocks(16, 64, 64),
    Blocks(16, 32, 128, 4, 4),
    Blocks(16, 32, 256, 4, 3),
    Blocks(16, 64, 128, 4, 4),
    Blocks(16, 64, 256, 8, 3),
    Blocks(16, 16, 512, 4, 3),
    Blocks(32, 64, 128, 4, 4),
    Blocks(64, 64, 64, 4, 4),
    Blocks(128, 128, 64, 8, 3),
    Blocks(16, 32, 256, 4, 3, 2),
    Blocks(16, 32, 256, 4, 3, 4),
    Blocks(16, 64, 256, 4, 3, 4),
    Blocks(16, 32, 128, 4, 4, 8),
    Blocks(16, 64, 128, 4, 4, 8),
)


# Chosen from bench/kernels.py's sweep on an H200 (bench/results/int8-linear-nvidia-h200.json):
# up to 64 tokens, narrow tall tiles read the weight fastest; above, square tiles.
FEW_TOKENS = 64
FEW_TOKENS_BLOCKS = Blocks(16, 32, 256, 4, 3)
MANY_TOKENS_BLOCKS = Blocks(64, 64, 64, 4, 4)
# Split-K only while the tiles leave multiprocessors idle, and each split keeps this much K.
MAX_SPLIT = 8
MIN_SPLIT_K = 2048
# Elements per program of the split-K sum.
SUM_BLOCK = 1024


def choose_blocks(tokens: int, n: int, k: int, multiprocessors: int) -> Blocks:
    """The launch configuration for a [tokens, k] x [k, n] product on a device with that many
    streaming multiprocessors (1 for the interpreter)."""
    if tokens > FEW_TOKENS:
        return MANY_TOKENS_BLOCKS
    blocks = FEW_TOKENS_BLOCKS
    tiles = triton.cdiv(tokens, blocks.m) * triton.cdiv(n, blocks.n)
    split = 1
    while split < MAX_SPLIT and tiles * split < multiprocessors and k // (2 * split) >= MIN_SPLIT_K:
        split *= 2
    return blocks._replace(split=split)


@cache
def multiprocessors(device: torch.device) -> int:
    if device.type != "cuda":
        return 1
    return torch.cuda.get_device_properties(device).multi_processor_count


@triton.jit
def _int8_matmul_kernel(
    x_ptr, w_ptr, scale_ptr, bias_ptr, out_ptr,
    M, N, K,
    stride_xm, stride_wn, stride_om,
    k_per_split,
    HAS_BIAS: tl.constexpr,
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr,
    SPLIT: tl.constexpr, PRECISION: tl.constexpr,
):  # fmt: skip
    rows = tl.program_id(0) * BLOCK_M + tl.arange(0, BLOCK_M)
    cols = tl.program_id(1) * BLOCK_N + tl.arange(0, BLOCK_N)
    split = tl.program_id(2)
    r_ok = rows < M
    c_ok = cols < N
    k_end = tl.minimum((split + 1) * k_per_split, K)
    acc = tl.zeros([BLOCK_M, BLOCK_N], tl.float32)
    for k0 in range(split * k_per_split, k_end, BLOCK_K):
        kk = k0 + tl.arange(0, BLOCK_K)
        k_ok = kk < k_end
        a = tl.load(
            x_ptr + rows[:, None].to(tl.int64) * stride_xm + kk[None, :],
            mask=r_ok[:, None] & k_ok[None, :],
            other=0.0,
        )
        # [BLOCK_K, BLOCK_N] tile of weight.T
        w = tl.load(
            w_ptr + cols[None, :].to(tl.int64) * stride_wn + kk[:, None],
            mask=c_ok[None, :] & k_ok[:, None],
            other=0,
        )
        acc += tl.dot(a, w.to(a.dtype), input_precision=PRECISION)
    ok = r_ok[:, None] & c_ok[None, :]
    if SPLIT > 1:  # out_ptr is the float32 partials [SPLIT, M, N]; _split_sum_kernel finishes
        part = out_ptr + (split * M + rows[:, None]).to(tl.int64) * N + cols[None, :]
        tl.store(part, acc, mask=ok)
    else:
        acc *= tl.load(scale_ptr + cols, mask=c_ok, other=0.0).to(tl.float32)[None, :]
        if HAS_BIAS:
            acc += tl.load(bias_ptr + cols, mask=c_ok, other=0.0).to(tl.float32)[None, :]
        out = out_ptr + rows[:, None].to(tl.int64) * stride_om + cols[None, :]
        tl.store(out, acc.to(out_ptr.dtype.element_ty), mask=ok)


@triton.jit
def _split_sum_kernel(
    part_ptr, scale_ptr, bias_ptr, out_ptr, M, N,
    HAS_BIAS: tl.constexpr, SPLIT: tl.constexpr, BLOCK: tl.constexpr,
):  # fmt: skip
    offs = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    ok = offs < M * N
    cols = offs % N
    acc = tl.zeros([BLOCK], tl.float32)
    for s in tl.static_range(SPLIT):
        acc += tl.load(part_ptr + s * M * N + offs, mask=ok, other=0.0)
    acc *= tl.load(scale_ptr + cols, mask=ok, other=0.0).to(tl.float32)
    if HAS_BIAS:
        acc += tl.load(bias_ptr + cols, mask=ok, other=0.0).to(tl.float32)
    tl.store(out_ptr + offs, acc.to(out_ptr.dtype.element_ty), mask=ok)


def int8_linear(
    x: torch.Tensor,
    weight: torch.Tensor,
    scale: torch.Tensor,
    bias: torch.Tensor | None = None,
    *,
    out: torch.Tensor | None = None,
    blocks: Blocks | None = None,
) -> torch.Tensor:
    """x @ (weight * scale[:, None]).T + bias over x's last dimension; into `out` when given.

    blocks: the launch configuration (default: choose_blocks for the shape and device).
    """
    lead = x.shape[:-1]
    x2 = x.reshape(-1, x.shape[-1])
    if x2.stride(1) != 1:
        x2 = x2.contiguous()
    m, k = x2.shape
    n = weight.shape[0]
    assert weight.dtype == torch.int8 and weight.shape[1] == k and weight.stride(1) == 1
    if out is None:
        out = torch.empty(*lead, n, dtype=x.dtype, device=x.device)
    assert out.is_contiguous()
    if m:
        b = blocks or choose_blocks(m, n, k, multiprocessors(x.device))
        bias_or_any = scale if bias is None else bias
        k_per_split = triton.cdiv(triton.cdiv(k, b.split), b.k) * b.k
        # The sum pass indexes the partials in int32 (choose_blocks splits up to 64 tokens only).
        assert b.split == 1 or b.split * m * n < 2**31, "too many partials for split-K"
        part = out if b.split == 1 else torch.empty(b.split, m, n, device=x.device)
        grid = (triton.cdiv(m, b.m), triton.cdiv(n, b.n), b.split)
        _int8_matmul_kernel[grid](
            x2, weight, scale, bias_or_any, part,
            m, n, k,
            x2.stride(0), weight.stride(0), n,
            k_per_split,
            HAS_BIAS=bias is not None,
            BLOCK_M=b.m, BLOCK_N=b.n, BLOCK_K=b.k,
            SPLIT=b.split, PRECISION="ieee" if x.dtype == torch.float32 else "tf32",
            num_warps=b.warps, num_stages=b.stages,
        )  # fmt: skip
        if b.split > 1:
            _split_sum_kernel[(triton.cdiv(m * n, SUM_BLOCK),)](
                part, scale, bias_or_any, out, m, n,
                HAS_BIAS=bias is not None, SPLIT=b.split, BLOCK=SUM_BLOCK,
            )  # fmt: skip
    return out


def int8_linear_ref(
    x: torch.Tensor,
    weight: torch.Tensor,
    scale: torch.Tensor,
    bias: torch.Tensor | None = None,
    *,
    out: torch.Tensor | None = None,
) -> torch.Tensor:
    """The same product with the weight dequantized in float32 first."""
    dequantized = weight.float() * scale.float()[:, None]
    b = None if bias is None else bias.float()
    y = F.linear(x.float(), dequantized, b).to(x.dtype)
    return y if out is None else out.copy_(y)
