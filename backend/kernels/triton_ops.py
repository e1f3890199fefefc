"""TritonOps: the model's hot operations (backend/model_ops.py) run by this package's kernels.

Attention with its KV store, fused residual-add + RMSNorm, in-place rotary and SiLU·mul.
"""

# Shapes as in backend/model_ops.py; every kernel wants its last dimension contiguous.

from __future__ import annotations

from typing import Literal

import torch

from backend.attention import PagedAttention
from backend.kernels.rmsnorm import fused_add_rms_norm
from backend.kernels.rotary import apply_rotary_
from backend.kernels.silu_mul import silu_mul
from backend.kernels.triton_attention import TritonPagedAttention
from backend.model_ops import ModelOps, RotaryInputs
from backend.rope import RotaryEmbedding


class TritonOps(ModelOps):
    name: Literal["torch", "triton"] = "triton"
    reads_block_tables = True

    def attention(self, scale: float) -> PagedAttention:
        return TritonPagedAttention(scale)

    def add_rms_norm(
        self, x: torch.Tensor, residual: torch.Tensor | None, weight: torch.Tensor, eps: float
    ) -> tuple[torch.Tensor, torch.Tensor]:
        # The sum goes into residual in place: it is the forward's own running tensor.
        return fused_add_rms_norm(x, residual, weight, eps, summed=residual)

    def rotary_inputs(
        self, rope: RotaryEmbedding, positions: torch.Tensor, dtype: torch.dtype
    ) -> RotaryInputs:
        # The kernel indexes the float32 tables itself and rounds once to q's dtype.
        return positions, rope.cos, rope.sin

    def rotary(
        self, q: torch.Tensor, k: torch.Tensor, inputs: RotaryInputs
    ) -> tuple[torch.Tensor, torch.Tensor]:
        positions, cos, sin = inputs
        apply_rotary_(q, k, positions, cos, sin)
        return q, k

    def silu_mul(self, gate_up: torch.Tensor) -> torch.Tensor:
        return silu_mul(gate_up)
