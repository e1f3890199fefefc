"""Int8 weight-only quantization: per-row scales and the Int8Linear module.

Greedy agreement and perplexity on the real embedded model are checked once, through the
engine, in tests/backend/test_int8_engine.py.
"""

from __future__ import annotations

import torch
from torch import nn

from backend.quant import Int8Linear, quantize_linear_weights, quantize_weight


def test_quantize_weight_rounds_each_row_to_its_own_scale() -> None:
    gen = torch.Generator().manual_seed(0)
    weight = torch.randn(48, 80, generator=gen) * torch.logspace(-3, 1, 48)[:, None]
    qweight, scale = quantize_weight(weight)
    assert qweight.dtype == torch.int8 and qweight.abs().max() == 127
    error = (qweight.float() * scale[:, None] - weight).abs()
    assert (error <= scale[:, None] / 2 + 1e-7).all()


def test_int8_linear_module_matches_dequantized_linear_and_skips_lm_head() -> None:
    gen = torch.Generator().manual_seed(1)
    model = nn.ModuleDict({"proj": nn.Linear(80, 48), "lm_head": nn.Linear(80, 10, bias=False)})
    assert quantize_linear_weights(model) == 1
    proj = model["proj"]
    assert isinstance(proj, Int8Linear) and isinstance(model["lm_head"], nn.Linear)
    x = torch.randn(5, 3, 80, generator=gen)
    expected = nn.functional.linear(x, proj.qweight.float() * proj.scale[:, None], proj.bias)
    torch.testing.assert_close(proj(x), expected, atol=1e-5, rtol=1e-5)
