"""OpenAI response objects for engine results: whole completions, stream chunks, usage, logprobs.

Bodies are orjson bytes; stream events are whole SSE events (`data: {...}\\n\\n`).
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import orjson

from backend.outputs import CompletionOutput, RequestOutput, TokenLogprob
from backend.serving.protocol import EngineRequest

if TYPE_CHECKING:
    from backend.tokenizer import Tokenizer

DONE_EVENT = b"data: [DONE]\n\n"
# What OpenAI-compatible servers send for a logprob of -inf (a token the sampler ruled out):
# JSON has no infinity.
MIN_LOGPROB = -9999.0


def sse_event(payload: dict[str, Any]) -> bytes:
    return b"data: " + orjson.dumps(payload) + b"\n\n"


class TokenTexts:
    """Token id -> (text, UTF-8 bytes) as logprobs show them; exact bytes for byte-level BPE."""

    __slots__ = ("_byte_level", "_cache", "_tokenizer")

    def __init__(self, tokenizer: Tokenizer) -> None:
        self._tokenizer = tokenizer
        backend = getattr(tokenizer.hf, "backend_tokenizer", None)
        decoder = getattr(backend, "decoder", None)
        self._byte_level = type(decoder).__name__ == "ByteLevel"
        self._cache: dict[int, tuple[str, list[int]]] = {}

    def __call__(self, token_id: int) -> tuple[str, list[int]]:
        known = self._cache.get(token_id)
        if known is not None:
            return known
        raw: bytes | None = None
        if self._byte_level:
            # A byte-level token is a string of stand-in characters, one per byte; a token that
            # holds only part of a UTF-8 character has no text of its own, but exact bytes.
            piece = self._tokenizer.hf.convert_ids_to_tokens(token_id)
            if isinstance(piece, str) and all(c in _BYTE_OF_CHAR for c in piece):
                raw = bytes(_BYTE_OF_CHAR[c] for c in piece)
        if raw is None:
            raw = self._tokenizer.decode([token_id], skip_special_tokens=False).encode()
        entry = (raw.decode("utf-8", errors="replace"), list(raw))
        self._cache[token_id] = entry
        return entry


def _byte_of_char() -> dict[str, int]:
    """GPT-2's bytes_to_unicode, inverted: the byte each stand-in character means."""
    printable = [*range(33, 127), *range(161, 173), *range(174, 256)]
    chars = list(printable)
    extra = 0
    for byte in range(256):
        if byte not in printable:
            printable.append(byte)
            chars.append(256 + extra)
            extra += 1
    return {chr(c): b for b, c in zip(printable, chars, strict=True)}


_BYTE_OF_CHAR = _byte_of_char()


def _finite(logprob: float) -> float:
    return logprob if math.isfinite(logprob) else MIN_LOGPROB


