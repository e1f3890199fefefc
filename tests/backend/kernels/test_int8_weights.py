"""Int8 weight-only quantization on the real embedded model: greedy tokens and perplexity hold.

Teacher-forced over a fixed text set shipped with the tests: at every position the int8 model's
argmax must match float32's (at least 95% of positions) and perplexity stay within 2%.
"""

from __future__ import annotations

import math
from pathlib import Path

import torch
from torch import nn

from backend import LLM
from backend.attention import AttentionMetadata, PrefillSpan
from backend.models.llama import LlamaForCausalLM
from backend.quant import Int8Linear, quantize_linear_weights, quantize_weight

TEXTS = (Path(__file__).parent / "data" / "int8_texts.txt").read_text().split("\n\n")


def next_token_logits(model: LlamaForCausalLM, tokens: list[int]) -> torch.Tensor:
    """Logits after every prefix of tokens, [len(tokens), vocab], from one prefill."""
    config, n = model.config, len(tokens)
    caches = [
        torch.zeros(n, 2, config.num_kv_heads, config.head_dim) for _ in range(config.num_layers)
    ]
    meta = AttentionMetadata(slot_mapping=torch.arange(n), prefills=[PrefillSpan(0, n)])
    hidden = model(torch.tensor(tokens), torch.arange(n), caches, meta)
    return model.compute_logits(hidden).float()


def scores(model: LlamaForCausalLM, docs: list[list[int]]) -> tuple[list[torch.Tensor], float]:
    """(argmax predictions per document, perplexity over all documents)."""
    predictions, nll, count = [], 0.0, 0
    for tokens in docs:
        logits = next_token_logits(model, tokens)[:-1]
        targets = torch.tensor(tokens[1:])
        nll += float(torch.nn.functional.cross_entropy(logits, targets, reduction="sum"))
        count += len(targets)
        predictions.append(logits.argmax(-1))
    return predictions, math.exp(nll / count)


@torch.inference_mode()
def test_int8_weights_keep_greedy_tokens_and_perplexity(smollm2_folder: Path) -> None:
    threads = torch.get_num_threads()
    try:
        # One thread: on a shared machine, waiting OpenMP threads make two several times slower.
        llm = LLM(str(smollm2_folder), kv_cache_gb=0.01, num_threads=1)
        check_int8_against_float32(llm)
    finally:
        torch.set_num_threads(threads)


def check_int8_against_float32(llm: LLM) -> None:
    model = llm.engine.model
    docs = [llm.tokenizer.encode(text.strip()) for text in TEXTS]
    float_bytes = sum(
        m.weight.numel() * m.weight.element_size()
        for name, m in model.named_modules()
        if isinstance(m, nn.Linear) and name != "lm_head"
    )
    expected, float_ppl = scores(model, docs)

    replaced = quantize_linear_weights(model)
    int8_bytes = sum(m.qweight.numel() + 4 * m.scale.numel() for m in model.modules()
                     if isinstance(m, Int8Linear))  # fmt: skip
    actual, int8_ppl = scores(model, docs)

    assert replaced == 4 * model.config.num_layers
    assert int8_bytes < float_bytes / 3.9
    same = sum(int((a == e).sum()) for a, e in zip(actual, expected, strict=True))
    total = sum(len(e) for e in expected)
    assert total > 500
    assert same / total >= 0.95, f"greedy agreement {same / total:.3f}"
    assert abs(int8_ppl / float_ppl - 1) <= 0.02, f"perplexity {float_ppl:.3f} -> {int8_ppl:.3f}"


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
