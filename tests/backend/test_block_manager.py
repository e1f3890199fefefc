"""Block manager: reference counts, prefix cache by chained hashes, LRU eviction, copy-on-write."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from backend.block_manager import BlockManager


@dataclass
class Seq:
    token_ids: list[int]
    block_table: list[int] = field(default_factory=list)
    num_computed_tokens: int = 0
    num_hashed_blocks: int = 0


def run(bm: BlockManager, seq: Seq, n: int | None = None) -> None:
    """Allocate and 'compute' n tokens (all uncomputed by default), then commit full blocks."""
    n = len(seq.token_ids) - seq.num_computed_tokens if n is None else n
    hit = bm.lookup_prefix(seq.token_ids) if not seq.block_table else None
    if hit is not None and hit.num_tokens:
        n -= hit.num_tokens
        assert bm.can_allocate(seq, n, hit)
        bm.allocate(seq, n, hit)
    else:
        assert bm.can_allocate(seq, n)
        bm.allocate(seq, n)
    seq.num_computed_tokens += n
    bm.commit_full_blocks(seq)


def test_allocate_takes_only_the_blocks_the_tokens_need() -> None:
    bm = BlockManager(10, 4)
    seq = Seq(list(range(9)))
    run(bm, seq)
    assert len(seq.block_table) == 3
    assert bm.num_free_blocks == 7
    seq.token_ids.append(99)
    run(bm, seq, 1)
    assert len(seq.block_table) == 3  # the tenth token fits the third block
    bm.free(seq)
    assert bm.num_free_blocks == 10
    assert bm.usage == 0.0


def test_can_allocate_refuses_what_does_not_fit() -> None:
    bm = BlockManager(2, 4)
    seq = Seq(list(range(9)))
    assert not bm.can_allocate(seq, 9)
    assert bm.can_allocate(seq, 8)
    with pytest.raises(RuntimeError, match="exhausted"):
        bm.allocate(seq, 9)


def test_prefix_hit_reuses_full_blocks_and_leaves_one_token_to_compute() -> None:
    bm = BlockManager(10, 4)
    first = Seq(list(range(12)))
    run(bm, first)
    second = Seq(list(range(12)))
    hit = bm.lookup_prefix(second.token_ids)
    assert hit.num_tokens == 8  # not 12: the last token must be computed for its logits
    assert hit.block_ids == first.block_table[:2]
    run(bm, second)
    assert second.block_table[:2] == first.block_table[:2]
    assert bm.blocks[first.block_table[0]].ref_count == 2
    assert bm.stats.hits_tokens == 8


def test_prefix_chain_breaks_at_the_first_different_block() -> None:
    bm = BlockManager(10, 4)
    run(bm, Seq([1, 2, 3, 4, 5, 6, 7, 8, 9]))
    assert bm.lookup_prefix([1, 2, 3, 4, 0, 6, 7, 8, 9]).num_tokens == 4
    # Same second block after a different first one: a chained hash does not match it.
    assert bm.lookup_prefix([0, 2, 3, 4, 5, 6, 7, 8, 9]).num_tokens == 0


def test_freed_cached_blocks_stay_hittable_until_evicted_lru() -> None:
    bm = BlockManager(4, 2)
    a = Seq([1, 2, 3, 4, 5])
    run(bm, a)
    bm.free(a)
    assert bm.num_free_blocks == 4
    assert bm.lookup_prefix([1, 2, 3, 4, 5]).num_tokens == 4
    # Uncached blocks are handed out before cached ones.
    b = Seq([7, 7, 7])
    run(bm, b)
    assert bm.lookup_prefix([1, 2, 3, 4, 5]).num_tokens == 4
    # Filling the pool evicts the cached blocks (the chain's tail first).
    c = Seq([9, 9, 9, 9])
    run(bm, c)
    assert bm.lookup_prefix([1, 2, 3, 4, 5]).num_tokens == 0


def test_hit_on_free_cached_blocks_counts_against_free_space() -> None:
    bm = BlockManager(3, 2)
    a = Seq([1, 2, 3, 4, 5])
    run(bm, a)
    bm.free(a)
    b = Seq([1, 2, 3, 4, 5, 6, 7])
    hit = bm.lookup_prefix(b.token_ids)
    assert hit.num_tokens == 4
    # 2 revived blocks + 2 new ones > 3 blocks in the pool.
    assert not bm.can_allocate(b, 3, hit)


def test_fork_shares_blocks_and_copies_the_partial_one_on_write() -> None:
    bm = BlockManager(10, 4)
    parent = Seq(list(range(6)))
    run(bm, parent)
    child = Seq(list(parent.token_ids))
    bm.fork(parent, child)
    assert child.block_table == parent.block_table
    assert bm.blocks[parent.block_table[1]].ref_count == 2
    child.token_ids.append(100)
    assert bm.can_allocate(child, 1)
    copies = bm.allocate(child, 1)
    assert copies == [(parent.block_table[1], child.block_table[1])]
    assert child.block_table[0] == parent.block_table[0]  # the full block stays shared
    assert bm.blocks[parent.block_table[1]].ref_count == 1
    # The parent writes its own partial block in place: no copy any more.
    parent.token_ids.append(200)
    assert bm.allocate(parent, 1) == []
    bm.free(parent)
    bm.free(child)
    assert bm.num_free_blocks == 10


def test_disabled_prefix_caching_never_hits() -> None:
    bm = BlockManager(10, 4, enable_prefix_caching=False)
    run(bm, Seq(list(range(12))))
    assert bm.lookup_prefix(list(range(12))).num_tokens == 0
