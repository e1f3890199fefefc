"""Per-request bookkeeping between the scheduler's sequences and the caller's text.

Turns sampled tokens into text deltas (incremental detokenization, stop strings held back
until they cannot match any more) and decides when a sequence is finished.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from backend.detokenizer import IncrementalDetokenizer
from backend.outputs import CompletionDelta, TokenLogprob
from backend.sampling_params import SamplingParams
from backend.sequence import Sequence
from backend.stop import StopChecker
from backend.tokenizer import Tokenizer


@dataclass(slots=True)
class RequestState:
    request_id: str
    prompt_token_ids: list[int]
    params: SamplingParams
    arrival_s: float
    seqs: list[Sequence] = field(default_factory=list)
    # n > 1: the prompt is prefilled once, then forked into n sequences.
    forks_pending: bool = False
    first_token_s: float | None = None
    last_token_s: float | None = None
    num_finished: int = 0

    @property
    def finished(self) -> bool:
        return self.num_finished == self.params.n


class SeqState:
    """One sequence's decoding state: generator, detokenizer, stop strings, unsent text."""

    __slots__ = (
        "detokenizer",
        "eos_ids",
        "finish_reason",
        "generator",
        "index",
        "logprobs",
        "max_model_len",
        "request",
        "sent_chars",
        "stop",
        "stop_reason",
        "text",
    )

    def __init__(
        self,
        request: RequestState,
        index: int,
        tokenizer: Tokenizer,
        eos_ids: frozenset[int],
        generator: torch.Generator | None,
        max_model_len: int,
    ):
        params = request.params
        self.request = request
        self.index = index
        self.generator = generator
        self.eos_ids = frozenset() if params.ignore_eos else eos_ids
        self.detokenizer = IncrementalDetokenizer(
            tokenizer, request.prompt_token_ids, skip_special_tokens=params.skip_special_tokens
        )
        self.stop = (
            StopChecker(params.stop, include_in_output=params.include_stop_str_in_output)
            if params.stop
            else None
        )
        self.max_model_len = max_model_len
        self.text = ""
        self.sent_chars = 0
        self.logprobs: list[TokenLogprob] | None = [] if params.logprobs is not None else None
        self.finish_reason: str | None = None
        self.stop_reason: str | int | None = None

    def suppressed(self, seq: Sequence) -> tuple[int, ...]:
        """Tokens that may not end the sequence yet (min_tokens)."""
        params = self.request.params
        if seq.num_output_tokens >= params.min_tokens:
            return ()
        return tuple(self.eos_ids) + tuple(params.stop_token_ids)

    def append(self, seq: Sequence, token_id: int, logprob: TokenLogprob | None) -> CompletionDelta:
        """Add a sampled token; returns what the caller may see now."""
        seq.token_ids.append(token_id)
        if logprob is not None and self.logprobs is not None:
            self.logprobs.append(logprob)
        new_text = self.detokenizer.add(token_id)
        self.text += new_text
        self._check_finished(seq, token_id, len(new_text))
        if self.finish_reason is not None and self.stop_reason is None:
            # Ended by eos or length: release what the detokenizer still holds back
            # (a character cut in half by the last token).
            self.text += self.detokenizer.finish()
        return self._delta(token_id, logprob)

    def abort(self) -> CompletionDelta:
        self.finish_reason = "abort"
        return self._delta(None, None)

    def _check_finished(self, seq: Sequence, token_id: int, new_chars: int) -> None:
        params = self.request.params
        if token_id in self.eos_ids:
            self.finish_reason = "stop"
        elif token_id in params.stop_token_ids:
            self.finish_reason, self.stop_reason = "stop", token_id
        elif self.stop is not None and (hit := self.stop.check(self.text, new_chars)):
            self.text = self.text[: hit.index]
            self.finish_reason, self.stop_reason = "stop", hit.stop
        elif seq.num_output_tokens >= seq.max_tokens or seq.num_tokens >= self.max_model_len:
            self.finish_reason = "length"

    def _delta(self, token_id: int | None, logprob: TokenLogprob | None) -> CompletionDelta:
        # While running, keep back the tail that could still turn out to start a stop string.
        end = len(self.text)
        if self.finish_reason is None and self.stop is not None:
            end = max(self.sent_chars, end - self.stop.holdback)
        text = self.text[self.sent_chars : end]
        self.sent_chars = end
        return CompletionDelta(
            index=self.index,
            text=text,
            token_ids=[] if token_id is None else [token_id],
            logprobs=None if logprob is None else [logprob],
            finish_reason=self.finish_reason,
            stop_reason=self.stop_reason,
        )
