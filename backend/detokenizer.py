"""Turns generated token ids into text deltas for streaming, one token at a time.

Never emits half a UTF-8 character; each step decodes only a short window of recent tokens.
"""

from __future__ import annotations

from collections.abc import Sequence

from backend.tokenizer import Tokenizer

REPLACEMENT_CHAR = "\ufffd"
# Prompt tokens decoded ahead of the first output token, so that decoders which treat the start
# of a text specially (SentencePiece drops the leading space) see the output in context.
PROMPT_CONTEXT_TOKENS = 5
# The window only grows while its text ends in U+FFFD: a character whose other bytes are still to
# come, or bytes that will never be valid. Past this many held tokens the text is flushed as it
# stands, so the cost of a step stays bounded even for a model forced (logit_bias) to emit stray
# bytes. Real text needs this many tokens in a row to each end inside a character to reach it.
MAX_HELD_TOKENS = 32


class IncrementalDetokenizer:
    """Text deltas of one sequence's output, by the prefix-offset / read-offset technique.

    The window holds the tokens from `prefix_offset` on: those before `read_offset` were emitted
    already and give context; the rest are new. Each step decodes the window and emits what the
    previous decode lacked, except a trailing run of U+FFFD, which may be a character whose last
    bytes are in tokens still to come. Once the window's text ends in a whole character, its new
    tokens become the next window's context. Concatenated deltas plus `finish()` equal
    `tokenizer.decode(output_ids)` unless more than MAX_HELD_TOKENS tokens in a row end inside a
    character, with one deliberate difference: a decoder that drops the leading space of a text
    (SentencePiece) sees the prompt first, so the output keeps the space that follows the prompt.
    """

    __slots__ = (
        "_prefix_len",
        "_read_offset",
        "_sent_len",
        "_skip_ids",
        "_skip_special_tokens",
        "_text",
        "_tokenizer",
        "_window",
    )

    def __init__(
        self,
        tokenizer: Tokenizer,
        prompt_token_ids: Sequence[int],
        *,
        skip_special_tokens: bool = True,
    ) -> None:
        self._tokenizer = tokenizer
        self._skip_special_tokens = skip_special_tokens
        # Skipped tokens add nothing to any decode, so they never enter the window at all.
        self._skip_ids = tokenizer.special_token_ids if skip_special_tokens else frozenset()
        tail = prompt_token_ids[-4 * PROMPT_CONTEXT_TOKENS :]
        context = [t for t in tail if t not in self._skip_ids][-PROMPT_CONTEXT_TOKENS:]
        self._window: list[int] = context  # the token ids from prefix_offset on
        self._read_offset = len(context)  # index into the window
        self._prefix_len: int | None = None  # len(decode(window[:read_offset])), lazily
        self._sent_len = 0  # characters of the window's text emitted past the prefix
        self._text = ""

    @property
    def text(self) -> str:
        """All output text emitted so far (the concatenation of the returned deltas)."""
        return self._text

    def add(self, token_id: int) -> str:
        """Take the next output token; return the text it completes ("" while held back)."""
        if token_id in self._skip_ids:
            return ""
        self._window.append(token_id)
        start = self._prefix() + self._sent_len
        new_text = self._decode(self._window)
        if not new_text.endswith(REPLACEMENT_CHAR):
            return self._advance(new_text[start:])
        if len(self._window) - self._read_offset > MAX_HELD_TOKENS:
            return self._advance(new_text[start:])
        # Everything before the trailing U+FFFD run is whole characters and will not change.
        delta = new_text[start : len(new_text.rstrip(REPLACEMENT_CHAR))]
        self._sent_len += len(delta)
        self._text += delta
        return delta

    def finish(self) -> str:
        """Flush text held back at the end of the output (an unfinished character as U+FFFD)."""
        if len(self._window) == self._read_offset:
            return ""
        start = self._prefix() + self._sent_len
        return self._advance(self._decode(self._window)[start:])

    def _advance(self, delta: str) -> str:
        # The window's text ends in a whole character: its new tokens become the next context.
        del self._window[: self._read_offset]
        self._read_offset = len(self._window)
        self._prefix_len = None
        self._sent_len = 0
        self._text += delta
        return delta

    def _prefix(self) -> int:
        if self._prefix_len is None:
            self._prefix_len = len(self._decode(self._window[: self._read_offset]))
        return self._prefix_len

    def _decode(self, token_ids: list[int]) -> str:
        return self._tokenizer.decode(token_ids, skip_special_tokens=self._skip_special_tokens)
