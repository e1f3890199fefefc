"""Well-typed but hostile request bodies: each must get a client error, never a 5xx.

Huge numbers, deep nesting, invalid UTF-8, NaN/Infinity tokens, non-object bodies, bodies at and
over the size limit, lying content types; each POSTed to the module-wide gateway, and each answer
below 500 and, when it is an error, an OpenAI error body (with the exact status where it is pinned).
"""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from tests.support.fuzz_target import KNOWN_MODEL, MAX_BODY_BYTES, assert_client_answer


def _chat(**extra: Any) -> dict[str, Any]:
    return {"model": KNOWN_MODEL, "messages": [{"role": "user", "content": "hi"}], **extra}


def _raw_chat(tail: bytes) -> bytes:
    """A valid chat request with a raw (possibly non-standard) JSON member spliced in."""
    return b'{"model":"gpt-echo","messages":[{"role":"user","content":"hi"}],' + tail + b"}"


def _nested(depth: int) -> bytes:
    return b"[" * depth + b"]" * depth


def _nested_objects(depth: int) -> dict[str, Any]:
    value: dict[str, Any] = {}
    for _ in range(depth):
        value = {"q": value}
    return value


HUGE_INT = 10**40
LONG_DIGITS = b"9" * 4000  # still a Python int, but far beyond 64 bits and beyond a double
TOO_MANY_DIGITS = b"9" * 5000  # beyond Python's default int/str conversion limit


