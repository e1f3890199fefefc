"""One-off HTTP on 127.0.0.1: free ports, single requests and the pre-flight check.

The check sends one chat request through a target and says what, if anything, looks wrong.
"""

from __future__ import annotations

import http.client
import json
import socket
from collections.abc import Sequence

from overhead.request import CHAT_PATH


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def http_request(
    port: int,
    method: str,
    path: str,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
    timeout: float = 10.0,
) -> tuple[int, dict[str, str], bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        resp = conn.getresponse()
        data = resp.read()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, data
    finally:
        conn.close()


def check_endpoint(
    port: int,
    body: bytes,
    headers: dict[str, str],
    stream: bool,
    timeout: float = 15.0,
    require_headers: Sequence[str] = (),
) -> str | None:
    """One request through the full path. Returns None if it looks right, else a description."""
    try:
        status, hdrs, data = http_request(
            port, "POST", CHAT_PATH, body=body, headers=headers, timeout=timeout
        )
    except OSError as exc:
        return f"request failed: {exc}"
    snippet = data[:600].decode("utf-8", "replace")
    if status != 200:
        return f"HTTP {status}: {snippet}"
    for name in require_headers:
        if name.lower() not in hdrs:
            return f"response lacks the {name} header (headers: {sorted(hdrs)}): {snippet}"
    if stream:
        return _stream_problem(data, hdrs, snippet)
    try:
        obj = json.loads(data)
        obj["choices"][0]["message"]
    except (ValueError, KeyError, IndexError, TypeError):
        return f"not a chat.completion JSON body: {snippet}"
    return None


def _stream_problem(data: bytes, hdrs: dict[str, str], snippet: str) -> str | None:
    text = data.decode("utf-8", "replace")
    if "text/event-stream" not in hdrs.get("content-type", ""):
        ctype = hdrs.get("content-type")
        return f"expected text/event-stream, got content-type {ctype!r}: {snippet}"
    if "data: [DONE]" not in text or "chat.completion.chunk" not in text:
        return f"stream lacks chat.completion.chunk events or data: [DONE]: {snippet}"
    return None
