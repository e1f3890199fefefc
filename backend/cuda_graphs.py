"""Decode steps under CUDA graphs: one graph per batch size, a step padded up to the nearest one.

On the CPU the tests cover the sizes, the padding and run() eagerly over the same static
buffers; on CUDA (bench/gpu_check.sh, last run on an H200) the same tests capture and replay.
"""

# Static buffers (size: the largest captured batch): token_ids, positions, slots: [size] int64;
# context_lens: [size] int32; block_tables: [size, max_blocks] int32. A padding row writes no K/V
# (slot -1, which the KV store skips) and reads none (context length 0 gives a zero row).

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from backend.attention import AttentionMetadata
from backend.kv_cache import KVCache
from backend.models.llama import LlamaForCausalLM

# Past this many sequences a decode step is large enough that launch overhead hardly shows.
MAX_CAPTURE_SIZE = 256


def capture_sizes(max_num_seqs: int, limit: int = MAX_CAPTURE_SIZE) -> list[int]:
    """1, 2, 4, ... below min(max_num_seqs, limit), then that bound itself: ascending."""
    top = max(1, min(max_num_seqs, limit))
    return [1 << i for i in range(top.bit_length()) if 1 << i < top] + [top]


def graph_size(num_seqs: int, sizes: Sequence[int]) -> int | None:
    """The smallest captured size that holds num_seqs (sizes ascending); None: run eagerly."""
    return next((size for size in sizes if size >= num_seqs), None)


def padded_tables(tables: Sequence[Sequence[int]], width: int) -> list[list[int]]:
    """Block tables as rows of width, padded with block 0 (never read past a context's end)."""
    return [[*table, *[0] * (width - len(table))] for table in tables]


@dataclass(frozen=True, slots=True)
class DecodeInputs:
    """One decode step's host-side inputs, a row per sequence."""

    token_ids: list[int]
    positions: list[int]
    slots: list[int]
    context_lens: list[int]
    block_tables: list[list[int]]

    def __len__(self) -> int:
        return len(self.token_ids)

    def padded(self, size: int) -> DecodeInputs:
        """size rows: these, then padding rows that write and read nothing."""
        pad = size - len(self)
        assert pad >= 0, f"{len(self)} sequences do not fit a batch of {size}"
        return DecodeInputs(
            token_ids=self.token_ids + [0] * pad,
            positions=self.positions + [0] * pad,
            slots=self.slots + [-1] * pad,
            context_lens=self.context_lens + [0] * pad,
            block_tables=self.block_tables + [[] for _ in range(pad)],
        )


class DecodeGraphs:
    """Static input buffers and, after capture(), one CUDA graph per size in sizes.

    Needs a model built with TritonOps: the PyTorch attention sizes its work from the step's
    lengths on the host, which a graph cannot replay.
    """

    def __init__(
        self,
        model: LlamaForCausalLM,
        kv_cache: KVCache,
        *,
        block_size: int,
        max_model_len: int,
        sizes: Sequence[int],
        device: torch.device,
    ):
        assert model.ops.reads_block_tables, "CUDA graphs need the Triton kernels"
        self.model, self.kv_cache = model, kv_cache
        self.block_size, self.max_model_len = block_size, max_model_len
        self.sizes = sorted(sizes)
        top, max_blocks = self.sizes[-1], -(-max_model_len // block_size)
        self.token_ids = torch.zeros(top, dtype=torch.long, device=device)
        self.positions = torch.zeros(top, dtype=torch.long, device=device)
        self.slots = torch.full((top,), -1, dtype=torch.long, device=device)
        self.context_lens = torch.zeros(top, dtype=torch.int32, device=device)
        self.block_tables = torch.zeros(top, max_blocks, dtype=torch.int32, device=device)
        self._graphs: dict[int, torch.cuda.CUDAGraph] = {}
        self._outputs: dict[int, torch.Tensor] = {}

    @property
    def largest(self) -> int:
        return self.sizes[-1]

    def run(self, inputs: DecodeInputs) -> torch.Tensor:
        """Hidden states [len(inputs), hidden]: replayed when captured, else eager (CPU tests)."""
        size = graph_size(len(inputs), self.sizes)
        assert size is not None, f"{len(inputs)} sequences: above {self.largest}, run eagerly"
        self._load(inputs.padded(size))
        graph = self._graphs.get(size)
        if graph is None:
            return self._forward(size)[: len(inputs)]
        graph.replay()
        return self._outputs[size][: len(inputs)]

    def capture(self) -> None:
        """Capture every size, the largest first so the smaller reuse its memory pool."""
        assert self.token_ids.is_cuda, "CUDA graphs need a CUDA device"
        pool = torch.cuda.graph_pool_handle()
        for size in reversed(self.sizes):
            # Warm-up: compiles the Triton kernels for this size (a graph cannot compile). The
            # buffers hold padding rows only, so this writes no K/V and reads none.
            self._forward(size)
            torch.cuda.synchronize()
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph, pool=pool):
                self._outputs[size] = self._forward(size)
            self._graphs[size] = graph
        torch.cuda.synchronize()

    def _forward(self, size: int) -> torch.Tensor:
        meta = AttentionMetadata(
            slot_mapping=self.slots[:size],
            num_decodes=size,
            block_size=self.block_size,
            decode_block_tables=self.block_tables[:size],
            decode_context_lens=self.context_lens[:size],
            # Fixed at capture: the kernels size their split-K grid from it, not from the step.
            decode_max_context=self.max_model_len,
        )
        cache = self.kv_cache
        return self.model(
            self.token_ids[:size], self.positions[:size], cache.values, meta, cache.scales
        )

    def _load(self, inputs: DecodeInputs) -> None:
        size = len(inputs)
        for buffer, values in (
            (self.token_ids, inputs.token_ids),
            (self.positions, inputs.positions),
            (self.slots, inputs.slots),
            (self.context_lens, inputs.context_lens),
        ):
            buffer[:size].copy_(torch.tensor(values, dtype=buffer.dtype))
        # Only the columns this step uses: the rest is never read (lengths bound every read).
        width = max(1, max(len(t) for t in inputs.block_tables))
        rows = torch.tensor(padded_tables(inputs.block_tables, width), dtype=torch.int32)
        self.block_tables[:size, :width].copy_(rows)
