"""The Llama family (Llama 2/3, Mistral, Qwen2, SmolLM2) over a flattened, paged batch.

Read top to bottom; the math follows transformers' LlamaForCausalLM op for op so greedy output
matches it token for token. The hot ops (norms, rotary, SiLU·mul, attention) come from the
ModelOps given at construction: PyTorch by default, the Triton kernels on the GPU.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import torch
from torch import nn

from backend.attention import AttentionMetadata
from backend.model_config import ModelConfig, ModelLoadError
from backend.model_ops import TORCH_OPS, ModelOps, RotaryInputs
from backend.rope import RotaryEmbedding


class RMSNorm(nn.Module):
    """Adds the residual first when given one: returns (normed, x + residual)."""

    def __init__(self, size: int, eps: float, ops: ModelOps = TORCH_OPS):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(size))
        self.eps = eps
        self.ops = ops

    def forward(
        self, x: torch.Tensor, residual: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        return self.ops.add_rms_norm(x, residual, self.weight, self.eps)


class Attention(nn.Module):
    def __init__(self, config: ModelConfig, ops: ModelOps = TORCH_OPS):
        super().__init__()
        d = config.head_dim
        self.num_heads, self.num_kv_heads, self.head_dim = config.num_heads, config.num_kv_heads, d
        self.q_size, self.kv_size = config.num_heads * d, config.num_kv_heads * d
        self.qkv_proj = nn.Linear(
            config.hidden_size, self.q_size + 2 * self.kv_size, bias=config.attention_bias
        )
        self.o_proj = nn.Linear(self.q_size, config.hidden_size, bias=False)
        self.attn = ops.attention(scale=d**-0.5)
        self.ops = ops

    def forward(
        self,
        rope: RotaryInputs,
        x: torch.Tensor,
        kv_cache: torch.Tensor,
        meta: AttentionMetadata,
        kv_scales: torch.Tensor | None = None,
    ) -> torch.Tensor:
        t = x.shape[0]
        q, k, v = self.qkv_proj(x).split([self.q_size, self.kv_size, self.kv_size], dim=-1)
        q = q.view(t, self.num_heads, self.head_dim)
        k = k.view(t, self.num_kv_heads, self.head_dim)
        v = v.view(t, self.num_kv_heads, self.head_dim)
        q, k = self.ops.rotary(q, k, rope)
        o = self.attn.forward(q, k, v, kv_cache, meta, kv_scales)
        return self.o_proj(o.reshape(t, self.q_size))


class MLP(nn.Module):
    def __init__(self, config: ModelConfig, ops: ModelOps = TORCH_OPS):
        super().__init__()
        self.gate_up_proj = nn.Linear(config.hidden_size, 2 * config.intermediate_size, bias=False)
        self.down_proj = nn.Linear(config.intermediate_size, config.hidden_size, bias=False)
        self.ops = ops

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.down_proj(self.ops.silu_mul(self.gate_up_proj(x)))


class DecoderLayer(nn.Module):
    """Residual stream carried beside the hidden states, so each norm adds it in the same pass."""

    def __init__(self, config: ModelConfig, ops: ModelOps = TORCH_OPS):
        super().__init__()
        size, eps = config.hidden_size, config.rms_norm_eps
        self.input_layernorm = RMSNorm(size, eps, ops)
        self.self_attn = Attention(config, ops)
        self.post_attention_layernorm = RMSNorm(size, eps, ops)
        self.mlp = MLP(config, ops)

    def forward(
        self,
        rope: RotaryInputs,
        x: torch.Tensor,
        residual: torch.Tensor | None,
        kv_cache: torch.Tensor,
        meta: AttentionMetadata,
        kv_scales: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(this layer's MLP output, the residual stream before it is added)."""
        h, residual = self.input_layernorm(x, residual)
        h = self.self_attn(rope, h, kv_cache, meta, kv_scales)
        h, residual = self.post_attention_layernorm(h, residual)
        return self.mlp(h), residual


