"""Token counts: a fast estimate of the prompt before the call, the real usage after.

The estimate is OpenAI's rule of thumb (about 4 bytes of text per token, a few tokens of framing
per message); the upstream's reported usage then corrects the charge, streams included.
"""

from __future__ import annotations

from typing import Any

import orjson
from pydantic import BaseModel

BYTES_PER_TOKEN = 4
TOKENS_PER_MESSAGE = 4


def estimate_prompt_tokens(request: BaseModel) -> int:
    messages = getattr(request, "messages", None)
    if messages is not None:
        size = 0
        for message in messages:
            content = message.content
            if isinstance(content, str):
                size += len(content)
            elif content:
                size += sum(len(getattr(part, "text", "") or "") for part in content)
        return size // BYTES_PER_TOKEN + TOKENS_PER_MESSAGE * len(messages) + 3
    text = getattr(request, "prompt", None)
    if text is None:
        text = getattr(request, "input", "")
    return _tokens_of(text)


def _tokens_of(value: Any) -> int:
    if isinstance(value, str):
        return len(value) // BYTES_PER_TOKEN + 1
    if isinstance(value, list) and value and isinstance(value[0], int):
        return len(value)  # already token ids
    if isinstance(value, list):
        return sum(_tokens_of(item) for item in value)
    return 1


def usage_object(payload: Any) -> dict[str, int] | None:
    """The token counts of an OpenAI `usage` object inside `payload`, if it has one."""
    usage = payload.get("usage") if isinstance(payload, dict) else None
    if not isinstance(usage, dict):
        return None
    counts = {
        name: usage[name]
        for name in ("prompt_tokens", "completion_tokens", "total_tokens")
        if isinstance(usage.get(name), int)
    }
    if "total_tokens" not in counts and counts:
        counts["total_tokens"] = counts.get("prompt_tokens", 0) + counts.get("completion_tokens", 0)
    return counts or None


def usage_total(usage: dict[str, int] | None) -> int | None:
    return usage.get("total_tokens") if usage else None


def usage_of_body(body: bytes) -> dict[str, int] | None:
    try:
        return usage_object(orjson.loads(body))
    except orjson.JSONDecodeError:
        return None


class StreamUsage:
    """Reads usage out of the relayed SSE events; drops the usage-only chunk when the gateway,
    not the client, asked the upstream for it (`stream_options.include_usage`)."""

    __slots__ = ("events", "strip", "usage")

    def __init__(self, strip: bool) -> None:
        self.strip = strip
        self.usage: dict[str, int] | None = None
        self.events = 0

    @property
    def total(self) -> int | None:
        return usage_total(self.usage)

    def feed(self, out: bytes) -> bytes:
        self.events += out.count(b"data: ")
        if b'"usage":{' not in out and b'"usage": {' not in out:
            return out
        kept = []
        for event in out.split(b"\n\n"):
            if event.startswith(b"data: {") and b'"usage"' in event:
                try:
                    payload = orjson.loads(event[6:])
                except orjson.JSONDecodeError:
                    payload = None
                usage = usage_object(payload)
                if usage is not None:
                    self.usage = usage
                    if self.strip and isinstance(payload, dict) and payload.get("choices") == []:
                        continue
            kept.append(event)
        return b"\n\n".join(kept)

    def estimate(self, prompt_tokens: int) -> int:
        """Reported usage, or the prompt estimate plus one token per content event."""
        return self.total if self.total is not None else prompt_tokens + max(0, self.events - 2)
