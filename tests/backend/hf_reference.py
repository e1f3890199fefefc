"""Reference outputs from Hugging Face transformers, and tiny random-weight models to test with.

Greedy decoding is a plain loop over the HF model with its own KV cache, float32.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, LlamaConfig, MistralConfig, Qwen2Config

TOKENIZER_FILES = (
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "chat_template.jinja",
)


@torch.inference_mode()
def hf_greedy(model: torch.nn.Module, prompt: list[int], max_new_tokens: int) -> list[int]:
    """Greedy continuation, never stopping early (eos included)."""
    out = model(input_ids=torch.tensor([prompt]), use_cache=True)
    # transformers renamed past_key_values to cache (5.2x); GPU images may hold an older one.
    cache = "cache" if hasattr(out, "cache") else "past_key_values"
    tokens: list[int] = []
    for _ in range(max_new_tokens):
        token = int(out.logits[0, -1].argmax())
        tokens.append(token)
        if len(tokens) == max_new_tokens:
            break
        past = {cache: getattr(out, cache)}
        out = model(input_ids=torch.tensor([[token]]), use_cache=True, **past)
    return tokens


def load_hf(folder: Path) -> torch.nn.Module:
    return AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32).eval()


def tiny_model(folder: Path, tokenizer_folder: Path, kind: str = "llama", seed: int = 0) -> Path:
    """A random-weight model of the given family, with the real tokenizer next to it."""
    common = dict(
        vocab_size=49152,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=3,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=1024,
        tie_word_embeddings=kind != "qwen2",
        bos_token_id=1,
        eos_token_id=2,
    )
    if kind == "llama":
        config = LlamaConfig(**common)
    elif kind == "llama3":
        config = LlamaConfig(
            **common,
            rope_theta=500000.0,
            rope_scaling={
                "rope_type": "llama3",
                "factor": 8.0,
                "low_freq_factor": 1.0,
                "high_freq_factor": 4.0,
                "original_max_position_embeddings": 64,
            },
        )
    elif kind == "mistral":
        config = MistralConfig(**common, sliding_window=None)
    elif kind == "qwen2":
        config = Qwen2Config(**common)
    else:
        raise ValueError(kind)
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    # Random init is too tame to tell tokens apart; widen the weights so argmax is decisive.
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.dim() > 1:
                p.normal_(0.0, 0.08)
            elif name.endswith("bias"):
                p.normal_(0.0, 0.1)
    model.save_pretrained(folder)
    for name in TOKENIZER_FILES:
        if (tokenizer_folder / name).exists():
            shutil.copy(tokenizer_folder / name, folder / name)
    return folder
