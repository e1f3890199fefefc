"""The gateway as the fuzz tests aim at it, and the contract every answer to a client must keep.

No 5xx for anything a client sends; every 4xx carries an OpenAI error body.
"""

from __future__ import annotations

import json

import pytest

from tests.conftest import ALICE_KEY

AUTH = {"Authorization": f"Bearer {ALICE_KEY}"}
KNOWN_MODEL = "gpt-echo"  # routed to the mock upstream's `echo` behaviour: 200 for valid requests
INFERENCE_PATHS = ["/v1/chat/completions", "/v1/completions", "/v1/embeddings"]
MAX_BODY_BYTES = 65536  # server.max_body_bytes in tests/conftest.py's policy


def assert_client_answer(status: int, content: bytes, what: str, method: str = "POST") -> None:
    """No 5xx, and every 4xx carries `{"error": {"message", "type", "param", "code"}}`."""
    assert status < 500, f"{what}: HTTP {status} for a client's input: {content[:500]!r}"
    if status < 400 or method == "HEAD":
        return
    try:
        payload = json.loads(content)
    except ValueError:
        pytest.fail(f"{what}: HTTP {status} with a non-JSON error body: {content[:500]!r}")
    error = payload.get("error") if isinstance(payload, dict) else None
    assert isinstance(error, dict), f"{what}: HTTP {status}, not an OpenAI error body: {payload!r}"
    assert isinstance(error.get("message"), str) and error["message"], f"{what}: {payload!r}"
    assert isinstance(error.get("type"), str), f"{what}: {payload!r}"
    assert "param" in error and (error["param"] is None or isinstance(error["param"], str)), payload
    assert "code" in error and (error["code"] is None or isinstance(error["code"], str)), payload
