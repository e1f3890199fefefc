"""The settings of one guard benchmark, as the command line gave them, with defaults filled in."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

# Message sizes for the per-guard latency table, in UTF-8 bytes.
SIZES_BYTES = (200, 1024, 8192)
DEFAULT_SAMPLES, QUICK_SAMPLES = 200, 12
DEFAULT_CONVERSATIONS, QUICK_CONVERSATIONS = 5, 1
TURNS = 20
DEFAULT_PII_SAMPLES, QUICK_PII_SAMPLES = 500, 50
DEFAULT_CLEAN_SAMPLES, QUICK_CLEAN_SAMPLES = 250, 25
# Untimed calls before each timed series (lazy set-up, caches of the interpreter).
WARMUP_CALLS = 3

GUARDS = ("validation", "pii", "injection", "moderation", "keyword_filter")


@dataclass(frozen=True)
class Options:
    quick: bool
    seed: int
    samples: int  # timed calls per guard and message size
    conversations: int  # 20-turn chats through the input pipeline
    turns: int
    pii_samples: int  # labeled sentences with PII
    clean_samples: int  # labeled sentences without
    guards: tuple[str, ...]
    presidio: bool  # off: the PII guard uses only its secret rules (no spaCy, seconds to start)
    data_dir: Path  # injection.jsonl and moderation.jsonl
    out: Path | None
    latency: bool = True
    quality: bool = True
