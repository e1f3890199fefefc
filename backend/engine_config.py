"""The engine's knobs in one place, with their defaults and checks.

Also decides where the engine runs (device, dtype, threads) and how big the KV pool is.
"""

from __future__ import annotations

import importlib.util
import os
from dataclasses import dataclass
from typing import Literal, get_args

import torch

DEFAULT_MODEL = "smollm2-135m-instruct"
_DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}
# "auto": as the model runs (dtype); "int8": see backend/quant.py and backend/kv_cache.py.
WeightsFormat = Literal["auto", "int8"]
KVCacheDtype = Literal["auto", "int8"]
# auto: the Triton kernels on CUDA when triton is installed, else PyTorch (backend/model_ops.py).
Kernels = Literal["auto", "triton", "torch"]


@dataclass(frozen=True, slots=True)
class EngineConfig:
    model: str = DEFAULT_MODEL
    block_size: int = 16
    # Memory for the KV cache; None: 1 GiB on CPU, 80% of what is free after the weights on GPU.
    kv_cache_gb: float | None = None
    max_num_seqs: int = 64
    max_num_batched_tokens: int = 512
    # Prompt + output tokens per sequence; None: the model's own limit (clipped to the pool).
    max_model_len: int | None = None
    enable_prefix_caching: bool = True
    enable_chunked_prefill: bool = True
    device: str = "auto"
    dtype: str = "float32"
    # int8: every linear layer but lm_head quantized at load, per output channel.
    weights: WeightsFormat = "auto"
    # int8: K/V stored as int8 with a float32 scale per token and head: in the same kv_cache_gb,
    # about twice the tokens of a 16-bit cache, 3.8 times a float32 one (backend/kv_cache.py).
    kv_cache_dtype: KVCacheDtype = "auto"
    kernels: Kernels = "auto"
    # Decode steps replayed from CUDA graphs captured at batch sizes 1, 2, 4, ... max_num_seqs
    # (backend/cuda_graphs.py). Only on CUDA with the Triton kernels; elsewhere it changes nothing.
    cuda_graphs: bool = True
    seed: int | None = None
    # Intra-op threads on CPU; None: all the cores this process may use.
    num_threads: int | None = None

    def __post_init__(self) -> None:
        if self.block_size < 1 or self.block_size > 256:
            raise ValueError(f"block_size must be in [1, 256], got {self.block_size}")
        if self.kv_cache_gb is not None and not self.kv_cache_gb > 0:
            raise ValueError(f"kv_cache_gb must be positive, got {self.kv_cache_gb}")
        if self.dtype not in _DTYPES:
            raise ValueError(f"dtype must be one of {', '.join(_DTYPES)}, got {self.dtype!r}")
        for name, allowed in (
            ("weights", WeightsFormat),
            ("kv_cache_dtype", KVCacheDtype),
            ("kernels", Kernels),
        ):
            if getattr(self, name) not in get_args(allowed):
                choices = ", ".join(get_args(allowed))
                raise ValueError(f"{name} must be one of {choices}, got {getattr(self, name)!r}")
        if self.max_model_len is not None and self.max_model_len < 2:
            raise ValueError(f"max_model_len must be at least 2, got {self.max_model_len}")

    @property
    def torch_dtype(self) -> torch.dtype:
        return _DTYPES[self.dtype]

    @property
    def kv_cache_int8(self) -> bool:
        return self.kv_cache_dtype == "int8"

    def torch_device(self) -> torch.device:
        if self.device == "auto":
            return torch.device("cuda" if torch.cuda.is_available() else "cpu")
        return torch.device(self.device)

    def resolved_kernels(self, device: torch.device) -> Literal["triton", "torch"]:
        """What `kernels` means on device; ValueError when "triton" cannot run there."""
        triton_installed = importlib.util.find_spec("triton") is not None
        power_of_two = self.block_size & (self.block_size - 1) == 0
        if self.kernels == "auto":
            usable = device.type == "cuda" and triton_installed and power_of_two
            return "triton" if usable else "torch"
        if self.kernels == "torch":
            return "torch"
        if not triton_installed:
            raise ValueError("kernels: triton needs the triton package; use kernels: torch")
        if device.type != "cuda" and os.environ.get("TRITON_INTERPRET") != "1":
            raise ValueError(
                f"kernels: triton runs on CUDA devices, not {device.type} (tests interpret them "
                "on the CPU with TRITON_INTERPRET=1); use kernels: auto or torch"
            )
        if not power_of_two:
            raise ValueError(
                f"kernels: triton needs a power-of-two block_size, got {self.block_size}"
            )
        return "triton"

    def uses_cuda_graphs(self, device: torch.device) -> bool:
        """Decode under CUDA graphs: asked for, on CUDA, with the Triton kernels."""
        return (
            self.cuda_graphs and device.type == "cuda" and self.resolved_kernels(device) == "triton"
        )

    def kv_cache_bytes(self, device: torch.device) -> int:
        if self.kv_cache_gb is not None:
            return int(self.kv_cache_gb * 2**30)
        if device.type == "cuda":
            free, _ = torch.cuda.mem_get_info(device)
            return int(free * 0.8)
        return 2**30

    def apply_threads(self) -> None:
        threads = self.num_threads or len(os.sched_getaffinity(0))
        torch.set_num_threads(max(1, threads))
