"""The engine loop: requests in, one scheduled step at a time through the model, deltas out.

Single-threaded by design: `step()` is called by `LLM` or by `AsyncEngine`'s worker thread.
"""

from __future__ import annotations

import itertools
import logging
import time
from collections.abc import Sequence as Seq

import torch

from backend.block_manager import BlockManager
from backend.cuda_graphs import capture_sizes
from backend.engine_config import EngineConfig
from backend.engine_metrics import EngineStats
from backend.kv_cache import kv_bytes_per_block
from backend.model_config import ModelConfig, read_model_config
from backend.model_files import iter_weights, resolve_model
from backend.model_ops import model_ops
from backend.model_runner import ModelRunner
from backend.models.llama import LlamaForCausalLM
from backend.outputs import CompletionDelta, EngineInputError, RequestOutput, TokenLogprob
from backend.quant import quantize_linear_weights
from backend.request_state import RequestState, SeqState
from backend.sampler import Sampler, SampleResult, SampleRow
from backend.sampling_params import SamplingParams
from backend.scheduler import Scheduler, SchedulerConfig
from backend.sequence import Sequence
from backend.tokenizer import Tokenizer

log = logging.getLogger("sluicegate.engine")


class LLMEngine:
    def __init__(self, config: EngineConfig | None = None, *, progress: bool = True):
        self.config = config = config or EngineConfig()
        config.apply_threads()
        self.device = config.torch_device()
        # Resolved before anything loads: a kernels setting that cannot run fails fast.
        self.kernels = config.resolved_kernels(self.device)
        graph_sizes = (
            capture_sizes(config.max_num_seqs) if config.uses_cuda_graphs(self.device) else []
        )
        folder = resolve_model(config.model, progress=progress)
        self.model_config = model_config = read_model_config(folder)
        self.tokenizer = Tokenizer.from_folder(folder)
        self.eos_ids = frozenset(model_config.eos_token_ids) | frozenset(
            self.tokenizer.eos_token_ids
        )
        # The weights first: on a GPU the pool takes a share of the memory left after them.
        self.model = self._load_model(folder, model_config)
        num_blocks = self._num_blocks(model_config)
        pool_tokens = num_blocks * config.block_size
        limit = config.max_model_len or model_config.max_position_embeddings
        self.max_model_len = min(limit, model_config.max_position_embeddings, pool_tokens)
        if self.max_model_len < limit:
            log.warning("max_model_len clipped to %d: the KV pool holds no more", pool_tokens)
        self.runner = ModelRunner(
            self.model,
            num_blocks,
            config.block_size,
            device=self.device,
            dtype=config.torch_dtype,
            kv_cache_int8=config.kv_cache_int8,
            cuda_graph_sizes=graph_sizes,
            max_model_len=self.max_model_len,
        )
        log.info(
            "kernels: %s; decode CUDA graphs: %s",
            self.kernels,
            ", ".join(map(str, graph_sizes)) if graph_sizes else "off",
        )
        self.block_manager = BlockManager(
            num_blocks, config.block_size, enable_prefix_caching=config.enable_prefix_caching
        )
        self.scheduler = Scheduler(
            SchedulerConfig(
                max_num_seqs=config.max_num_seqs,
                max_num_batched_tokens=max(config.max_num_batched_tokens, config.block_size),
                enable_chunked_prefill=config.enable_chunked_prefill,
            ),
            self.block_manager,
        )
        self.sampler = Sampler(config.seed)
        self.stats = EngineStats(config.model)
        self._requests: dict[str, RequestState] = {}
        self._seq_ids = itertools.count()

    # ---- setup -------------------------------------------------------------------------------

    def _num_blocks(self, model_config: ModelConfig) -> int:
        cfg = self.config
        per_block = kv_bytes_per_block(
            model_config, cfg.block_size, cfg.torch_dtype, quantized=cfg.kv_cache_int8
        )
        pool_bytes = cfg.kv_cache_bytes(self.device)
        num_blocks = max(1, pool_bytes // per_block)
        log.info(
            "KV cache: %d blocks of %d tokens (%d tokens) in %.3f GiB, %s, %d bytes per block",
            num_blocks,
            cfg.block_size,
            num_blocks * cfg.block_size,
            pool_bytes / 2**30,
            "int8 + float32 scales" if cfg.kv_cache_int8 else cfg.dtype,
            per_block,
        )
        return num_blocks

    def _load_model(self, folder: object, model_config: ModelConfig) -> LlamaForCausalLM:
        with torch.device("meta"):
            model = LlamaForCausalLM(
                model_config, model_config.max_position_embeddings, model_ops(self.kernels)
            )
        model = model.to_empty(device=self.device).to(self.config.torch_dtype)
        # The rope tables were built on meta along with the rest: build them for real.
        model.reset_rope(model_config.max_position_embeddings)
        if model_config.tie_word_embeddings:
            model.lm_head.weight = model.embed_tokens.weight
        model.load_weights(iter_weights(folder))  # type: ignore[arg-type]
        if self.config.weights == "int8":
            replaced = quantize_linear_weights(model, triton=self.kernels == "triton")
            log.info("weights: %d linear layers quantized to int8 (lm_head kept)", replaced)
        return model.eval()

    # ---- requests ----------------------------------------------------------------------------

    def add_request(
        self,
        request_id: str,
        prompt_token_ids: Seq[int],
        params: SamplingParams,
        *,
        priority: int = 0,
        arrival_s: float | None = None,
    ) -> None:
        """Queue a request; raises EngineInputError for one that cannot run."""
        if request_id in self._requests:
            raise EngineInputError(f"request id {request_id!r} is already running", "request_id")
        prompt = self._check_prompt(prompt_token_ids)
        room = self.max_model_len - len(prompt)
        # Documented: max_tokens beyond the context is clipped to what fits (finish "length").
        max_tokens = room if params.max_tokens is None else min(params.max_tokens, room)
        now = time.monotonic() if arrival_s is None else arrival_s
        request = RequestState(request_id, prompt, params, now, forks_pending=params.n > 1)
        seq = self._new_sequence(request, 0, list(prompt), max_tokens, priority)
        self._requests[request_id] = request
        self.scheduler.add(seq)
        self.stats.prompt_tokens += len(prompt)

    def check_request(self, prompt_token_ids: Seq[int], request_id: str) -> list[int]:
        """The checks add_request makes, callable from another thread before queueing."""
        if request_id in self._requests:
            raise EngineInputError(f"request id {request_id!r} is already running", "request_id")
        return self._check_prompt(prompt_token_ids)

    def _check_prompt(self, prompt_token_ids: Seq[int]) -> list[int]:
        prompt = list(prompt_token_ids)
        if not prompt:
            raise EngineInputError("the prompt is empty: send at least one token", "prompt")
        vocab = self.model_config.vocab_size
        if any(not isinstance(t, int) or not 0 <= t < vocab for t in prompt):
            raise EngineInputError(f"prompt token ids must be in [0, {vocab})", "prompt")
        if len(prompt) >= self.max_model_len:
            raise EngineInputError(
                f"the prompt has {len(prompt)} tokens but this model's context is "
                f"{self.max_model_len} tokens (prompt and output together); shorten the prompt",
                "messages",
            )
        return prompt

    def _new_sequence(
        self, request: RequestState, index: int, tokens: list[int], max_tokens: int, priority: int
    ) -> Sequence:
        seed = request.params.seed
        generator = None if seed is None else self.sampler.generator_for(seed, index)
        seq = Sequence(
            seq_id=next(self._seq_ids),
            request_id=request.request_id,
            token_ids=tokens,
            num_prompt_tokens=len(request.prompt_token_ids),
            max_tokens=max_tokens,
            priority=priority,
            arrival_s=request.arrival_s,
        )
        seq.state = SeqState(
            request, index, self.tokenizer, self.eos_ids, generator, self.max_model_len
        )
        request.seqs.append(seq)
        return seq

    def abort_request(self, request_id: str) -> RequestOutput | None:
        """Stop a request wherever it is; its blocks are free when this returns."""
        request = self._requests.pop(request_id, None)
        if request is None:
            return None
        deltas = []
        for seq in request.seqs:
            if not seq.is_finished:
                self.scheduler.finish(seq)
                deltas.append(seq.state.abort())
        self.stats.finished(request, "abort")
        return RequestOutput(request_id, request.prompt_token_ids, deltas, True)

    def has_unfinished(self) -> bool:
        return self.scheduler.has_unfinished()

    @property
    def num_requests(self) -> int:
        return len(self._requests)

    # ---- one step ----------------------------------------------------------------------------

    def step(self) -> list[RequestOutput]:
        batch = self.scheduler.schedule()
        if batch.is_empty:
            return []
        if batch.copies:
            self.runner.copy_blocks(batch.copies)
        self.stats.preemptions += len(batch.preempted)
        indices, logits = self.runner.execute(batch.seqs, batch.num_new_tokens)
        self.scheduler.advance(batch)
        seqs = [batch.seqs[i] for i in indices]
        seqs, rows = self._expand_forks(seqs)
        if len(rows) != logits.shape[0]:
            logits = logits[torch.tensor(rows, device=logits.device)]
        result = self.sampler(logits, [self._sample_row(seq) for seq in seqs])
        return self._process(seqs, result)

    def _expand_forks(self, seqs: list[Sequence]) -> tuple[list[Sequence], list[int]]:
        """n > 1: a prompt that just finished its prefill becomes n sequences sharing blocks."""
        out: list[Sequence] = []
        rows: list[int] = []
        for row, seq in enumerate(seqs):
            out.append(seq)
            rows.append(row)
            request: RequestState = seq.state.request
            if not request.forks_pending:
                continue
            request.forks_pending = False
            for index in range(1, request.params.n):
                child = self._new_sequence(
                    request, index, list(seq.token_ids), seq.max_tokens, seq.priority
                )
                self.block_manager.fork(seq, child)
                self.scheduler.add_running(child)
                out.append(child)
                rows.append(row)
        return out, rows

    def _sample_row(self, seq: Sequence) -> SampleRow:
        state: SeqState = seq.state
        params = state.request.params
        # Only penalties read the token histories: copying them every step for every
        # sequence would cost O(context) per row on the hot path for nothing.
        prompt, output = (
            (seq.token_ids[: seq.num_prompt_tokens], seq.output_token_ids)
            if params.has_penalties
            else ((), ())
        )
        return SampleRow(
            params=params,
            generator=state.generator,
            prompt_token_ids=prompt,
            output_token_ids=output,
            suppress_token_ids=state.suppressed(seq),
        )

    def _process(self, seqs: list[Sequence], result: SampleResult) -> list[RequestOutput]:
        now = time.monotonic()
        by_request: dict[str, list[CompletionDelta]] = {}
        for i, seq in enumerate(seqs):
            state: SeqState = seq.state
            request = state.request
            logprob = _logprob(result, i) if state.logprobs is not None else None
            delta = state.append(seq, result.token_ids[i], logprob)
            self.stats.token(request, now)
            if delta.finish_reason is not None:
                self.scheduler.finish(seq)
                request.num_finished += 1
            by_request.setdefault(request.request_id, []).append(delta)
        outputs = []
        for request_id, deltas in by_request.items():
            request = self._requests[request_id]
            if request.finished:
                del self._requests[request_id]
                self.stats.finished(request, deltas[-1].finish_reason or "stop")
            first = request.seqs[0]
            outputs.append(
                RequestOutput(
                    request_id,
                    request.prompt_token_ids,
                    deltas,
                    request.finished,
                    first.num_cached_tokens,
                )
            )
        return outputs

    # ---- introspection (metrics) -------------------------------------------------------------

    def snapshot(self) -> dict[str, float]:
        bm = self.block_manager
        return {
            "num_requests_running": self.scheduler.num_running,
            "num_requests_waiting": self.scheduler.num_waiting,
            "kv_cache_usage_perc": bm.usage,
            "num_free_blocks": bm.num_free_blocks,
            "prefix_cache_queries": bm.stats.queries_tokens,
            "prefix_cache_hits": bm.stats.hits_tokens,
        }


def _logprob(result: SampleResult, i: int) -> TokenLogprob | None:
    if result.logprobs is None:
        return None
    top = result.top_logprobs[i] if result.top_logprobs is not None else []
    return TokenLogprob(result.token_ids[i], result.logprobs[i], top)
