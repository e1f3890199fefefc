"""SiLU·mul for the MLP: silu(gate) * up, reading the fused gate_up projection once.

Computed in float32, rounded once to the activation dtype.
"""

# x: [tokens, 2 * intermediate] (gate | up); returns [tokens, intermediate].

from __future__ import annotations

import torch
import torch.nn.functional as F
import triton
import triton.language as tl

BLOCK = 1024


@triton.jit
def _silu_mul_kernel(
    x_ptr, out_ptr, stride_x, stride_o, INTERMEDIATE: tl.constexpr, BLOCK: tl.constexpr
):  # fmt: skip
    row = tl.program_id(0).to(tl.int64)
    i = tl.program_id(1) * BLOCK + tl.arange(0, BLOCK)
    ok = i < INTERMEDIATE
    gate = tl.load(x_ptr + row * stride_x + i, mask=ok, other=0.0).to(tl.float32)
    up = tl.load(x_ptr + row * stride_x + INTERMEDIATE + i, mask=ok, other=0.0).to(tl.float32)
    y = gate / (1.0 + tl.exp(-gate)) * up
    tl.store(out_ptr + row * stride_o + i, y.to(out_ptr.dtype.element_ty), mask=ok)


def silu_mul(x: torch.Tensor, *, out: torch.Tensor | None = None) -> torch.Tensor:
    """silu(x[:, :n]) * x[:, n:] with n = x.shape[1] // 2; written into `out` when given."""
    tokens, width = x.shape
    assert x.stride(1) == 1 and width % 2 == 0
    n = width // 2
    if out is None:
        out = torch.empty(tokens, n, dtype=x.dtype, device=x.device)
    if tokens:
        block = min(BLOCK, triton.next_power_of_2(n))
        _silu_mul_kernel[(tokens, triton.cdiv(n, block))](
            x, out, x.stride(0), out.stride(0), INTERMEDIATE=n, BLOCK=block
        )
    return out


def silu_mul_ref(x: torch.Tensor, *, out: torch.Tensor | None = None) -> torch.Tensor:
    """The same, as backend.models.llama.MLP computes it."""
    gate, up = x.chunk(2, dim=-1)
    y = F.silu(gate) * up
    return y if out is None else out.copy_(y)
