"""Int8 weight-only matmul (Triton kernel) against the product with the weight dequantized."""

from __future__ import annotations

import pytest
import torch

from backend.quant import quantize_weight
from tests.backend.kernels.checks import assert_close, poisoned, random

pytest.importorskip("triton")

from backend.kernels.int8_linear import CANDIDATES, Blocks, int8_linear, int8_linear_ref

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
