"""Rotary position embedding applied in place to q and k (the rotate-half form Llama uses).

Table driven: pass RotaryEmbedding's cos/sin tables, so llama3 and linear scalings come with them.
"""

# q: [tokens, heads, head_dim]; k: [tokens, kv_heads, head_dim]; positions: [tokens] int;
# cos, sin: [max_positions, head_dim] float32, both halves equal (backend.rope.RotaryEmbedding).

from __future__ import annotations

import torch
import triton
import triton.language as tl


@triton.jit
def _rotate(
    ptr, stride_t, stride_h, t, cos, sin,
    HEADS: tl.constexpr, HEADS_PAD: tl.constexpr, HALF: tl.constexpr, HALF_PAD: tl.constexpr,
):  # fmt: skip
    h = tl.arange(0, HEADS_PAD)
    i = tl.arange(0, HALF_PAD)
    ok = (h < HEADS)[:, None] & (i < HALF)[None, :]
    first = ptr + t * stride_t + h[:, None] * stride_h + i[None, :]
    x1 = tl.load(first, mask=ok, other=0.0)
    x2 = tl.load(first + HALF, mask=ok, other=0.0)
    a = x1.to(tl.float32)
    b = x2.to(tl.float32)
    tl.store(first, (a * cos - b * sin).to(x1.dtype), mask=ok)
    tl.store(first + HALF, (b * cos + a * sin).to(x1.dtype), mask=ok)


@triton.jit
def _rotary_kernel(
    q_ptr, k_ptr, pos_ptr, cos_ptr, sin_ptr,
    stride_qt, stride_qh, stride_kt, stride_kh, stride_table,
    HEADS: tl.constexpr, HEADS_PAD: tl.constexpr, KV_HEADS: tl.constexpr,
    KV_HEADS_PAD: tl.constexpr, HALF: tl.constexpr, HALF_PAD: tl.constexpr,
):  # fmt: skip
    t = tl.program_id(0).to(tl.int64)
    pos = tl.load(pos_ptr + t).to(tl.int64)
    i = tl.arange(0, HALF_PAD)
    cos = tl.load(cos_ptr + pos * stride_table + i, mask=i < HALF, other=0.0)[None, :]
    sin = tl.load(sin_ptr + pos * stride_table + i, mask=i < HALF, other=0.0)[None, :]
    _rotate(q_ptr, stride_qt, stride_qh, t, cos, sin, HEADS, HEADS_PAD, HALF, HALF_PAD)
    _rotate(k_ptr, stride_kt, stride_kh, t, cos, sin, KV_HEADS, KV_HEADS_PAD, HALF, HALF_PAD)


def apply_rotary_(
    q: torch.Tensor, k: torch.Tensor, positions: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor
) -> None:
    """Rotate q and k in place by their tokens' positions."""
    tokens, heads, head_dim = q.shape
    kv_heads = k.shape[1]
    assert q.stride(2) == 1 and k.stride(2) == 1, "head_dim must be contiguous"
    assert cos.stride(1) == 1 and sin.stride() == cos.stride()
    if tokens == 0:
        return
    half = head_dim // 2
    _rotary_kernel[(tokens,)](
        q, k, positions, cos, sin,
        q.stride(0), q.stride(1), k.stride(0), k.stride(1), cos.stride(0),
        HEADS=heads, HEADS_PAD=triton.next_power_of_2(heads),
        KV_HEADS=kv_heads, KV_HEADS_PAD=triton.next_power_of_2(kv_heads),
        HALF=half, HALF_PAD=triton.next_power_of_2(half),
    )  # fmt: skip


def apply_rotary_ref(
    q: torch.Tensor, k: torch.Tensor, positions: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor
) -> None:
    """The same rotation in float32 (backend.rope.apply_rotary's formula), in place."""
    c = cos[positions].unsqueeze(1)
    s = sin[positions].unsqueeze(1)
    for x in (q, k):
        xf = x.float()
        half = x.shape[-1] // 2
        rotated = torch.cat((-xf[..., half:], xf[..., :half]), dim=-1)
        x.copy_(xf * c + rotated * s)
