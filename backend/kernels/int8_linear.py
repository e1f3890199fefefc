"""Int8 weight-only linear: x @ (weight * scale).T + bias, the int8 weight widened tile by tile.

Per-output-channel scales, applied once to the float32 accumulator; activations stay in their dtype.
"""

# x: [tokens, in_features]; weight: [out_features, in_features] int8; scale: [out_features];
# bias: [out_features] or None; returns [tokens, out_features] in x's dtype.

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
import triton
import triton.language as tl


class Blocks(NamedTuple):
    """One launch configuration: tile sizes (powers of two, each at least 16), warps, stages."""

    m: int
    n: int
    k: int
    warps: int = 4
    stages: int = 3


# What bench/kernels.py sweeps on a GPU; choose_blocks picks among them by the token count.
CANDIDATES = (
    Blocks(16, 64, 64),
    Blocks(16, 32, 128, 4, 4),
    Blocks(16, 32, 256, 4, 3),
    Blocks(16, 64, 128, 4, 4),
    Blocks(16, 64, 256, 8, 3),
    Blocks(16, 128, 128, 4, 4),
    Blocks(16, 16, 512, 4, 3),
    Blocks(32, 64, 128, 4, 4),
    Blocks(64, 64, 64, 4, 4),
    Blocks(64, 128, 64, 8, 3),
    Blocks(128, 128, 64, 8, 3),
)


def choose_blocks(tokens: int) -> Blocks:
    """The launch configuration for a product over `tokens` rows."""
    return CANDIDATES[0]


@triton.jit
def _int8_matmul_kernel(
    x_ptr, w_ptr, scale_ptr, bias_ptr, out_ptr,
    M, N, K,
    stride_xm, stride_wn, stride_om,
    HAS_BIAS: tl.constexpr,
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr,
    PRECISION: tl.constexpr,
):  # fmt: skip
    rows = tl.program_id(0) * BLOCK_M + tl.arange(0, BLOCK_M)
    cols = tl.program_id(1) * BLOCK_N + tl.arange(0, BLOCK_N)
    r_ok = rows < M
    c_ok = cols < N
    acc = tl.zeros([BLOCK_M, BLOCK_N], tl.float32)
    for k0 in range(0, K, BLOCK_K):
        kk = k0 + tl.arange(0, BLOCK_K)
        k_ok = kk < K
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
    acc *= tl.load(scale_ptr + cols, mask=c_ok, other=0.0).to(tl.float32)[None, :]
    if HAS_BIAS:
        acc += tl.load(bias_ptr + cols, mask=c_ok, other=0.0).to(tl.float32)[None, :]
    out = out_ptr + rows[:, None].to(tl.int64) * stride_om + cols[None, :]
    tl.store(out, acc.to(out_ptr.dtype.element_ty), mask=r_ok[:, None] & c_ok[None, :])


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

    blocks: the launch configuration (default: choose_blocks for the token count).
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
        b = blocks or choose_blocks(m)
        grid = (triton.cdiv(m, b.m), triton.cdiv(n, b.n))
        _int8_matmul_kernel[grid](
            x2, weight, scale, scale if bias is None else bias, out,
            m, n, k,
            x2.stride(0), weight.stride(0), n,
            HAS_BIAS=bias is not None,
            BLOCK_M=b.m, BLOCK_N=b.n, BLOCK_K=b.k,
            PRECISION="ieee" if x.dtype == torch.float32 else "tf32",
            num_warps=b.warps, num_stages=b.stages,
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
