"""Continuous batching: what runs in the next step, under a token budget and the free blocks.

Decides only; the block manager counts, the model runner computes. No torch here.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass, field

from backend.block_manager import BlockManager
from backend.sequence import Sequence, SequenceStatus


@dataclass(frozen=True, slots=True)
class SchedulerConfig:
    max_num_seqs: int = 128
    max_num_batched_tokens: int = 1024
    # Split a prompt longer than the step's budget over several steps so decodes keep flowing.
    enable_chunked_prefill: bool = True

    def __post_init__(self) -> None:
        if self.max_num_seqs < 1 or self.max_num_batched_tokens < 1:
            raise ValueError("max_num_seqs and max_num_batched_tokens must be at least 1")


@dataclass(slots=True)
class ScheduledBatch:
    """One step: each sequence with the number of its tokens to compute now."""

    seqs: list[Sequence] = field(default_factory=list)
    num_new_tokens: list[int] = field(default_factory=list)
    copies: list[tuple[int, int]] = field(default_factory=list)
    preempted: list[Sequence] = field(default_factory=list)

    def add(self, seq: Sequence, num_new_tokens: int, copies: list[tuple[int, int]]) -> None:
        self.seqs.append(seq)
        self.num_new_tokens.append(num_new_tokens)
        self.copies.extend(copies)

    @property
    def num_tokens(self) -> int:
        return sum(self.num_new_tokens)

    @property
    def is_empty(self) -> bool:
        return not self.seqs


class Scheduler:
    """Running sequences first (decodes, then the rest of chunked prompts), then new ones.

    Admission needs free blocks; when a running sequence cannot grow, the newest sequence of
    the lowest priority is preempted: its blocks are freed and it is recomputed later.
    """

    def __init__(self, config: SchedulerConfig, block_manager: BlockManager):
        self.config = config
        self.block_manager = block_manager
        self.running: list[Sequence] = []
        self._waiting: list[tuple[tuple[int, float, int], Sequence]] = []
        self._num_waiting = 0
        self.num_preemptions = 0

    # ---- queues ------------------------------------------------------------------------------

    @property
    def num_waiting(self) -> int:
        return self._num_waiting

    @property
    def num_running(self) -> int:
        return len(self.running)

    def has_unfinished(self) -> bool:
        return bool(self.running) or self._num_waiting > 0

    def add(self, seq: Sequence) -> None:
        seq.status = SequenceStatus.WAITING
        heapq.heappush(self._waiting, (seq.order_key, seq))
        self._num_waiting += 1

    def add_running(self, seq: Sequence) -> None:
        """A forked sequence joins the running set next to its parent."""
        seq.status = SequenceStatus.RUNNING
        self.running.append(seq)

    def finish(self, seq: Sequence) -> None:
        """Take seq out (running or waiting) and free its blocks at once."""
        if seq.status is SequenceStatus.RUNNING:
            self.running.remove(seq)
        elif seq.status is SequenceStatus.WAITING:
            self._num_waiting -= 1  # its heap entry is skipped when it surfaces
        seq.status = SequenceStatus.FINISHED
        self.block_manager.free(seq)

    # ---- one step ----------------------------------------------------------------------------

    def schedule(self) -> ScheduledBatch:
        batch = ScheduledBatch()
        budget = self.config.max_num_batched_tokens
        budget = self._schedule_running(batch, budget)
        if not batch.preempted:
            self._schedule_waiting(batch, budget)
        return batch

    def _schedule_running(self, batch: ScheduledBatch, budget: int) -> int:
        running = self.running
        running.sort(key=_order)
        bm = self.block_manager
        i = 0
        while i < len(running) and budget > 0:
            seq = running[i]
            n = min(seq.num_uncomputed_tokens, budget)
            while not bm.can_allocate(seq, n):
                victim = running[-1]
                self._preempt(victim)
                batch.preempted.append(victim)
                if victim is seq:
                    return budget
            batch.add(seq, n, bm.allocate(seq, n))
            budget -= n
            i += 1
        return budget

    def _schedule_waiting(self, batch: ScheduledBatch, budget: int) -> None:
        bm = self.block_manager
        while self._waiting and budget > 0 and len(self.running) < self.config.max_num_seqs:
            seq = self._waiting[0][1]
            if seq.status is not SequenceStatus.WAITING:
                heapq.heappop(self._waiting)
                continue
            hit = bm.lookup_prefix(seq.token_ids)
            remaining = seq.num_tokens - hit.num_tokens
            n = min(remaining, budget)
            if n < remaining and not self.config.enable_chunked_prefill:
                break
            if not bm.can_allocate(seq, n, hit):
                break
            heapq.heappop(self._waiting)
            self._num_waiting -= 1
            copies = bm.allocate(seq, n, hit)
            seq.num_cached_tokens = hit.num_tokens
            seq.status = SequenceStatus.RUNNING
            self.running.append(seq)
            batch.add(seq, n, copies)
            budget -= n

    def _preempt(self, seq: Sequence) -> None:
        self.running.remove(seq)
        self.block_manager.free(seq)
        seq.num_preemptions += 1
        self.num_preemptions += 1
        self.add(seq)

    def advance(self, batch: ScheduledBatch) -> None:
        """After the forward: the scheduled tokens are in the cache now."""
        bm = self.block_manager
        for seq, n in zip(batch.seqs, batch.num_new_tokens, strict=True):
            seq.num_computed_tokens += n
            bm.commit_full_blocks(seq)


def _order(seq: Sequence) -> tuple[int, float, int]:
    return seq.order_key
