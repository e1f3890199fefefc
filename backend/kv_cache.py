"""The paged KV pool's tensors: one K/V tensor per layer, in the model's dtype or in int8.

An int8 pool keeps one float32 scale per token, K/V and head beside the values (symmetric, absmax).
"""

# values: [slots, 2, kv_heads, head_dim] (slot = block * block_size + offset), the model's dtype
# or int8; scales (int8 only): [slots, 2, kv_heads] float32, value ≈ int8 * scale.
# This is the layout backend/kernels (kv_store, paged_decode, paged_prefill) read and write.

from __future__ import annotations

from collections.abc import Sequence

import torch

from backend.model_config import ModelConfig

SCALE_DTYPE = torch.float32


def kv_bytes_per_block(
    config: ModelConfig, block_size: int, dtype: torch.dtype, *, quantized: bool = False
) -> int:
    """Bytes one block takes across all layers, K and V (and, int8, their scales)."""
    per_head = (
        config.head_dim + SCALE_DTYPE.itemsize if quantized else config.head_dim * dtype.itemsize
    )
    return config.num_layers * 2 * block_size * config.num_kv_heads * per_head


class KVCache:
    """The pool for every layer; the model runner owns it, attention reads and writes it."""

    def __init__(
        self,
        config: ModelConfig,
        num_blocks: int,
        block_size: int,
        *,
        dtype: torch.dtype,
        quantized: bool,
        device: torch.device,
    ):
        self.block_size = block_size
        shape = (num_blocks * block_size, 2, config.num_kv_heads, config.head_dim)
        value_dtype = torch.int8 if quantized else dtype
        # Zeroed, not empty: padded decode reads land on real slots and must hold no NaNs
        # (int8: a zero value times a zero scale).
        self.values = [
            torch.zeros(shape, dtype=value_dtype, device=device) for _ in range(config.num_layers)
        ]
        self.scales: list[torch.Tensor] | None = (
            [torch.zeros(shape[:3], dtype=SCALE_DTYPE, device=device) for _ in self.values]
            if quantized
            else None
        )

    @property
    def quantized(self) -> bool:
        return self.scales is not None

    def copy_blocks(self, copies: Sequence[tuple[int, int]]) -> None:
        """Copy whole blocks (copy-on-write), their scales with them."""
        bs = self.block_size
        tensors = self.values + (self.scales or [])
        for src, dst in copies:
            for t in tensors:
                t[dst * bs : (dst + 1) * bs] = t[src * bs : (src + 1) * bs]


def quantize_kv(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """[..., head_dim] -> (int8 values, float32 scales [...]): symmetric per row, absmax / 127.

    Rounds half away from zero, as the Triton KV store does.
    """
    xf = x.float()
    scale = xf.abs().amax(-1).clamp(min=1e-8) / 127.0
    y = xf / scale[..., None]
    return torch.where(y >= 0, (y + 0.5).floor(), (y - 0.5).ceil()).to(torch.int8), scale


def dequantize_kv(values: torch.Tensor, scales: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """int8 values [..., head_dim] times their scales [...], in dtype."""
    return (values.to(torch.float32) * scales[..., None]).to(dtype)
