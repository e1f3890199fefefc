"""Fused residual add + RMSNorm: one pass adds the residual, keeps the sum and normalises it.

Rounds like the model: the sum in the activation dtype, statistics in float32, weight applied last.
"""

# x, residual: [tokens, hidden]; weight: [hidden]; returns (normed, summed): [tokens, hidden] each.

from __future__ import annotations

import torch
import triton
import triton.language as tl


@triton.jit
def _add_rmsnorm_kernel(
    x_ptr, res_ptr, w_ptr, out_ptr, sum_ptr,
    stride_x, stride_r, stride_o, stride_s,
    eps,
    HIDDEN: tl.constexpr, BLOCK: tl.constexpr, HAS_RESIDUAL: tl.constexpr,
):  # fmt: skip
    row = tl.program_id(0).to(tl.int64)
    i = tl.arange(0, BLOCK)
    ok = i < HIDDEN
    x = tl.load(x_ptr + row * stride_x + i, mask=ok, other=0.0)
    if HAS_RESIDUAL:
        x = (x + tl.load(res_ptr + row * stride_r + i, mask=ok, other=0.0)).to(x.dtype)
        tl.store(sum_ptr + row * stride_s + i, x, mask=ok)
    xf = x.to(tl.float32)
    rstd = tl.rsqrt(tl.sum(xf * xf, 0) / HIDDEN + eps)
    w = tl.load(w_ptr + i, mask=ok, other=0.0)
    normed = (xf * rstd).to(x.dtype).to(tl.float32) * w.to(tl.float32)
    tl.store(out_ptr + row * stride_o + i, normed.to(out_ptr.dtype.element_ty), mask=ok)


def fused_add_rms_norm(
    x: torch.Tensor,
    residual: torch.Tensor | None,
    weight: torch.Tensor,
    eps: float,
    *,
    out: torch.Tensor | None = None,
    summed: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(rmsnorm(x + residual) * weight, x + residual); with residual None the sum is x itself.

    `out` and `summed` receive the results when given (`summed=residual` adds in place).
    """
    tokens, hidden = x.shape
    assert x.stride(1) == 1 and (residual is None or residual.stride(1) == 1)
    if out is None:
        out = torch.empty_like(x)
    if residual is None:
        summed = x
    elif summed is None:
        summed = torch.empty_like(x)
    if tokens == 0:
        return out, summed
    res = x if residual is None else residual
    _add_rmsnorm_kernel[(tokens,)](
        x, res, weight, out, summed,
        x.stride(0), res.stride(0), out.stride(0), summed.stride(0),
        eps,
        HIDDEN=hidden, BLOCK=triton.next_power_of_2(hidden), HAS_RESIDUAL=residual is not None,
    )  # fmt: skip
    return out, summed


def fused_add_rms_norm_ref(
    x: torch.Tensor,
    residual: torch.Tensor | None,
    weight: torch.Tensor,
    eps: float,
    *,
    out: torch.Tensor | None = None,
    summed: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The same, as backend.models.llama.RMSNorm computes it after `x + residual`."""
    total = x if residual is None else x + residual
    if residual is not None and summed is not None:
        total = summed.copy_(total)
    xf = total.float()
    normed = weight * (xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + eps)).to(x.dtype)
    return (normed if out is None else out.copy_(normed)), total