class ResponseWriter:
    """The OpenAI objects of one request: its id, `created`, model name and output shape."""

    def __init__(
        self, request: EngineRequest, request_id: str, model: str, texts: TokenTexts
    ) -> None:
        self.request = request
        self.chat = request.kind == "chat"
        self.id = ("chatcmpl-" if self.chat else "cmpl-") + request_id
        self.created = int(time.time())
        self.model = model
        self.texts = texts
        self.logprobs = request.params.logprobs is not None
        # completions: where each choice's next token starts in its text (logprobs.text_offset).
        start = len(request.prompt_text) if request.echo else 0
        self._offsets = [start] * request.params.n

    # ---- whole answers -----------------------------------------------------------------------

    def whole(self, outputs: Sequence[CompletionOutput], num_cached_tokens: int) -> bytes:
        choices = [self._choice(out) for out in outputs]
        completion_tokens = sum(len(out.token_ids) for out in outputs)
        return orjson.dumps(
            {
                "id": self.id,
                "object": "chat.completion" if self.chat else "text_completion",
                "created": self.created,
                "model": self.model,
                "choices": choices,
                "usage": self.usage(completion_tokens, num_cached_tokens),
            }
        )

    def _choice(self, out: CompletionOutput) -> dict[str, Any]:
        logprobs = self._logprobs(out.index, out.logprobs or []) if self.logprobs else None
        choice: dict[str, Any] = {"index": out.index}
        if self.chat:
            choice["message"] = {"role": "assistant", "content": out.text, "refusal": None}
        else:
            echo = self.request.prompt_text if self.request.echo else ""
            choice["text"] = echo + out.text
        choice["logprobs"] = logprobs
        choice["finish_reason"] = out.finish_reason
        choice["stop_reason"] = out.stop_reason
        return choice

    def usage(self, completion_tokens: int, num_cached_tokens: int) -> dict[str, Any]:
        prompt_tokens = len(self.request.prompt_token_ids)
        return {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
            "prompt_tokens_details": {"cached_tokens": num_cached_tokens},
        }

    # ---- streams -----------------------------------------------------------------------------

    def first_events(self) -> bytes:
        """What a stream starts with before any token: chat's role deltas, completions' echo."""
        if self.chat:
            delta: dict[str, Any] = {"role": "assistant", "content": ""}
            return b"".join(self._chunk(i, delta, None, None) for i in range(self.request.params.n))
        if self.request.echo:
            text = self.request.prompt_text
            return b"".join(
                self._chunk(i, {"text": text}, None, None) for i in range(self.request.params.n)
            )
        return b""

    def delta_events(self, output: RequestOutput) -> bytes:
        """One chunk per choice that has news: text, logprobs or its finish reason."""
        events = []
        for delta in output.deltas:
            if not delta.text and not delta.logprobs and delta.finish_reason is None:
                continue  # text held back (a possible stop string, half a character)
            logprobs = None
            if self.logprobs and delta.logprobs is not None:
                logprobs = self._logprobs(delta.index, delta.logprobs)
            body = {"content": delta.text} if self.chat else {"text": delta.text}
            events.append(self._chunk(delta.index, body, logprobs, delta.finish_reason))
        return b"".join(events)

    def usage_event(self, completion_tokens: int, num_cached_tokens: int) -> bytes:
        return sse_event(
            {
                "id": self.id,
                "object": "chat.completion.chunk" if self.chat else "text_completion",
                "created": self.created,
                "model": self.model,
                "choices": [],
                "usage": self.usage(completion_tokens, num_cached_tokens),
            }
        )

    def _chunk(
        self,
        index: int,
        body: dict[str, Any],
        logprobs: dict[str, Any] | None,
        finish_reason: str | None,
    ) -> bytes:
        choice: dict[str, Any] = {"index": index}
        if self.chat:
            choice["delta"] = body
        else:
            choice.update(body)
        choice["logprobs"] = logprobs
        choice["finish_reason"] = finish_reason
        chunk: dict[str, Any] = {
            "id": self.id,
            "object": "chat.completion.chunk" if self.chat else "text_completion",
            "created": self.created,
            "model": self.model,
            "choices": [choice],
        }
        if self.request.include_usage:
            chunk["usage"] = None  # as OpenAI: every chunk but the last carries usage: null
        return sse_event(chunk)

    # ---- logprobs ----------------------------------------------------------------------------

    def _logprobs(self, index: int, logprobs: Sequence[TokenLogprob]) -> dict[str, Any]:
        if self.chat:
            return {"content": [self._chat_entry(lp) for lp in logprobs], "refusal": None}
        tokens, values, tops, offsets = [], [], [], []
        offset = self._offsets[index]
        for lp in logprobs:
            token = self.texts(lp.token_id)[0]
            tokens.append(token)
            values.append(_finite(lp.logprob))
            tops.append({self.texts(t)[0]: _finite(v) for t, v in lp.top})
            offsets.append(offset)
            offset += len(token)
        self._offsets[index] = offset
        return {
            "tokens": tokens,
            "token_logprobs": values,
            "top_logprobs": tops,
            "text_offset": offsets,
        }

    def _chat_entry(self, lp: TokenLogprob) -> dict[str, Any]:
        token, raw = self.texts(lp.token_id)
        top = []
        for token_id, value in lp.top:
            alt, alt_raw = self.texts(token_id)
            top.append({"token": alt, "logprob": _finite(value), "bytes": alt_raw})
        return {"token": token, "logprob": _finite(lp.logprob), "bytes": raw, "top_logprobs": top}
