"""Int8 weight-only quantization: per-output-channel scales, Linear layers swapped in place.

The product runs in a Triton kernel (the engine's kernels: triton) or, in PyTorch, with the int8
weight widened per call.
"""

from __future__ import annotations

from collections.abc import Collection

import torch
import torch.nn.functional as F
from torch import nn

# Tied to the embeddings in most small models: quantizing it adds an int8 copy, replaces nothing.
DEFAULT_SKIP = frozenset({"lm_head"})


def quantize_weight(weight: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Symmetric per-row int8: (qweight [out, in] int8, scale [out] float32), weight ≈ q * scale."""
    w = weight.detach().float()
    scale = w.abs().amax(dim=1).clamp(min=1e-12) / 127.0
    q = torch.round(w / scale[:, None]).clamp(-127, 127).to(torch.int8)
    return q, scale


class Int8Linear(nn.Module):
    """nn.Linear's forward over an int8 weight and per-output-channel scales (a float bias kept)."""

    qweight: torch.Tensor
    scale: torch.Tensor
    bias: torch.Tensor | None

    def __init__(
        self,
        qweight: torch.Tensor,
        scale: torch.Tensor,
        bias: torch.Tensor | None,
        *,
        triton: bool | None = None,
    ):
        super().__init__()
        # None: the Triton kernel for CUDA inputs, PyTorch for others.
        self.triton = triton
        self.out_features, self.in_features = qweight.shape
        self.register_buffer("qweight", qweight)
        self.register_buffer("scale", scale)
        self.register_buffer("bias", bias)

    @classmethod
    def from_linear(cls, linear: nn.Linear, *, triton: bool | None = None) -> Int8Linear:
        qweight, scale = quantize_weight(linear.weight)
        bias = None if linear.bias is None else linear.bias.detach().clone()
        return cls(qweight, scale.to(linear.weight.device), bias, triton=triton)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        use_kernel = x.is_cuda if self.triton is None else self.triton
        if use_kernel:
            from backend.kernels.int8_linear import int8_linear

            return int8_linear(x, self.qweight, self.scale, self.bias)
        # Measured on CPU (bench/kernels.py): widening the weight and scaling the output beats
        # aten._weight_int8pack_mm, which has no fast path on AVX2 machines.
        y = F.linear(x, self.qweight.to(x.dtype)) * self.scale.to(x.dtype)
        return y if self.bias is None else y + self.bias

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, int8"


def quantize_linear_weights(
    model: nn.Module, skip: Collection[str] = DEFAULT_SKIP, *, triton: bool | None = None
) -> int:
    """Replace every nn.Linear whose name's last part is not in skip; returns how many.

    triton: run the products in the Triton kernel (None: when the input is on CUDA).
    """
    targets = [
        (name, module)
        for name, module in model.named_modules()
        if isinstance(module, nn.Linear) and name.rpartition(".")[2] not in skip
    ]
    for name, linear in targets:
        parent_name, _, child = name.rpartition(".")
        parent = model.get_submodule(parent_name) if parent_name else model
        setattr(parent, child, Int8Linear.from_linear(linear, triton=triton))
    return len(targets)
