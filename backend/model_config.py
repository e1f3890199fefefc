"""The shape of a Llama-family model, read from a Hugging Face folder's config.json.

Also owns ModelLoadError and the normalising of the several ways HF configs write RoPE settings.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# model_type -> whether the q/k/v projections carry a bias regardless of `attention_bias`.
SUPPORTED_ARCHITECTURES: dict[str, bool] = {"llama": False, "mistral": False, "qwen2": True}

# Keys each RoPE scaling type needs besides `rope_type`; the model reads them without defaults.
_ROPE_REQUIRED_KEYS: dict[str, tuple[str, ...]] = {
    "linear": ("factor",),
    "dynamic": ("factor",),
    "yarn": ("factor",),
    "llama3": ("factor", "low_freq_factor", "high_freq_factor", "original_max_position_embeddings"),
}

_DEFAULT_ROPE_THETA = 10000.0


class ModelLoadError(ValueError):
    """A model could not be found, converted or read; the message says what to do."""


@dataclass(frozen=True, slots=True)
class ModelConfig:
    architecture: str
    vocab_size: int
    hidden_size: int
    intermediate_size: int
    num_layers: int
    num_heads: int
    num_kv_heads: int
    head_dim: int
    rms_norm_eps: float
    rope_theta: float
    rope_scaling: dict[str, Any] | None
    max_position_embeddings: int
    tie_word_embeddings: bool
    attention_bias: bool
    bos_token_id: int | None
    eos_token_ids: tuple[int, ...]


def read_model_config(folder: Path) -> ModelConfig:
    """Read `folder/config.json` (and `generation_config.json` if present) into a ModelConfig."""
    config_path = Path(folder) / "config.json"
    raw = _read_json(config_path)
    model_type = raw.get("model_type")
    if model_type not in SUPPORTED_ARCHITECTURES:
        supported = ", ".join(sorted(SUPPORTED_ARCHITECTURES))
        raise ModelLoadError(
            f"{config_path}: model_type {model_type!r} is not supported by the built-in engine "
            f"(supported: {supported}); serve it with another engine behind a `kind: openai` "
            "backend"
        )

    def need(key: str) -> Any:
        if raw.get(key) is None:
            raise ModelLoadError(f"{config_path}: required key {key!r} is missing")
        return raw[key]

    hidden_size = int(need("hidden_size"))
    num_heads = int(need("num_attention_heads"))
    num_kv_heads = int(raw.get("num_key_value_heads") or num_heads)
    if num_heads % num_kv_heads != 0:
        raise ModelLoadError(
            f"{config_path}: num_attention_heads ({num_heads}) is not a multiple of "
            f"num_key_value_heads ({num_kv_heads})"
        )
    head_dim = int(raw.get("head_dim") or hidden_size // num_heads)
    rope_theta, rope_scaling = normalize_rope(raw, config_path)

    generation_path = Path(folder) / "generation_config.json"
    generation = _read_json(generation_path) if generation_path.exists() else {}
    eos_token_ids = _merge_ids(raw.get("eos_token_id"), generation.get("eos_token_id"))
    bos = raw.get("bos_token_id", generation.get("bos_token_id"))

    return ModelConfig(
        architecture=model_type,
        vocab_size=int(need("vocab_size")),
        hidden_size=hidden_size,
        intermediate_size=int(need("intermediate_size")),
        num_layers=int(need("num_hidden_layers")),
        num_heads=num_heads,
        num_kv_heads=num_kv_heads,
        head_dim=head_dim,
        rms_norm_eps=float(raw.get("rms_norm_eps", 1e-6)),
        rope_theta=rope_theta,
        rope_scaling=rope_scaling,
        max_position_embeddings=int(need("max_position_embeddings")),
        # Llama, Mistral and Qwen2 configs all default to untied heads when the key is absent.
        tie_word_embeddings=bool(raw.get("tie_word_embeddings", False)),
        attention_bias=SUPPORTED_ARCHITECTURES[model_type]
        or bool(raw.get("attention_bias", False)),
        bos_token_id=None if bos is None else int(bos),
        eos_token_ids=eos_token_ids,
    )


def normalize_rope(raw: dict[str, Any], source: Path) -> tuple[float, dict[str, Any] | None]:
    """Return (rope_theta, rope_scaling) from either the old or the transformers-5 config form.

    Old: `rope_theta` plus `rope_scaling` with `type` or `rope_type`. New: `rope_parameters` holding
    `rope_theta`, `rope_type` and the scaling keys. The "default" type means no scaling (None).
    """
    params = raw.get("rope_parameters")
    if params is not None and not isinstance(params, dict):
        raise ModelLoadError(f"{source}: rope_parameters must be an object, got {params!r}")
    scaling = dict(params) if params else dict(raw.get("rope_scaling") or {})
    theta = scaling.pop("rope_theta", None)
    if theta is None:
        theta = raw.get("rope_theta", _DEFAULT_ROPE_THETA)
    legacy_type = scaling.pop("type", None)
    rope_type = scaling.pop("rope_type", None) or legacy_type
    if not scaling and rope_type in (None, "default"):
        return float(theta), None
    if rope_type is None:
        raise ModelLoadError(f"{source}: RoPE scaling {scaling!r} has no 'rope_type' (or 'type')")
    if rope_type == "default":
        return float(theta), None
    missing = [key for key in _ROPE_REQUIRED_KEYS.get(rope_type, ()) if key not in scaling]
    if missing:
        raise ModelLoadError(
            f"{source}: RoPE scaling type {rope_type!r} needs {', '.join(missing)}"
        )
    return float(theta), {"rope_type": rope_type, **scaling}


def _merge_ids(*values: Any) -> tuple[int, ...]:
    """Merge ints and lists of ints into one tuple, first-seen order, no duplicates."""
    merged: list[int] = []
    for value in values:
        for item in value if isinstance(value, list | tuple) else [value]:
            if item is not None and int(item) not in merged:
                merged.append(int(item))
    return tuple(merged)


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ModelLoadError(
            f"{path} not found: a model folder needs config.json next to its *.safetensors"
        ) from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelLoadError(f"{path} is not readable JSON: {exc}") from None
    if not isinstance(data, dict):
        raise ModelLoadError(f"{path} must hold a JSON object, got {type(data).__name__}")
    return data
