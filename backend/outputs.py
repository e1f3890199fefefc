"""What the engine hands back: per-step deltas for streaming, and whole completions.

Small slotted records; the engine emits deltas only, `LLM` and the servers accumulate them.
"""

from __future__ import annotations

from dataclasses import dataclass, field


class EngineInputError(ValueError):
    """A request the engine cannot run; `param` names the offending field (HTTP 400)."""

    def __init__(self, message: str, param: str | None = None):
        super().__init__(message)
        self.param = param


@dataclass(slots=True)
class TokenLogprob:
    token_id: int
    logprob: float
    # The most likely alternatives, (token id, logprob), best first.
    top: list[tuple[int, float]] = field(default_factory=list)


@dataclass(slots=True)
class CompletionDelta:
    """What one of a request's n sequences produced since the last output."""

    index: int
    text: str
    token_ids: list[int]
    logprobs: list[TokenLogprob] | None = None
    finish_reason: str | None = None  # "stop" | "length" | "abort"
    stop_reason: str | int | None = None  # the stop string or token id that ended it


@dataclass(slots=True)
class RequestOutput:
    request_id: str
    prompt_token_ids: list[int]
    deltas: list[CompletionDelta]
    finished: bool
    num_cached_tokens: int = 0


@dataclass(slots=True)
class CompletionOutput:
    """One whole completion, as `LLM.generate` returns it."""

    index: int
    text: str = ""
    token_ids: list[int] = field(default_factory=list)
    logprobs: list[TokenLogprob] | None = None
    finish_reason: str | None = None
    stop_reason: str | int | None = None

    def add(self, delta: CompletionDelta) -> None:
        self.text += delta.text
        self.token_ids.extend(delta.token_ids)
        if delta.logprobs is not None:
            self.logprobs = (self.logprobs or []) + delta.logprobs
        if delta.finish_reason is not None:
            self.finish_reason, self.stop_reason = delta.finish_reason, delta.stop_reason


@dataclass(slots=True)
class GenerationResult:
    """One request's result: `outputs[0].text` etc.; len(outputs) == n."""

    request_id: str
    prompt_token_ids: list[int]
    outputs: list[CompletionOutput]
    num_cached_tokens: int = 0

    @property
    def text(self) -> str:
        return self.outputs[0].text

    @property
    def token_ids(self) -> list[int]:
        return self.outputs[0].token_ids

    @property
    def finish_reason(self) -> str | None:
        return self.outputs[0].finish_reason

    def add(self, output: RequestOutput) -> None:
        self.num_cached_tokens = output.num_cached_tokens
        for delta in output.deltas:
            self.outputs[delta.index].add(delta)
