"""Hostile requests around the body: chunked framing, bad credentials, wrong methods and paths.

Sent through httpx where it will send them, and as raw bytes on a socket where it will not (lying
content lengths, blank or NUL-laden bearer tokens); every answer below 500 and, when it is an
error, an OpenAI error body with the expected status.
"""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from tests.conftest import ALICE_KEY
from tests.support.fuzz_target import AUTH, MAX_BODY_BYTES, assert_client_answer
from tests.support.servers import ServerThread

AUTH_LINE = f"authorization: Bearer {ALICE_KEY}\r\n".encode()


def _chunks(total: int, size: int = 8192) -> Iterator[bytes]:
    yield b'{"model":"gpt-echo","prompt":"'
    sent = 0
    while sent < total:
        yield b"x" * size
        sent += size
    yield b'"}'


@pytest.mark.parametrize(
    ("method", "path", "headers", "content", "expected"),
    [
        pytest.param(
            "POST",
            "/v1/completions",
            {},
            lambda: _chunks(MAX_BODY_BYTES * 4),
            413,
            id="chunked-body-over-limit",
        ),
        pytest.param(
            "POST", "/v1/completions", {}, lambda: _chunks(1024), 200, id="chunked-body-under-limit"
        ),
        pytest.param(
            "POST",
            "/v1/chat/completions",
            {"authorization": ""},
            lambda: b"{}",
            401,
            id="empty-authorization",
        ),
        pytest.param(
            "POST",
            "/v1/chat/completions",
            {"authorization": "Basic Zm9vOmJhcg=="},
            lambda: b"{}",
            401,
            id="basic-authorization",
        ),
        pytest.param(
            "POST",
            "/v1/chat/completions",
            {"authorization": "Bearer"},
            lambda: b"{}",
            401,
            id="bearer-without-key",
        ),
        pytest.param(
            "POST",
            "/v1/chat/completions",
            {"authorization": f"Bearer {ALICE_KEY}x"},
            lambda: b"{}",
            401,
            id="wrong-key",
        ),
        pytest.param(
            "POST",
            "/v1/chat/completions",
            {"authorization": b"Bearer \xff\xfe\x80"},
            lambda: b"{}",
            401,
            id="non-ascii-bearer",
        ),
        pytest.param("GET", "/v1/chat/completions", {}, lambda: b"", 405, id="get-inference"),
        pytest.param("DELETE", "/v1/embeddings", {}, lambda: b"", 405, id="delete-inference"),
        pytest.param("PUT", "/v1/models", {}, lambda: b"{}", 405, id="put-models"),
        pytest.param("POST", "/openapi.json", {}, lambda: b"{}", 405, id="post-openapi"),
        pytest.param("GET", "/v1/../../etc/passwd", {}, lambda: b"", 404, id="path-traversal"),
        pytest.param(
            "POST", "/v1/chat/completions/extra", {}, lambda: b"{}", 404, id="unknown-path"
        ),
    ],
)
def test_hostile_request(
    shared_gateway: ServerThread,
    method: str,
    path: str,
    headers: dict[str, str],
    content: Callable[[], Any],
    expected: int,
) -> None:
    base = {} if "authorization" in headers else AUTH
    with httpx.Client(base_url=shared_gateway.url, headers=base, timeout=15) as client:
        response = client.request(method, path, content=content(), headers=headers)
    assert_client_answer(response.status_code, response.content, f"{method} {path}", method)
    assert response.status_code == expected, response.text[:500]


def raw_exchange(gateway: ServerThread, request: bytes) -> tuple[int, bytes]:
    """Send bytes httpx refuses to send (lying headers, blank values); (status, body) back."""
    with socket.create_connection(("127.0.0.1", gateway.port), timeout=10) as sock:
        sock.sendall(request)
        chunks: list[bytes] = []
        while True:
            try:
                chunk = sock.recv(65536)
            except ConnectionResetError:
                break
            if not chunk:
                break
            chunks.append(chunk)
    head, _, body = b"".join(chunks).partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), body


def _raw_post(path: str, headers: bytes, body: bytes = b"{}") -> bytes:
    return (
        f"POST {path} HTTP/1.1\r\nhost: 127.0.0.1\r\nconnection: close\r\n".encode()
        + b"content-type: application/json\r\n"
        + headers
        + b"\r\n"
        + body
    )


@pytest.mark.parametrize(
    ("request_bytes", "expected"),
    [
        pytest.param(
            _raw_post("/v1/completions", AUTH_LINE + b"content-length: " + b"9" * 15 + b"\r\n"),
            413,
            id="content-length-claims-huge",
        ),
        pytest.param(
            _raw_post(
                "/v1/completions", AUTH_LINE + f"content-length: {MAX_BODY_BYTES + 1}\r\n".encode()
            ),
            413,
            id="content-length-over-limit-body-never-sent",
        ),
        pytest.param(
            _raw_post(
                "/v1/chat/completions", b"authorization: Bearer    \r\ncontent-length: 2\r\n"
            ),
            401,
            id="blank-bearer",
        ),
        pytest.param(
            _raw_post(
                "/v1/chat/completions", b"authorization: Bearer \xff\x00x\r\ncontent-length: 2\r\n"
            ),
            None,
            id="nul-in-bearer",  # the HTTP parser may refuse it first; it must not be a 5xx
        ),
    ],
)
def test_hostile_raw_http(
    shared_gateway: ServerThread, request_bytes: bytes, expected: int | None
) -> None:
    status, body = raw_exchange(shared_gateway, request_bytes)
    if expected is None:
        assert status < 500, body[:500]
        return
    assert_client_answer(status, body, repr(request_bytes[:200]))
    assert status == expected, body[:500]
