"""The paged KV cache's bookkeeping: which block holds which tokens, who shares it, what is cached.

Pure Python over block ids (no torch): the model runner owns the tensors, this owns the counting.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol


class BlockOwner(Protocol):
    """What the block manager needs from a sequence."""

    block_table: list[int]
    num_computed_tokens: int
    num_hashed_blocks: int

    @property
    def token_ids(self) -> list[int]: ...


@dataclass(slots=True)
class Block:
    block_id: int
    ref_count: int = 0
    # Set once the block is full and its tokens are in the cache: (hash of the chain, its tokens).
    block_hash: int | None = None
    tokens: tuple[int, ...] = ()


@dataclass(slots=True)
class PrefixStats:
    queries_tokens: int = 0
    hits_tokens: int = 0


@dataclass(slots=True)
class PrefixHit:
    """The cached blocks a new sequence can start from."""

    block_ids: list[int] = field(default_factory=list)
    num_tokens: int = 0


NO_HIT = PrefixHit()


def chain_hash(parent_hash: int | None, tokens: tuple[int, ...]) -> int:
    # Tuples of ints hash deterministically in CPython (no per-process salt), and every
    # lookup also compares the tokens, so a collision can never serve the wrong cache.
    return hash((parent_hash, tokens))


class BlockManager:
    """Free list, reference counts, prefix cache (chained hashes, LRU eviction), copy-on-write."""

    def __init__(self, num_blocks: int, block_size: int, *, enable_prefix_caching: bool = True):
        if num_blocks < 1 or block_size < 1:
            raise ValueError("the KV cache needs at least one block of at least one token")
        self.num_blocks = num_blocks
        self.block_size = block_size
        self.enable_prefix_caching = enable_prefix_caching
        self.blocks = [Block(i) for i in range(num_blocks)]
        # Blocks nobody references, least recently used first. Cached ones keep their hash
        # until they are handed out again, so a later prompt can still hit them.
        self._free: OrderedDict[int, None] = OrderedDict.fromkeys(range(num_blocks))
        self._cached: dict[int, int] = {}
        self.stats = PrefixStats()

    # ---- state -------------------------------------------------------------------------------

    @property
    def num_free_blocks(self) -> int:
        return len(self._free)

    @property
    def usage(self) -> float:
        """Fraction of blocks referenced by some sequence (cached-but-free blocks count as free)."""
        return 1.0 - len(self._free) / self.num_blocks

    def blocks_for(self, num_tokens: int) -> int:
        return -(-num_tokens // self.block_size)

    # ---- prefix cache ------------------------------------------------------------------------

    def lookup_prefix(self, token_ids: Sequence[int]) -> PrefixHit:
        """Longest run of cached full blocks at the start of token_ids.

        At least one token is always left to compute: the step needs its logits.
        """
        if not self.enable_prefix_caching:
            return NO_HIT
        bs = self.block_size
        max_blocks = (len(token_ids) - 1) // bs
        hit: list[int] = []
        parent: int | None = None
        for i in range(max_blocks):
            tokens = tuple(token_ids[i * bs : (i + 1) * bs])
            h = chain_hash(parent, tokens)
            block_id = self._cached.get(h)
            if block_id is None or self.blocks[block_id].tokens != tokens:
                break
            hit.append(block_id)
            parent = h
        return PrefixHit(hit, len(hit) * bs) if hit else NO_HIT

    def commit_full_blocks(self, seq: BlockOwner) -> None:
        """Register the sequence's newly completed blocks in the prefix cache."""
        if not self.enable_prefix_caching:
            return
        bs = self.block_size
        full = seq.num_computed_tokens // bs
        table, tokens = seq.block_table, seq.token_ids
        for i in range(seq.num_hashed_blocks, full):
            block = self.blocks[table[i]]
            parent = self.blocks[table[i - 1]].block_hash if i else None
            block_tokens = tuple(tokens[i * bs : (i + 1) * bs])
            h = chain_hash(parent, block_tokens)
            if block.block_hash is None:
                block.block_hash, block.tokens = h, block_tokens
                self._cached.setdefault(h, block.block_id)
        seq.num_hashed_blocks = max(seq.num_hashed_blocks, full)

    # ---- allocation: check/act pairs ---------------------------------------------------------

    def _new_blocks_needed(self, seq: BlockOwner, num_new_tokens: int, hit: PrefixHit) -> int:
        computed = max(seq.num_computed_tokens, hit.num_tokens)
        table_len = len(seq.block_table) or len(hit.block_ids)
        needed = self.blocks_for(computed + num_new_tokens) - table_len
        # A shared partial block about to be written needs a private copy.
        if self._needs_copy(seq, computed):
            needed += 1
        return max(needed, 0)

    def _needs_copy(self, seq: BlockOwner, computed: int) -> bool:
        index = computed // self.block_size
        if computed % self.block_size == 0 or index >= len(seq.block_table):
            return False
        return self.blocks[seq.block_table[index]].ref_count > 1

    def can_allocate(self, seq: BlockOwner, num_new_tokens: int, hit: PrefixHit = NO_HIT) -> bool:
        # Hit blocks nobody else references sit in the free list: taking them uses it up too.
        revived = sum(1 for b in hit.block_ids if self.blocks[b].ref_count == 0)
        return self._new_blocks_needed(seq, num_new_tokens, hit) + revived <= len(self._free)

    def allocate(
        self, seq: BlockOwner, num_new_tokens: int, hit: PrefixHit = NO_HIT
    ) -> list[tuple[int, int]]:
        """Give seq slots for num_new_tokens more tokens; returns (src, dst) block copies to do."""
        if self.enable_prefix_caching and not seq.block_table:
            self.stats.queries_tokens += len(seq.token_ids)
            self.stats.hits_tokens += hit.num_tokens
        if hit.block_ids:
            assert not seq.block_table, "a prefix hit only applies to a fresh sequence"
            for block_id in hit.block_ids:
                self._ref(block_id)
            seq.block_table.extend(hit.block_ids)
            seq.num_computed_tokens = hit.num_tokens
            seq.num_hashed_blocks = len(hit.block_ids)
        copies: list[tuple[int, int]] = []
        computed = seq.num_computed_tokens
        if self._needs_copy(seq, computed):
            index = computed // self.block_size
            src = seq.block_table[index]
            dst = self._take_free()
            self.blocks[src].ref_count -= 1
            seq.block_table[index] = dst
            copies.append((src, dst))
        missing = self.blocks_for(computed + num_new_tokens) - len(seq.block_table)
        for _ in range(missing):
            seq.block_table.append(self._take_free())
        return copies

    def fork(self, parent: BlockOwner, child: BlockOwner) -> None:
        """The child shares every block of the parent (n > 1 sampling from one prompt)."""
        for block_id in parent.block_table:
            self.blocks[block_id].ref_count += 1
        child.block_table = list(parent.block_table)
        child.num_computed_tokens = parent.num_computed_tokens
        child.num_hashed_blocks = parent.num_hashed_blocks

    def free(self, seq: BlockOwner) -> None:
        """Drop the sequence's references; its blocks go back to the pool at once."""
        # Tail blocks first, so the LRU evicts a chain from its end and keeps shared heads.
        for block_id in reversed(seq.block_table):
            block = self.blocks[block_id]
            block.ref_count -= 1
            if block.ref_count == 0:
                self._free[block_id] = None
                if block.block_hash is None:
                    self._free.move_to_end(block_id, last=False)
        seq.block_table = []
        seq.num_computed_tokens = 0
        seq.num_hashed_blocks = 0

    def reset_prefix_cache(self) -> None:
        for block_id in self._free:
            self._forget(self.blocks[block_id])

    # ---- internals ---------------------------------------------------------------------------

    def _ref(self, block_id: int) -> None:
        block = self.blocks[block_id]
        if block.ref_count == 0:
            del self._free[block_id]
        block.ref_count += 1

    def _take_free(self) -> int:
        if not self._free:
            raise RuntimeError("KV cache exhausted: call can_allocate before allocate")
        block_id, _ = self._free.popitem(last=False)
        block = self.blocks[block_id]
        self._forget(block)
        block.ref_count = 1
        return block_id

    def _forget(self, block: Block) -> None:
        if block.block_hash is not None:
            if self._cached.get(block.block_hash) == block.block_id:
                del self._cached[block.block_hash]
            block.block_hash, block.tokens = None, ()
