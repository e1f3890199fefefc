"""The int8 KV cache on random tensors: quantization, attention over it, copies, sizes.

Attention over an int8 cache must equal attention over a float cache holding the same values
dequantized, for decodes, whole prompts and chunks over a cached prefix.
"""

from __future__ import annotations

import pytest
import torch

from backend.attention import AttentionMetadata, PagedAttention, PrefillSpan
from backend.kv_cache import KVCache, dequantize_kv, kv_bytes_per_block, quantize_kv
from backend.model_config import ModelConfig

KV_HEADS, HEADS, HEAD_DIM, BLOCK = 2, 6, 32, 8
CPU = torch.device("cpu")


def config(head_dim: int = HEAD_DIM, kv_heads: int = KV_HEADS) -> ModelConfig:
    return ModelConfig(
        architecture="llama", vocab_size=64, hidden_size=96, intermediate_size=160,
        num_layers=3, num_heads=HEADS, num_kv_heads=kv_heads, head_dim=head_dim,
        rms_norm_eps=1e-5, rope_theta=10000.0, rope_scaling=None, max_position_embeddings=256,
        tie_word_embeddings=True, attention_bias=False, bos_token_id=None, eos_token_ids=(),
    )  # fmt: skip


def test_quantize_kv_keeps_each_value_within_half_a_step_of_its_own_row() -> None:
    gen = torch.Generator().manual_seed(0)
    # Rows of very different magnitudes: one scale per row, not per tensor.
    x = (
        torch.randn(40, 2, KV_HEADS, HEAD_DIM, generator=gen)
        * torch.logspace(-3, 2, 40)[:, None, None, None]
    )
    values, scales = quantize_kv(x)
    assert values.dtype == torch.int8 and scales.shape == (40, 2, KV_HEADS)
    assert (values.abs().amax(-1) == 127).all()
    error = (dequantize_kv(values, scales, torch.float32) - x).abs()
    assert (error <= scales[..., None] / 2 * (1 + 1e-5)).all()


def test_an_all_zero_row_stays_zero_and_finite() -> None:
    values, scales = quantize_kv(torch.zeros(3, HEAD_DIM))
    restored = dequantize_kv(values, scales, torch.float16)
    assert (restored == 0).all() and restored.dtype == torch.float16


def test_int8_cache_is_int8_values_plus_one_float32_scale_per_token_and_head() -> None:
    cache = KVCache(config(), 5, BLOCK, dtype=torch.bfloat16, quantized=True, device=CPU)
    assert cache.quantized and cache.scales is not None
    assert [t.shape for t in cache.values] == [(5 * BLOCK, 2, KV_HEADS, HEAD_DIM)] * 3
    assert {t.dtype for t in cache.values} == {torch.int8}
    assert [t.shape for t in cache.scales] == [(5 * BLOCK, 2, KV_HEADS)] * 3
    assert {t.dtype for t in cache.scales} == {torch.float32}
    held = sum(t.numel() * t.element_size() for t in cache.values + cache.scales)
    assert held == 5 * kv_bytes_per_block(config(), BLOCK, torch.bfloat16, quantized=True)
    plain = KVCache(config(), 5, BLOCK, dtype=torch.float16, quantized=False, device=CPU)
    assert plain.scales is None and plain.values[0].dtype == torch.float16


@pytest.mark.parametrize(
    ("head_dim", "dtype", "ratio"),
    [
        (64, torch.float32, 256 / 68),  # 3.76: SmolLM2, Llama 3.2 1B
        (64, torch.bfloat16, 128 / 68),  # 1.88
        (128, torch.float32, 512 / 132),  # 3.88: Llama 3 8B, Mistral 7B
        (128, torch.float16, 256 / 132),  # 1.94
    ],
)
def test_int8_blocks_cost_one_byte_per_value_plus_four_per_scale(
    head_dim: int, dtype: torch.dtype, ratio: float
) -> None:
    c = config(head_dim)
    floats = kv_bytes_per_block(c, BLOCK, dtype)
    int8 = kv_bytes_per_block(c, BLOCK, dtype, quantized=True)
    assert floats == 3 * 2 * BLOCK * KV_HEADS * head_dim * dtype.itemsize
    assert int8 == 3 * 2 * BLOCK * KV_HEADS * (head_dim + 4)
    assert floats / int8 == pytest.approx(ratio)


