"""The model's hot operations behind one small interface, chosen once when the model is built.

`ModelOps` is plain PyTorch (the CPU path, and the math every kernel is tested against);
`backend.kernels.triton_ops.TritonOps` runs the same operations as Triton kernels.
"""

# x, residual: [tokens, hidden]; q: [tokens, heads, head_dim]; k: [tokens, kv_heads, head_dim];
# gate_up: [tokens, 2 * intermediate] (gate | up); positions: [tokens].

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F

from backend.attention import PagedAttention
from backend.rope import RotaryEmbedding, apply_rotary

# What one forward looks up once for every layer's rotary (ModelOps: cos and sin of the step's
# positions in the activation dtype; TritonOps: the positions and the whole float32 tables).
RotaryInputs = tuple[torch.Tensor, ...]


class ModelOps:
    """PyTorch: each method is the arithmetic of transformers' Llama, op for op."""

    name: Literal["torch", "triton"] = "torch"
    # Whether attention reads block tables and context lengths (the Triton kernels) rather than
    # gathered slots and additive masks; the model runner builds the metadata it asks for.
    reads_block_tables = False

    def attention(self, scale: float) -> PagedAttention:
        return PagedAttention(scale)

    def add_rms_norm(
        self, x: torch.Tensor, residual: torch.Tensor | None, weight: torch.Tensor, eps: float
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(rmsnorm(x + residual) * weight, x + residual); with residual None the sum is x."""
        total = x if residual is None else x + residual
        xf = total.float()
        normed = xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + eps)
        return weight * normed.to(x.dtype), total

    def rotary_inputs(
        self, rope: RotaryEmbedding, positions: torch.Tensor, dtype: torch.dtype
    ) -> RotaryInputs:
        return rope.tables(positions, dtype)

    def rotary(
        self, q: torch.Tensor, k: torch.Tensor, inputs: RotaryInputs
    ) -> tuple[torch.Tensor, torch.Tensor]:
        cos, sin = inputs
        return apply_rotary(q, k, cos, sin)

    def silu_mul(self, gate_up: torch.Tensor) -> torch.Tensor:
        gate, up = gate_up.chunk(2, dim=-1)
        return F.silu(gate) * up


TORCH_OPS = ModelOps()


def model_ops(kernels: Literal["triton", "torch"]) -> ModelOps:
    """The implementation EngineConfig.resolved_kernels named; Triton is imported only here."""
    if kernels == "torch":
        return TORCH_OPS
    from backend.kernels.triton_ops import TritonOps

    return TritonOps()
