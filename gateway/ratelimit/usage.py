"""Token counts for limits: a fast estimate of the prompt before the call, the real usage after.

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


def usage_total(payload: Any) -> int | None:
    """total_tokens of an OpenAI `usage` object inside `payload`, if there is one."""
    usage = payload.get("usage") if isinstance(payload, dict) else None
    if not isinstance(usage, dict):
        return None
    total = usage.get("total_tokens")
    if isinstance(total, int):
        return total
    parts = [usage.get("prompt_tokens"), usage.get("completion_tokens")]
    return sum(p for p in parts if isinstance(p, int)) or None


def usage_of_body(body: bytes) -> int | None:
    try:
        return usage_total(orjson.loads(body))
    except orjson.JSONDecodeError:
        return None


class StreamUsage:
    """Reads usage out of the relayed SSE events; drops the usage-only chunk when the gateway,
    not the client, asked the upstream for it (`stream_options.include_usage`)."""

    __slots__ = ("events", "strip", "total")

    def __init__(self, strip: bool) -> None:
        self.strip = strip
        self.total: int | None = None
        self.events = 0

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
                total = usage_total(payload)
                if total is not None:
                    self.total = total
                    if self.strip and isinstance(payload, dict) and payload.get("choices") == []:
                        continue
            kept.append(event)
        return b"\n\n".join(kept)

    def estimate(self, prompt_tokens: int) -> int:
        """Reported usage, or the prompt estimate plus one token per content event."""
        return self.total if self.total is not None else prompt_tokens + max(0, self.events - 2)