def test_copy_on_write_copies_the_scales_with_the_values() -> None:
    cache = KVCache(config(), 4, BLOCK, dtype=torch.float32, quantized=True, device=CPU)
    assert cache.scales is not None
    gen = torch.Generator().manual_seed(1)
    for values, scales in zip(cache.values, cache.scales, strict=True):
        values.copy_(torch.randint(-127, 128, values.shape, generator=gen, dtype=torch.int8))
        scales.copy_(torch.rand(scales.shape, generator=gen))
    before = [t.clone() for t in cache.values + cache.scales]
    cache.copy_blocks([(1, 3), (0, 2)])
    for t, old in zip(cache.values + cache.scales, before, strict=True):
        block = slice(3 * BLOCK, 4 * BLOCK)
        assert torch.equal(t[block], old[BLOCK : 2 * BLOCK])
        assert torch.equal(t[2 * BLOCK : 3 * BLOCK], old[:BLOCK])
        assert torch.equal(t[: 2 * BLOCK], old[: 2 * BLOCK])


# ---- attention over the int8 cache ---------------------------------------------------------


def additive(allowed: torch.Tensor) -> torch.Tensor:
    mask = torch.zeros(allowed.shape, device=allowed.device)
    return mask.masked_fill_(~allowed, float("-inf"))


def step_metadata(
    decode: torch.Tensor, prompt: torch.Tensor, chunk_context: torch.Tensor, new_chunk: int
) -> AttentionMetadata:
    """One step: a decode (its last slot new), a whole prompt, a chunk over a cached prefix."""
    context, device = chunk_context.numel(), chunk_context.device
    keys = torch.arange(context, device=device)
    queries = torch.arange(context - new_chunk, context, device=device)
    meta = AttentionMetadata(
        slot_mapping=torch.cat([decode[-1:], prompt, chunk_context[-new_chunk:]]),
        num_decodes=1,
        decode_slots=decode[None, :],
        decode_mask=torch.zeros(1, 1, 1, decode.numel(), device=device),
    )
    first = 1 + prompt.numel()
    meta.prefills.append(PrefillSpan(1, first))
    meta.prefills.append(
        PrefillSpan(
            first,
            first + new_chunk,
            context_slots=chunk_context,
            mask=additive(keys[None, :] <= queries[:, None]),
        )
    )
    return meta


def test_attention_over_int8_cache_equals_attention_over_its_dequantized_values() -> None:
    gen = torch.Generator().manual_seed(2)
    slots = torch.randperm(12 * BLOCK, generator=gen)
    decode = slots[:21]  # 20 cached tokens, the 21st decoded in this step
    prompt = slots[21:34]  # a whole 13-token prompt
    chunk_context = slots[34:58]  # a 9-token chunk after a cached prefix of 15
    meta = step_metadata(decode, prompt, chunk_context, new_chunk=9)
    tokens = meta.slot_mapping.numel()
    q = torch.randn(tokens, HEADS, HEAD_DIM, generator=gen)
    k = torch.randn(tokens, KV_HEADS, HEAD_DIM, generator=gen)
    v = torch.randn(tokens, KV_HEADS, HEAD_DIM, generator=gen)
    cached = torch.cat([decode[:-1], chunk_context[:15]])
    history = torch.randn(cached.numel(), 2, KV_HEADS, HEAD_DIM, generator=gen)

    int8 = KVCache(config(), 12, BLOCK, dtype=torch.float32, quantized=True, device=CPU)
    assert int8.scales is not None
    int8.values[0][cached], int8.scales[0][cached] = quantize_kv(history)
    attention = PagedAttention(HEAD_DIM**-0.5)
    got = attention.forward(q, k, v, int8.values[0], meta, int8.scales[0])

    # The new tokens went in quantized, with a scale per token, K/V and head.
    written = int8.scales[0][meta.slot_mapping]
    assert (written > 0).all() and int8.values[0][meta.slot_mapping].abs().amax() == 127
    # The same step over a float cache holding every value as the int8 cache gives it back,
    # the new K/V included: also the whole prompt attends to its K/V as stored.
    floats = dequantize_kv(int8.values[0], int8.scales[0], torch.float32)
    new_k, new_v = floats[meta.slot_mapping, 0], floats[meta.slot_mapping, 1]
    assert not torch.allclose(new_k, k, atol=1e-4)  # quantization did change them
    want = attention.forward(q, new_k, new_v, floats.clone(), meta)
    torch.testing.assert_close(got, want, atol=1e-6, rtol=1e-5)
    # And it stays near attention over the exact values.
    exact = torch.zeros(12 * BLOCK, 2, KV_HEADS, HEAD_DIM)
    exact[cached] = history
    torch.testing.assert_close(got, attention.forward(q, k, v, exact, meta), atol=0.03, rtol=0)
