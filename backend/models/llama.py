"""The Llama family (Llama 2/3, Mistral, Qwen2, SmolLM2) over a flattened, paged batch.

Plain PyTorch, read top to bottom; the math follows transformers' LlamaForCausalLM op for op
so greedy output matches it token for token.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from backend.attention import AttentionMetadata, PagedAttention
from backend.model_config import ModelConfig, ModelLoadError
from backend.rope import RotaryEmbedding, apply_rotary


class RMSNorm(nn.Module):
    def __init__(self, size: int, eps: float):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(size))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        dtype = x.dtype
        x = x.to(torch.float32)
        x = x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps)
        return self.weight * x.to(dtype)


class Attention(nn.Module):
    def __init__(self, config: ModelConfig):
        super().__init__()
        d = config.head_dim
        self.num_heads, self.num_kv_heads, self.head_dim = config.num_heads, config.num_kv_heads, d
        self.q_size, self.kv_size = config.num_heads * d, config.num_kv_heads * d
        self.qkv_proj = nn.Linear(
            config.hidden_size, self.q_size + 2 * self.kv_size, bias=config.attention_bias
        )
        self.o_proj = nn.Linear(self.q_size, config.hidden_size, bias=False)
        self.attn = PagedAttention(scale=d**-0.5)

    def forward(
        self,
        rope: tuple[torch.Tensor, torch.Tensor],
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
        q, k = apply_rotary(q, k, *rope)
        o = self.attn.forward(q, k, v, kv_cache, meta, kv_scales)
        return self.o_proj(o.reshape(t, self.q_size))


class MLP(nn.Module):
    def __init__(self, config: ModelConfig):
        super().__init__()
        self.intermediate_size = config.intermediate_size
        self.gate_up_proj = nn.Linear(config.hidden_size, 2 * config.intermediate_size, bias=False)
        self.down_proj = nn.Linear(config.intermediate_size, config.hidden_size, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gate, up = self.gate_up_proj(x).split(self.intermediate_size, dim=-1)
        return self.down_proj(F.silu(gate) * up)


class DecoderLayer(nn.Module):
    def __init__(self, config: ModelConfig):
        super().__init__()
        self.input_layernorm = RMSNorm(config.hidden_size, config.rms_norm_eps)
        self.self_attn = Attention(config)
        self.post_attention_layernorm = RMSNorm(config.hidden_size, config.rms_norm_eps)
        self.mlp = MLP(config)

    def forward(
        self,
        rope: tuple[torch.Tensor, torch.Tensor],
        x: torch.Tensor,
        kv_cache: torch.Tensor,
        meta: AttentionMetadata,
        kv_scales: torch.Tensor | None = None,
    ) -> torch.Tensor:
        x = x + self.self_attn(rope, self.input_layernorm(x), kv_cache, meta, kv_scales)
        return x + self.mlp(self.post_attention_layernorm(x))


class LlamaForCausalLM(nn.Module):
    """input_ids, positions: [tokens]; returns hidden states [tokens, hidden].

    kv_caches: one per layer (see PagedAttention); kv_scales: one per layer with int8 caches.
    """

    def __init__(self, config: ModelConfig, max_positions: int):
        super().__init__()
        self.config = config
        self.rope = RotaryEmbedding(config, max_positions)
        self.embed_tokens = nn.Embedding(config.vocab_size, config.hidden_size)
        self.layers = nn.ModuleList(DecoderLayer(config) for _ in range(config.num_layers))
        self.norm = RMSNorm(config.hidden_size, config.rms_norm_eps)
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
        rope = self.rope.tables(positions, x.dtype)
        scales: Sequence[torch.Tensor | None] = kv_scales or [None] * len(kv_caches)
        for layer, kv_cache, scale in zip(self.layers, kv_caches, scales, strict=True):
            x = layer(rope, x, kv_cache, meta, scale)
        return self.norm(x)

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
