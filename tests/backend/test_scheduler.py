"""Scheduler: token budget, chunked prefill, admission by free blocks, preemption, priority."""

from __future__ import annotations

import itertools

from backend.block_manager import BlockManager
from backend.scheduler import Scheduler, SchedulerConfig
from backend.sequence import Sequence, SequenceStatus

_ids = itertools.count()


def seq(n_prompt: int, priority: int = 0, arrival: float = 0.0) -> Sequence:
    i = next(_ids)
    # Distinct tokens per sequence, so the prefix cache never links two of them.
    tokens = list(range(i * 1000, i * 1000 + n_prompt))
    return Sequence(i, f"r{i}", tokens, n_prompt, 100, priority, arrival)


def step(s: Scheduler) -> dict[str, int]:
    """Schedule, 'run' (append one token to sequences that finished their prompt), advance."""
    batch = s.schedule()
    s.advance(batch)
    for q in batch.seqs:
        if q.num_computed_tokens == q.num_tokens:
            q.token_ids.append(7)
    return {q.request_id: n for q, n in zip(batch.seqs, batch.num_new_tokens, strict=True)}


def make(blocks: int = 64, bs: int = 4, **cfg: int) -> Scheduler:
    return Scheduler(SchedulerConfig(**cfg), BlockManager(blocks, bs))  # type: ignore[arg-type]


def test_decodes_and_new_prefills_share_one_step() -> None:
    s = make(max_num_batched_tokens=64)
    a = seq(10)
    s.add(a)
    assert step(s) == {a.request_id: 10}
    b = seq(20)
    s.add(b)
    assert step(s) == {a.request_id: 1, b.request_id: 20}


def test_long_prompt_is_chunked_and_decodes_keep_flowing() -> None:
    s = make(max_num_batched_tokens=16)
    a = seq(4)
    s.add(a)
    step(s)
    long = seq(40)
    s.add(long)
    chunks = [step(s) for _ in range(3)]
    assert [c[a.request_id] for c in chunks] == [1, 1, 1]
    assert [c[long.request_id] for c in chunks] == [15, 15, 10]
    assert long.num_output_tokens == 1  # sampled only after the last chunk


def test_unchunked_prefill_waits_for_budget() -> None:
    s = make(max_num_batched_tokens=16, enable_chunked_prefill=False)
    s.add(seq(40))
    assert step(s) == {}


def test_admission_stops_when_blocks_run_out() -> None:
    s = make(blocks=5, bs=4)
    a, b = seq(12), seq(12)
    s.add(a)
    s.add(b)
    assert step(s) == {a.request_id: 12}
    assert s.num_waiting == 1


def test_max_num_seqs_caps_the_running_batch() -> None:
    s = make(max_num_seqs=2)
    for _ in range(3):
        s.add(seq(2))
    assert len(step(s)) == 2


def test_newest_lowest_priority_sequence_is_preempted_and_recomputed() -> None:
    s = make(blocks=4, bs=4)
    old, new = seq(8, arrival=1.0), seq(8, arrival=2.0)
    s.add(old)
    s.add(new)
    step(s)  # both prefilled: 2 blocks each, pool full
    assert s.block_manager.num_free_blocks == 0
    got = step(s)  # both need a third block for token 9: the newer one goes
    assert got == {old.request_id: 1}
    assert new.status is SequenceStatus.WAITING
    assert new.num_computed_tokens == 0 and new.block_table == []
    assert s.num_preemptions == 1
    s.finish(old)
    # Recompute its 9 tokens (prompt and the one it had generated). The old sequence's third
    # block took the preempted one's tail block; its head block is still cached and hits.
    assert step(s) == {new.request_id: 5}
    assert new.num_cached_tokens == 4


def test_priority_orders_admission() -> None:
    s = make(blocks=3, bs=4)
    low, high = seq(8, priority=5, arrival=1.0), seq(8, priority=0, arrival=2.0)
    s.add(low)
    s.add(high)
    assert step(s) == {high.request_id: 8}


def test_finish_frees_blocks_wherever_the_sequence_is() -> None:
    s = make(blocks=8, bs=4)
    a, b = seq(8), seq(40)
    s.add(a)
    s.add(b)
    step(s)
    s.finish(a)
    s.finish(b)  # still waiting: never got blocks
    assert s.block_manager.num_free_blocks == 8
    assert not s.has_unfinished()
    assert step(s) == {}


def test_decode_groups_bound_padding_and_cover_every_decode() -> None:
    from backend.model_runner import decode_groups

    lens = sorted([5] * 10 + [40] * 10 + [41] + [1000] * 3)
    groups = decode_groups(lens, min_group=8)
    assert [g[:2] for g in groups] == [(0, 10), (10, 21), (21, 24)]
    assert [g[2] for g in groups] == [5, 41, 1000]
    assert decode_groups([7]) == [(0, 1, 7)]
