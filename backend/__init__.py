"""Sluicegate's inference engine: paged KV cache, continuous batching, the Llama family.

Public surface: `LLM`, `SamplingParams`, `AsyncEngine`, `EngineConfig`. Imported lazily, so
`import backend.scheduler` does not pull in torch and transformers.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_EXPORTS = {
    "LLM": "backend.llm",
    "AsyncEngine": "backend.async_engine",
    "EngineConfig": "backend.engine_config",
    "SamplingParams": "backend.sampling_params",
    "InvalidSamplingParams": "backend.sampling_params",
    "EngineInputError": "backend.outputs",
    "CompletionOutput": "backend.outputs",
    "GenerationResult": "backend.outputs",
    "RequestOutput": "backend.outputs",
}

__all__ = [
    "LLM",
    "AsyncEngine",
    "CompletionOutput",
    "EngineConfig",
    "EngineInputError",
    "GenerationResult",
    "InvalidSamplingParams",
    "RequestOutput",
    "SamplingParams",
]

if TYPE_CHECKING:
    from backend.async_engine import AsyncEngine
    from backend.engine_config import EngineConfig
    from backend.llm import LLM
    from backend.outputs import (
        CompletionOutput,
        EngineInputError,
        GenerationResult,
        RequestOutput,
    )
    from backend.sampling_params import InvalidSamplingParams, SamplingParams


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'backend' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