class LlamaForCausalLM(nn.Module):
    """input_ids, positions: [tokens]; returns hidden states [tokens, hidden].

    kv_caches: one per layer (see PagedAttention); kv_scales: one per layer with int8 caches.
    ops: the implementation of the hot ops (backend/model_ops.py), fixed for the model's life.
    """

    def __init__(self, config: ModelConfig, max_positions: int, ops: ModelOps = TORCH_OPS):
        super().__init__()
        self.config = config
        self.ops = ops
        self.rope = RotaryEmbedding(config, max_positions)
        self.embed_tokens = nn.Embedding(config.vocab_size, config.hidden_size)
        self.layers = nn.ModuleList(DecoderLayer(config, ops) for _ in range(config.num_layers))
        self.norm = RMSNorm(config.hidden_size, config.rms_norm_eps, ops)
        self.lm_head = nn.Linear(config.hidden_size, config.vocab_size, bias=False)
        if config.tie_word_embeddings:
            self.lm_head.weight = self.embed_tokens.weight

    def forward(
        self,
        input_ids: torch.Tensor,
        positions: torch.Tensor,
        kv_caches: list[torch.Tensor],
        meta: AttentionMetadata,
        kv_scales: list[torch.Tensor] | None = None,
    ) -> torch.Tensor:
        x = self.embed_tokens(input_ids)
        rope = self.ops.rotary_inputs(self.rope, positions, x.dtype)
        scales: Sequence[torch.Tensor | None] = kv_scales or [None] * len(kv_caches)
        residual = None
        for layer, kv_cache, scale in zip(self.layers, kv_caches, scales, strict=True):
            x, residual = layer(rope, x, residual, kv_cache, meta, scale)
        x, _ = self.norm(x, residual)
        return x

    def reset_rope(self, max_positions: int) -> None:
        """Build the rope tables on the model's device (after loading from the meta device)."""
        self.rope = RotaryEmbedding(self.config, max_positions).to(self.embed_tokens.weight.device)

    def compute_logits(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.lm_head(hidden)

    @torch.no_grad()
    def load_weights(self, weights: Iterable[tuple[str, torch.Tensor]]) -> None:
        """Copy Hugging Face-named tensors in, fusing q/k/v and gate/up on the way."""
        params = dict(self.named_parameters())
        loaded: set[str] = set()
        for hf_name, tensor in weights:
            target = _target(hf_name, self.config)
            if target is None:
                continue
            name, rows = target
            if name not in params:
                raise ModelLoadError(f"unexpected weight {hf_name!r} for this architecture")
            param = params[name]
            dest = param if rows is None else param[rows[0] : rows[1]]
            if dest.shape != tensor.shape:
                raise ModelLoadError(
                    f"weight {hf_name!r} has shape {tuple(tensor.shape)}, "
                    f"expected {tuple(dest.shape)}: config.json and the weights disagree"
                )
            dest.copy_(tensor.to(param.dtype))
            loaded.add(hf_name if rows is None else f"{name}[{rows[0]}]")
        missing = _expected_count(self.config) - len(loaded)
        if missing:
            raise ModelLoadError(f"{missing} weight tensors are missing from the model files")


_FUSED = {"q_proj": 0, "k_proj": 1, "v_proj": 2, "gate_proj": 0, "up_proj": 1}


def _target(hf_name: str, config: ModelConfig) -> tuple[str, tuple[int, int] | None] | None:
    """Our parameter for an HF weight, and the rows it fills in a fused one."""
    if hf_name == "lm_head.weight":
        return None if config.tie_word_embeddings else ("lm_head.weight", None)
    if "rotary_emb" in hf_name:
        return None
    name = hf_name.removeprefix("model.")
    for part, index in _FUSED.items():
        marker = f".{part}."
        if marker not in name:
            continue
        d = config.head_dim
        if part in ("gate_proj", "up_proj"):
            size = config.intermediate_size
            rows = (index * size, (index + 1) * size)
            return name.replace(marker, ".gate_up_proj."), rows
        q, kv = config.num_heads * d, config.num_kv_heads * d
        starts = (0, q, q + kv)
        sizes = (q, kv, kv)
        rows = (starts[index], starts[index] + sizes[index])
        return name.replace(marker, ".qkv_proj."), rows
    return name, None


def _expected_count(config: ModelConfig) -> int:
    per_layer = 3 + 2 + 2 + 2  # q k v, gate up, o down, two norms
    if config.attention_bias:
        per_layer += 3
    head = 0 if config.tie_word_embeddings else 1
    return config.num_layers * per_layer + 2 + head
