"""Runs one scheduled step through the model: flatten the batch, build attention metadata, logits.

Owns the KV cache (backend/kv_cache.py) and the decode CUDA graphs (backend/cuda_graphs.py);
knows nothing about requests, sampling or text.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence as Seq

import torch

from backend.attention import AttentionMetadata, PrefillSpan
from backend.cuda_graphs import DecodeGraphs, DecodeInputs, padded_tables
from backend.kv_cache import KVCache
from backend.models.llama import LlamaForCausalLM
from backend.sequence import Sequence


def decode_groups(context_lens: list[int], min_group: int = 4) -> list[tuple[int, int, int]]:
    """Split decodes sorted by context length into (start, end, width) groups whose padding
    to their own longest context stays small: a group closes when the next context is more
    than 1.5x the group's shortest (once it has min_group members)."""
    groups: list[tuple[int, int, int]] = []
    start = 0
    for i in range(1, len(context_lens) + 1):
        if i == len(context_lens) or (
            i - start >= min_group and context_lens[i] > 1.5 * context_lens[start]
        ):
            groups.append((start, i, context_lens[i - 1]))
            start = i
    return groups


class ModelRunner:
    """cuda_graph_sizes: decode-only steps of up to the largest size run padded through
    DecodeGraphs (needs a model with TritonOps and max_model_len), replayed from CUDA graphs on
    CUDA; on other devices the same padded path runs eagerly (the CPU tests use that)."""

    def __init__(
        self,
        model: LlamaForCausalLM,
        num_blocks: int,
        block_size: int,
        *,
        device: torch.device,
        dtype: torch.dtype,
        kv_cache_int8: bool = False,
        cuda_graph_sizes: Seq[int] = (),
        max_model_len: int = 0,
    ):
        self.model = model
        self.block_size = block_size
        self.device = device
        self.dtype = dtype
        self.kv_cache = KVCache(
            model.config,
            num_blocks,
            block_size,
            dtype=dtype,
            quantized=kv_cache_int8,
            device=device,
        )
        self._offsets = torch.arange(block_size, device=device)
        self.graphs: DecodeGraphs | None = None
        if cuda_graph_sizes:
            assert max_model_len > 0, "CUDA graphs size their block tables by max_model_len"
            self.graphs = DecodeGraphs(
                model,
                self.kv_cache,
                block_size=block_size,
                max_model_len=max_model_len,
                sizes=cuda_graph_sizes,
                device=device,
            )
            if device.type == "cuda":
                with torch.inference_mode():
                    self.graphs.capture()

    @torch.inference_mode()
    def copy_blocks(self, copies: Seq[tuple[int, int]]) -> None:
        self.kv_cache.copy_blocks(copies)

    @torch.inference_mode()
    def execute(
        self, seqs: Seq[Sequence], num_new_tokens: Seq[int]
    ) -> tuple[list[int], torch.Tensor]:
        """Compute the step; returns (indices into seqs that need a token, their logits)."""
        decodes = [i for i, n in enumerate(num_new_tokens) if n == 1]
        # Shortest context first, so attention can take decodes in groups of similar length.
        decodes.sort(key=lambda i: seqs[i].num_computed_tokens)
        prefills = [i for i, n in enumerate(num_new_tokens) if n > 1]
        input_ids: list[int] = []
        positions: list[int] = []
        slots: list[int] = []
        sample_rows: list[int] = []
        sample_seqs: list[int] = []
        bs = self.block_size
        for i in decodes + prefills:
            seq, n = seqs[i], num_new_tokens[i]
            start, table = seq.num_computed_tokens, seq.block_table
            input_ids.extend(seq.token_ids[start : start + n])
            positions.extend(range(start, start + n))
            slots.extend(table[p // bs] * bs + p % bs for p in range(start, start + n))
            if start + n == seq.num_tokens:
                sample_rows.append(len(input_ids) - 1)
                sample_seqs.append(i)
        model, cache, graphs = self.model, self.kv_cache, self.graphs
        decoded = [seqs[i] for i in decodes]
        prefilled = [(seqs[i], num_new_tokens[i]) for i in prefills]
        if graphs is not None and not prefills and len(decodes) <= graphs.largest:
            lens = [s.num_computed_tokens + 1 for s in decoded]
            tables = [s.block_table for s in decoded]
            hidden = graphs.run(DecodeInputs(input_ids, positions, slots, lens, tables))
        else:
            meta = AttentionMetadata(slot_mapping=self._tensor(slots))
            if model.ops.reads_block_tables:
                self._block_table_metadata(meta, decoded, prefilled)
            else:
                self._slot_metadata(meta, decoded, prefilled)
            ids, pos = self._tensor(input_ids), self._tensor(positions)
            hidden = model(ids, pos, cache.values, meta, cache.scales)
        logits = model.compute_logits(hidden[self._tensor(sample_rows)])
        return sample_seqs, logits.float()

    def _slot_metadata(
        self,
        meta: AttentionMetadata,
        decoded: list[Sequence],
        prefilled: list[tuple[Sequence, int]],
    ) -> None:
        """For PagedAttention: the slots each row reads and additive masks."""
        if decoded:
            self._decode_metadata(meta, decoded)
        offset = len(decoded)
        for seq, n in prefilled:
            meta.prefills.append(self._prefill_span(seq, offset, n))
            offset += n

    def _block_table_metadata(
        self,
        meta: AttentionMetadata,
        decoded: list[Sequence],
        prefilled: list[tuple[Sequence, int]],
    ) -> None:
        """For the Triton kernels: block tables, context lengths and query starts."""
        meta.block_size = self.block_size
        if decoded:
            lens = [s.num_computed_tokens + 1 for s in decoded]
            meta.num_decodes = len(decoded)
            meta.decode_block_tables = self._tables([s.block_table for s in decoded])
            meta.decode_context_lens = self._int32(lens)
            meta.decode_max_context = max(lens)
        if not prefilled:
            return
        starts = list(itertools.accumulate((n for _, n in prefilled), initial=0))
        offset = len(decoded)
        meta.prefills = [PrefillSpan(offset + a, offset + b) for a, b in itertools.pairwise(starts)]
        meta.prefill_block_tables = self._tables([s.block_table for s, _ in prefilled])
        meta.prefill_query_start = self._int32(starts)
        meta.prefill_context_lens = self._int32([s.num_computed_tokens + n for s, n in prefilled])
        meta.prefill_max_query_len = max(n for _, n in prefilled)

    def _tables(self, tables: list[list[int]]) -> torch.Tensor:
        width = max(1, max(len(t) for t in tables))
        return self._int32(padded_tables(tables, width))

    def _int32(self, values: list[int] | list[list[int]]) -> torch.Tensor:
        return torch.tensor(values, dtype=torch.int32, device=self.device)

    def _tensor(self, values: list[int]) -> torch.Tensor:
        return torch.tensor(values, dtype=torch.long, device=self.device)

    def _slots(self, table: torch.Tensor, context_len: int) -> torch.Tensor:
        # table: [..., blocks] -> slots of the first context_len positions: [..., context_len]
        slots = table.unsqueeze(-1) * self.block_size + self._offsets
        return slots.flatten(-2)[..., :context_len]

    def _decode_metadata(self, meta: AttentionMetadata, seqs: list[Sequence]) -> None:
        context_lens = [s.num_computed_tokens + 1 for s in seqs]
        width = max(len(s.block_table) for s in seqs)
        padded = [s.block_table + [0] * (width - len(s.block_table)) for s in seqs]
        tables = torch.tensor(padded, dtype=torch.long, device=self.device)
        longest = max(context_lens)
        meta.num_decodes = len(seqs)
        meta.decode_slots = self._slots(tables.view(len(seqs), width), longest)
        lens = self._tensor(context_lens)
        valid = torch.arange(longest, device=self.device)[None, :] < lens[:, None]
        meta.decode_mask = self._additive(valid).view(len(seqs), 1, 1, longest)
        meta.decode_groups = decode_groups(context_lens)

    def _prefill_span(self, seq: Sequence, offset: int, n: int) -> PrefillSpan:
        span = PrefillSpan(start=offset, end=offset + n)
        start = seq.num_computed_tokens
        if start == 0:
            return span
        context = start + n
        table = self._tensor(seq.block_table)
        span.context_slots = self._slots(table, context)
        keys = torch.arange(context, device=self.device)
        queries = torch.arange(start, context, device=self.device)
        span.mask = self._additive(keys[None, :] <= queries[:, None])
        return span

    def _additive(self, allowed: torch.Tensor) -> torch.Tensor:
        # SDPA would turn a boolean mask into this in every layer; do it once per step.
        mask = torch.zeros(allowed.shape, dtype=self.dtype, device=self.device)
        return mask.masked_fill_(~allowed, float("-inf"))
