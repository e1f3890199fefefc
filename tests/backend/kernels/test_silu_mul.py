"""SiLU·mul against the model's MLP activation, on widths that fill and that straddle a block."""

from __future__ import annotations

import pytest
import torch

from tests.backend.kernels.checks import DTYPES, assert_close, poisoned, random

pytest.importorskip("triton")

from backend.kernels.silu_mul import silu_mul, silu_mul_ref


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("intermediate", [100, 1536])
def test_silu_mul_matches_reference(
    device: torch.device, dtype: torch.dtype, intermediate: int
) -> None:
    gen = torch.Generator().manual_seed(intermediate)
    x = random((7, 2 * intermediate), dtype, device, gen) * 3
    out = poisoned((7, intermediate), dtype, device)
    silu_mul(x, out=out)
    assert_close(out, silu_mul_ref(x))
