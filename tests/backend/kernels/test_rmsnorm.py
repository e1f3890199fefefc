"""Fused residual add + RMSNorm against the model's RMSNorm arithmetic."""

from __future__ import annotations

import pytest
import torch

from tests.backend.kernels.checks import DTYPES, assert_close, poisoned, random

pytest.importorskip("triton")

from backend.kernels.rmsnorm import fused_add_rms_norm, fused_add_rms_norm_ref


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("hidden", [64, 576])
def test_add_rmsnorm_matches_reference(
    device: torch.device, dtype: torch.dtype, hidden: int
) -> None:
    gen = torch.Generator().manual_seed(hidden)
    x = random((9, hidden), dtype, device, gen)
    residual = random((9, hidden), dtype, device, gen)
    weight = random((hidden,), dtype, device, gen)
    out, summed = poisoned((9, hidden), dtype, device), poisoned((9, hidden), dtype, device)
    fused_add_rms_norm(x, residual, weight, 1e-5, out=out, summed=summed)
    ref_out, ref_summed = fused_add_rms_norm_ref(x, residual, weight, 1e-5)
    assert_close(summed, ref_summed)
    assert_close(out, ref_out)


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_rmsnorm_without_residual_and_add_in_place(
    device: torch.device, dtype: torch.dtype
) -> None:
    gen = torch.Generator().manual_seed(3)
    x = random((5, 576), dtype, device, gen)
    weight = random((576,), dtype, device, gen)
    out = poisoned((5, 576), dtype, device)
    _, same = fused_add_rms_norm(x, None, weight, 1e-6, out=out)
    assert same is x
    assert_close(out, fused_add_rms_norm_ref(x, None, weight, 1e-6)[0])
    residual = random((5, 576), dtype, device, gen)
    expected = fused_add_rms_norm_ref(x, residual, weight, 1e-6)
    normed, summed = fused_add_rms_norm(x, residual, weight, 1e-6, summed=residual)
    assert summed is residual
    assert_close(summed, expected[1])
    assert_close(normed, expected[0])