HOSTILE: list[tuple[str, str, bytes, dict[str, str], int | None]] = [
    # id, path, body, extra headers, expected status (None: anything below 500)
    ("empty-body", "/v1/chat/completions", b"", {}, 400),
    ("whitespace-body", "/v1/chat/completions", b"  \r\n\t ", {}, 400),
    ("top-level-array", "/v1/chat/completions", b"[1, 2, 3]", {}, 400),
    ("top-level-string", "/v1/completions", b'"hello"', {}, 400),
    ("top-level-number", "/v1/embeddings", b"42", {}, 400),
    ("top-level-null", "/v1/embeddings", b"null", {}, 400),
    ("top-level-true", "/v1/completions", b"true", {}, 400),
    (
        "invalid-utf8",
        "/v1/chat/completions",
        b'{"model":"gpt-echo","messages":[{"role":"user","content":"\xff\xfe\xc3"}]}',
        {},
        400,
    ),
    ("invalid-utf8-key", "/v1/chat/completions", _raw_chat(b'"\xc0\xaf":1'), {}, 400),
    (
        "lone-surrogate-escape",
        "/v1/completions",
        b'{"model":"gpt-echo","prompt":"\\ud800"}',
        {},
        400,
    ),
    ("utf8-bom", "/v1/completions", b'\xef\xbb\xbf{"model":"gpt-echo","prompt":"x"}', {}, 400),
    ("nul-after-document", "/v1/completions", b'{"model":"gpt-echo","prompt":"x"}\x00', {}, 400),
    ("trailing-garbage", "/v1/completions", b'{"model":"gpt-echo","prompt":"x"} {}', {}, 400),
    ("truncated-json", "/v1/completions", b'{"model":"gpt-echo","prompt":"x', {}, 400),
    (
        "duplicate-keys",
        "/v1/completions",
        b'{"model":"nope","prompt":"x","model":"gpt-echo"}',
        {},
        None,
    ),
    ("nan-known-field", "/v1/chat/completions", _raw_chat(b'"temperature":NaN'), {}, 400),
    ("infinity-known-field", "/v1/chat/completions", _raw_chat(b'"top_p":Infinity'), {}, 400),
    (
        "neg-infinity-known-field",
        "/v1/completions",
        b'{"model":"gpt-echo","prompt":"x","presence_penalty":-Infinity}',
        {},
        400,
    ),
    ("nan-unknown-field", "/v1/chat/completions", _raw_chat(b'"x_extra":NaN'), {}, 400),
    (
        "infinity-unknown-field",
        "/v1/completions",
        b'{"model":"gpt-echo","prompt":"x","x_extra":[Infinity,-Infinity]}',
        {},
        400,
    ),
    (
        "nan-unknown-field-and-bad-field",
        "/v1/completions",
        b'{"model":"gpt-echo","prompt":5,"x_extra":NaN}',
        {},
        400,
    ),
    (
        "nan-unknown-model",
        "/v1/chat/completions",
        b'{"model":"nope","messages":[{"role":"user","content":"hi"}],"x":NaN}',
        {},
        404,
    ),
    (
        "overflowing-float-unknown-field",
        "/v1/chat/completions",
        _raw_chat(b'"x_extra":1e400'),
        {},
        400,
    ),
    (
        "overflowing-float-known-field",
        "/v1/chat/completions",
        _raw_chat(b'"temperature":-1e400'),
        {},
        400,
    ),
    ("huge-int-n", "/v1/chat/completions", json.dumps(_chat(n=HUGE_INT)).encode(), {}, 400),
    (
        "huge-int-n-400-digits",
        "/v1/completions",
        b'{"model":"gpt-echo","prompt":"x","n":1' + b"0" * 400 + b"}",
        {},
        400,
    ),
    (
        "huge-int-max-tokens",
        "/v1/chat/completions",
        json.dumps(_chat(max_tokens=HUGE_INT)).encode(),
        {},
        None,
    ),
    (
        "huge-negative-seed",
        "/v1/chat/completions",
        json.dumps(_chat(seed=-HUGE_INT)).encode(),
        {},
        None,
    ),
    (
        "seed-2-pow-64",
        "/v1/completions",
        json.dumps({"model": KNOWN_MODEL, "prompt": "x", "seed": 2**64}).encode(),
        {},
        None,
    ),
    (
        "long-digit-int-unknown-field",
        "/v1/completions",
        b'{"model":"gpt-echo","prompt":"x","x_extra":' + LONG_DIGITS + b"}",
        {},
        400,
    ),
    (
        "long-digit-int-known-field",
        "/v1/completions",
        b'{"model":"gpt-echo","prompt":"x","best_of":' + LONG_DIGITS + b"}",
        {},
        400,
    ),
    (
        "too-many-digits",
        "/v1/completions",
        b'{"model":"gpt-echo","prompt":"x","x_extra":' + TOO_MANY_DIGITS + b"}",
        {},
        400,
    ),
    (
        "huge-float-temperature",
        "/v1/chat/completions",
        json.dumps(_chat(temperature=1.7e308)).encode(),
        {},
        400,
    ),
    (
        "huge-token-ids",
        "/v1/embeddings",
        json.dumps({"model": KNOWN_MODEL, "input": [HUGE_INT, -HUGE_INT]}).encode(),
        {},
        None,
    ),
    ("bool-for-int", "/v1/chat/completions", json.dumps(_chat(n=True)).encode(), {}, 400),
    ("deep-nesting-top-level", "/v1/chat/completions", _nested(20000), {}, 400),
    (
        "deep-nesting-object",
        "/v1/chat/completions",
        b'{"a":' * 10000 + b"1" + b"}" * 10000,
        {},
        400,
    ),
    (
        "deep-nesting-unknown-field",
        "/v1/chat/completions",
        _raw_chat(b'"x_extra":' + _nested(5000)),
        {},
        400,
    ),
    (
        "moderate-nesting-unknown-field",
        "/v1/chat/completions",
        _raw_chat(b'"x_extra":' + _nested(120)),
        {},
        None,
    ),
    (
        "deep-nesting-messages",
        "/v1/chat/completions",
        b'{"model":"gpt-echo","messages":' + _nested(5000) + b"}",
        {},
        400,
    ),
    (
        "deep-nesting-tool-parameters",
        "/v1/chat/completions",
        json.dumps(
            _chat(
                tools=[
                    {
                        "type": "function",
                        "function": {"name": "f", "parameters": {"p": _nested_objects(150)}},
                    }
                ]
            )
        ).encode(),
        {},
        None,
    ),
    (
        "messages-not-a-list",
        "/v1/chat/completions",
        json.dumps({"model": KNOWN_MODEL, "messages": {"role": "user"}}).encode(),
        {},
        400,
    ),
    (
        "message-not-an-object",
        "/v1/chat/completions",
        json.dumps({"model": KNOWN_MODEL, "messages": [None, 1, "x", []]}).encode(),
        {},
        400,
    ),
    (
        "unknown-role",
        "/v1/chat/completions",
        json.dumps(
            {"model": KNOWN_MODEL, "messages": [{"role": "robot", "content": "x"}]}
        ).encode(),
        {},
        400,
    ),
    (
        "model-not-a-string",
        "/v1/embeddings",
        json.dumps({"model": ["x"], "input": "x"}).encode(),
        {},
        400,
    ),
    ("model-empty", "/v1/embeddings", json.dumps({"model": "", "input": "x"}).encode(), {}, 400),
    (
        "model-huge",
        "/v1/embeddings",
        json.dumps({"model": "m" * 60000, "input": "x"}).encode(),
        {},
        404,
    ),
    (
        "model-control-chars",
        "/v1/embeddings",
        json.dumps({"model": "\x00\n\r\u2028\U0010ffff", "input": "x"}).encode(),
        {},
        404,
    ),
    (
        "stream-not-bool",
        "/v1/completions",
        json.dumps({"model": KNOWN_MODEL, "prompt": "x", "stream": "yes"}).encode(),
        {},
        400,
    ),
    (
        "body-at-limit",
        "/v1/completions",
        (lambda b: b + b" " * (MAX_BODY_BYTES - len(b)))(
            json.dumps({"model": KNOWN_MODEL, "prompt": "x"}).encode()
        ),
        {},
        200,
    ),
    (
        "body-over-limit",
        "/v1/chat/completions",
        json.dumps(_chat(pad="x" * MAX_BODY_BYTES)).encode(),
        {},
        413,
    ),
    ("body-over-limit-not-json", "/v1/embeddings", b"\xff" * (MAX_BODY_BYTES + 1), {}, 413),
    (
        "content-type-text-plain",
        "/v1/completions",
        json.dumps({"model": KNOWN_MODEL, "prompt": "x"}).encode(),
        {"content-type": "text/plain"},
        None,
    ),
    (
        "content-type-form",
        "/v1/completions",
        b"model=gpt-echo&prompt=x",
        {"content-type": "application/x-www-form-urlencoded"},
        400,
    ),
    (
        "content-type-multipart",
        "/v1/completions",
        b'--b\r\nContent-Disposition: form-data; name="model"\r\n\r\ngpt-echo\r\n--b--\r\n',
        {"content-type": "multipart/form-data; boundary=b"},
        400,
    ),
    (
        "content-type-garbage",
        "/v1/embeddings",
        json.dumps({"model": KNOWN_MODEL, "input": "x"}).encode(),
        {"content-type": "nonsense/garbage; charset=klingon; ;;=x"},
        None,
    ),
    (
        "content-encoding-gzip-lie",
        "/v1/embeddings",
        b"\x1f\x8b not really gzip",
        {"content-encoding": "gzip"},
        400,
    ),
    ("path-like-request-id", "/v1/embeddings", b"{}", {"x-request-id": "../../etc"}, 400),
    (
        "hostile-request-id",
        "/v1/embeddings",
        json.dumps({"model": KNOWN_MODEL, "input": "x"}).encode(),
        {"x-request-id": "a" * 5000},
        200,
    ),
]


@pytest.mark.parametrize(
    ("path", "body", "headers", "expected"),
    [pytest.param(p, b, h, e, id=i) for i, p, b, h, e in HOSTILE],
)
def test_hostile_input(
    client: httpx.Client, path: str, body: bytes, headers: dict[str, str], expected: int | None
) -> None:
    response = client.post(path, content=body, headers=headers)
    assert_client_answer(response.status_code, response.content, f"POST {path} {body[:200]!r}")
    if expected is not None:
        assert response.status_code == expected, response.text[:500]
