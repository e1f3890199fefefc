"""Int8 weight-only matmul (Triton kernel) against the product with the weight dequantized."""

from __future__ import annotations

import pytest
import torch

from backend.quant import quantize_weight
from tests.backend.kernels.checks import assert_close, poisoned, random

pytest.importorskip("triton")

from backend.kernels.int8_linear import (
    CANDIDATES,
    Blocks,
    choose_blocks,
    int8_linear,
    int8_linear_ref,
)

# (tokens, in_features, out_features, bias, dtype): sizes off the tile grid, and one on it.
CASES = [
    (1, 96, 80, False, torch.float32),
    (33, 128, 70, True, torch.float16),
    (16, 64, 64, True, torch.float32),
]


@pytest.mark.parametrize(
    ("tokens", "in_features", "out_features", "bias", "dtype"),
    CASES,
    ids=[f"{m}x{k}x{n}-bias{b}-{str(t).removeprefix('torch.')}" for m, k, n, b, t in CASES],
)
def test_int8_kernel_matches_reference(
    device: torch.device,
    tokens: int,
    in_features: int,
    out_features: int,
    bias: bool,
    dtype: torch.dtype,
) -> None:
    gen = torch.Generator().manual_seed(tokens + in_features)
    weight = random((out_features, in_features), torch.float32, device, gen)
    qweight, scale = quantize_weight(weight)
    # Activations scaled so outputs are of order one, where the tolerances apply.
    x = random((tokens, in_features), dtype, device, gen) * in_features**-0.5
    b = random((out_features,), dtype, device, gen) if bias else None
    out = poisoned((tokens, out_features), dtype, device)
    int8_linear(x, qweight, scale, b, out=out)
    assert_close(out, int8_linear_ref(x, qweight, scale, b))


@pytest.mark.parametrize("blocks", CANDIDATES, ids=lambda b: "-".join(map(str, b)))
def test_every_launch_configuration_gives_the_reference_product(
    device: torch.device, blocks: Blocks
) -> None:
    """Each configuration the benchmark sweeps (and choose_blocks may pick): rows, columns and
    the reduction all off its tile grid, a reduction longer than two of its tiles (than one
    tile per split with split-K), and a bias."""
    # Two tiles per split, the last split short: every split holds part of the sum.
    in_features = 2 * blocks.split * blocks.k - 48
    tokens, out_features = blocks.m + 3, blocks.n + 5
    gen = torch.Generator().manual_seed(blocks.n * blocks.k + blocks.split)
    bias = random((out_features,), torch.float16, device, gen)
    weight = random((out_features, in_features), torch.float32, device, gen)
    qweight, scale = quantize_weight(weight)
    x = random((tokens, in_features), torch.float16, device, gen) * in_features**-0.5
    out = poisoned((tokens, out_features), torch.float16, device)
    int8_linear(x, qweight, scale, bias, out=out, blocks=blocks)
    assert_close(out, int8_linear_ref(x, qweight, scale, bias))


def test_choose_blocks_splits_k_only_while_multiprocessors_would_idle() -> None:
    # Llama-3.2-1B's down projection on 132 multiprocessors: 64 column tiles, K = 8192.
    assert choose_blocks(1, 2048, 8192, 132).split == 4
    # Its qkv projection: 96 tiles, but K = 2048 is too short to split.
    assert choose_blocks(1, 3072, 2048, 132).split == 1
    # gate_up: 512 tiles fill the device already; the interpreter (1 "multiprocessor") never.
    assert choose_blocks(16, 16384, 2048, 132).split == 1
    assert choose_blocks(1, 2048, 8192, 1).split == 1
    chosen = {choose_blocks(t, 2048, 8192, 132)._replace(split=1) for t in (1, 16, 64, 65, 512)}
    assert all(b._replace(split=1) in {c._replace(split=1) for c in CANDIDATES} for b in chosen)
    assert choose_blocks(65, 2048, 8192, 132).m > choose_blocks(64, 2048, 8192, 132).m
