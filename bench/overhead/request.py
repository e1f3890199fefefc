"""The chat-completion request every run sends, plain or streamed, and the bench key.

Its path, model and body; the load generator posts the same bytes over and over.
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any

MODEL = "mock-model"
CHAT_PATH = "/v1/chat/completions"
BASE_BODY: dict[str, Any] = {
    "model": MODEL,
    "messages": [{"role": "user", "content": "Say hello"}],
    "max_tokens": 16,
}


def chat_body(stream: bool) -> dict[str, Any]:
    """The request body, with "stream": true when streamed."""
    return dict(BASE_BODY, stream=True) if stream else dict(BASE_BODY)


def compact_body(stream: bool) -> bytes:
    """The body as the load generator sends it: compact JSON."""
    return json.dumps(chat_body(stream), separators=(",", ":")).encode()


def request_kind(stream: bool) -> str:
    """How labels, file names and the results name a request kind: stream or json."""
    return "stream" if stream else "json"


@dataclass(frozen=True)
class BenchRequests:
    """The bodies of this benchmark's request kinds, as bytes and as files, and its key."""

    key: str
    body_bytes: dict[bool, bytes]
    body_files: dict[bool, Path]

    @property
    def auth_header(self) -> str:
        """The header line the load generator sends."""
        return f"Authorization: Bearer {self.key}"

    @property
    def json_headers(self) -> dict[str, str]:
        """The headers of a pre-flight request."""
        return {"Authorization": f"Bearer {self.key}", "Content-Type": "application/json"}


def write_requests(streams: list[bool], workdir: Path) -> BenchRequests:
    """Write each kind's body into workdir, and make a fresh key."""
    body_bytes: dict[bool, bytes] = {}
    body_files: dict[bool, Path] = {}
    for s in streams:
        body_bytes[s] = compact_body(s)
        body_files[s] = workdir / f"body_{request_kind(s)}.json"
        body_files[s].write_bytes(body_bytes[s])
    # One key for both proxies; LiteLLM wants its master key to start with "sk-".
    key = "sk-bench-" + secrets.token_hex(16)
    return BenchRequests(key, body_bytes, body_files)
