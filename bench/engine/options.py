"""The settings of one benchmark, as the command line gave them, with defaults filled in.

Also what they imply: which phases run, and the engine options passed to `backend.LLM`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

DEFAULT_MODEL = "smollm2-135m-instruct"
DEFAULT_REQUESTS, QUICK_REQUESTS = 200, 16
DEFAULT_PREFIX_REQUESTS, QUICK_PREFIX_REQUESTS = 64, 8
DEFAULT_HF_BATCH_SIZES, QUICK_HF_BATCH_SIZES = (1, 8, 16, 32), (4, 16)
DEFAULT_PROMPT_TOKENS = (16, 1024)
DEFAULT_OUTPUT_TOKENS = (16, 256)
DEFAULT_SYSTEM_PROMPT_TOKENS = 600
# --rate auto: the no-caching engine spends about this share of its time on prefills.
AUTO_RATE_LOAD = 0.5


@dataclass(frozen=True)
class Options:
    quick: bool
    requests: int  # in the main (ShareGPT-like) workload
    seed: int
    model: str
    hf_batch_sizes: tuple[int, ...]
    max_num_seqs: int | None  # None: the engine's default
    max_num_batched_tokens: int | None
    kv_cache_gb: float | None
    weights: str | None  # "auto" / "int8"; None: the engine's default
    kv_cache: str | None  # "auto" / "int8"; None: the engine's default
    cpus: str | None  # taskset -c list for every worker, or None: unpinned
    threads: int  # torch intra-op threads, the same for every system
    no_hf: bool
    main: bool  # run the main workload (off with --shared-prefix alone)
    shared_prefix: bool  # run the shared-prefix variant (off with --no-shared-prefix)
    prefix_requests: int
    system_prompt_tokens: int
    rate: float | None  # shared-prefix arrivals per second; None: auto
    prompt_tokens: tuple[int, int]  # (min, max) prompt length of the main workload
    output_tokens: tuple[int, int]  # (min, max) output length of both workloads
    out: Path | None
    in_process: bool  # run the phases in this process (tests, debugging): no pinning

    @property
    def gemm_seconds(self) -> float:
        """Time spent timing each GEMM shape."""
        return 0.3 if self.quick else 1.0

    def engine_options(self, *, enable_prefix_caching: bool) -> dict[str, Any]:
        """Keyword arguments for `backend.LLM`; options left out keep the engine's defaults."""
        options: dict[str, Any] = {
            "enable_prefix_caching": enable_prefix_caching,
            "num_threads": self.threads,
            "seed": self.seed,
        }
        for name in ("max_num_seqs", "max_num_batched_tokens", "kv_cache_gb", "weights"):
            value = getattr(self, name)
            if value is not None:
                options[name] = value
        if self.kv_cache is not None:
            options["kv_cache_dtype"] = self.kv_cache
        return options
