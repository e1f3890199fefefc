"""One sequence of tokens as the scheduler and block manager see it.

Plain data, no torch: tokens so far, how many are in the KV cache, the block table, priority.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any


class SequenceStatus(enum.Enum):
    WAITING = "waiting"
    RUNNING = "running"
    FINISHED = "finished"


@dataclass(eq=False, slots=True)
class Sequence:
    seq_id: int
    request_id: str
    token_ids: list[int]
    num_prompt_tokens: int
    max_tokens: int
    priority: int = 0
    arrival_s: float = 0.0
    status: SequenceStatus = SequenceStatus.WAITING
    num_computed_tokens: int = 0
    num_hashed_blocks: int = 0
    block_table: list[int] = field(default_factory=list)
    # Tokens served from the prefix cache when the sequence was (last) admitted.
    num_cached_tokens: int = 0
    num_preemptions: int = 0
    # The engine's per-sequence state (sampling generator, detokenizer, stop checker...).
    state: Any = None

    @property
    def num_tokens(self) -> int:
        return len(self.token_ids)

    @property
    def num_output_tokens(self) -> int:
        return len(self.token_ids) - self.num_prompt_tokens

    @property
    def output_token_ids(self) -> list[int]:
        return self.token_ids[self.num_prompt_tokens :]

    @property
    def num_uncomputed_tokens(self) -> int:
        return len(self.token_ids) - self.num_computed_tokens

    @property
    def order_key(self) -> tuple[int, float, int]:
        """Lower runs first: priority, then arrival, then id."""
        return (self.priority, self.arrival_s, self.seq_id)

    @property
    def is_finished(self) -> bool:
        return self.status is SequenceStatus.FINISHED
