"""Streams are relayed as they arrive, end cleanly on every failure, and die with the client."""

from __future__ import annotations

import httpx
import orjson
import pytest

from gateway.streaming import done_event_at, split_events
from tests.conftest import ALICE_KEY, GatewayFactory, policy_yaml
from tests.support.mock_upstream import MockUpstream
from tests.support.servers import ServerThread

AUTH = {"authorization": f"Bearer {ALICE_KEY}"}


def stream_request(model: str) -> dict:
    return {"model": model, "messages": [{"role": "user", "content": "hi"}], "stream": True}


def events(raw: bytes) -> list[tuple[str | None, bytes]]:
    """(event name, data) of each SSE event; asserts every event is whole."""
    out = []
    for block in raw.split(b"\n\n"):
        if not block.strip() or block.startswith(b":"):
            continue
        name, data = None, b""
        for line in block.split(b"\n"):
            if line.startswith(b"event: "):
                name = line[7:].decode()
            elif line.startswith(b"data: "):
                data = line[6:]
        if data != b"[DONE]":
            orjson.loads(data)  # raises on half an event
        out.append((name, data))
    return out


def test_first_chunk_reaches_client_while_upstream_is_still_open(
    gateway: ServerThread, upstream: MockUpstream
) -> None:
    with (
        httpx.Client(timeout=10) as http,
        http.stream(
            "POST",
            f"{gateway.url}/v1/chat/completions",
            json=stream_request("gpt-hold"),
            headers=AUTH,
        ) as response,
    ):
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        assert response.headers["cache-control"] == "no-cache"
        assert response.headers["x-accel-buffering"] == "no"
        chunks = response.iter_raw()
        first = next(chunks)
        # The upstream has not been allowed to finish, yet the client already holds a chunk.
        assert not upstream.record.release.is_set()
        assert b'"content":"first"' in first
        upstream.record.release.set()
        rest = b"".join(chunks)
    assert rest.endswith(b"data: [DONE]\n\n")
    assert b" last" in rest


@pytest.fixture
def patient_gateway(upstream: MockUpstream, start_gateway: GatewayFactory) -> ServerThread:
    """A read timeout far beyond the waits below: only a disconnect can end an upstream call."""
    return start_gateway(policy_yaml(upstream.base_url, read_s=60))


def hang_up_mid_stream(gateway: ServerThread) -> None:
    """Open a held stream, read its first chunk, and close the connection."""
    with (
        httpx.Client(timeout=10) as http,
        http.stream(
            "POST",
            f"{gateway.url}/v1/chat/completions",
            json=stream_request("gpt-hold"),
            headers=AUTH,
        ) as response,
    ):
        next(response.iter_raw())


def test_client_disconnect_closes_the_upstream_connection(
    patient_gateway: ServerThread, upstream: MockUpstream
) -> None:
    hang_up_mid_stream(patient_gateway)
    assert upstream.record.first_chunks_sent.wait(5)
    # total_s (10 s) is further off: only the hang-up can have ended the upstream call.
    assert upstream.record.stream_cancelled.wait(timeout=5)
    assert not upstream.record.release.is_set()


def test_gateway_keeps_serving_after_a_client_disconnect(
    patient_gateway: ServerThread, upstream: MockUpstream
) -> None:
    for _ in range(3):
        upstream.record.stream_cancelled.clear()
        hang_up_mid_stream(patient_gateway)
        assert upstream.record.stream_cancelled.wait(timeout=5)
    ok = httpx.post(
        f"{patient_gateway.url}/v1/chat/completions",
        headers=AUTH,
        timeout=10,
        json={"model": "gpt-echo", "messages": [{"role": "user", "content": "x"}]},
    )
    assert ok.status_code == 200


@pytest.mark.parametrize(
    ("model", "reason"),
    [("gpt-die-midstream", b"broke the stream"), ("gpt-no-done", b"without [DONE]")],
)
def test_upstream_failure_mid_stream_ends_with_error_event_and_done(
    gateway: ServerThread, model: str, reason: bytes
) -> None:
    response = httpx.post(
        f"{gateway.url}/v1/chat/completions", json=stream_request(model), headers=AUTH, timeout=10
    )
    assert response.status_code == 200  # the stream had started; the failure is in-band
    got = events(response.content)
    assert got[-1] == (None, b"[DONE]")
    name, data = got[-2]
    assert name == "error"
    error = orjson.loads(data)["error"]
    assert reason in error["message"].encode()
    assert error["type"] == "upstream_error"
    # Whole events before the failure were all delivered, the half one was not.
    contents = [orjson.loads(d)["choices"][0]["delta"].get("content") for n, d in got[:-2]]
    assert "".join(c or "" for c in contents) == "echo: hi"


def test_silent_upstream_hits_read_timeout_in_band(
    upstream: MockUpstream, start_gateway: GatewayFactory
) -> None:
    gateway = start_gateway(policy_yaml(upstream.base_url, read_s=0.5))
    response = httpx.post(
        f"{gateway.url}/v1/chat/completions",
        json=stream_request("gpt-hold"),
        headers=AUTH,
        timeout=10,
    )
    got = events(response.content)
    assert got[-2][0] == "error" and b"upstream_timeout" in got[-2][1]
    assert got[-1] == (None, b"[DONE]")


@pytest.mark.parametrize(
    ("data", "end"),
    [
        (b"", 0),
        (b"data: {}", 0),
        (b"data: {}\n\n", 10),
        (b"data: {}\n\ndata: {", 10),
        (b"data: {}\r\n\r\ndata: {", 12),
        (b"data: 1\n\ndata: 2\r\n\r\n", 20),
        (b": comment\n\ndata: 2\n", 11),
    ],
)
def test_split_events_finds_the_end_of_the_last_whole_event(data: bytes, end: int) -> None:
    assert split_events(data) == end


def test_client_giving_up_on_a_plain_request_cancels_the_upstream_call(
    patient_gateway: ServerThread, upstream: MockUpstream
) -> None:
    gateway = patient_gateway
    body = {"model": "gpt-hold", "messages": [{"role": "user", "content": "long job"}]}
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(f"{gateway.url}/v1/chat/completions", json=body, headers=AUTH, timeout=1.0)
    assert upstream.record.first_chunks_sent.wait(5)  # the upstream had the request
    assert upstream.record.stream_cancelled.wait(timeout=5)
    assert not upstream.record.release.is_set()


def test_released_plain_request_still_completes(
    gateway: ServerThread, upstream: MockUpstream
) -> None:
    upstream.record.release.set()
    body = {"model": "gpt-hold", "messages": [{"role": "user", "content": "long job"}]}
    response = httpx.post(f"{gateway.url}/v1/chat/completions", json=body, headers=AUTH, timeout=10)
    assert response.status_code == 200
    assert response.json()["choices"][0]["message"]["content"] == "echo: long job"


def test_done_is_found_only_at_an_event_boundary() -> None:
    # A model may write the text "data: [DONE]"; inside JSON it never follows a blank line.
    chunk = b'data: {"choices":[{"delta":{"content":"say data: [DONE] now"}}]}\n\n'
    assert done_event_at(chunk) == -1
    assert done_event_at(chunk + b"data: [DONE]\n\n") == len(chunk)
    assert done_event_at(b"data: [DONE]\n\n") == 0
    crlf = b'data: {"x": 1}\r\n\r\n'
    assert done_event_at(crlf + b"data: [DONE]\r\n\r\n") == len(crlf)
