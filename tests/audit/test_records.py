"""Exactly one audit record per request, whatever way it ends, with the fields it should have."""

from __future__ import annotations

import hashlib
from pathlib import Path

import httpx
import orjson
import pytest

from gateway.audit.chain import GENESIS, digest, personal_ok
from gateway.audit.segment import SEGMENT_NAME
from tests.conftest import ALICE_KEY, BOB_KEY, GatewayFactory, policy_yaml
from tests.support.mock_upstream import MockUpstream

AUTH = {"authorization": f"Bearer {ALICE_KEY}"}


def read_log(directory: Path) -> tuple[list[dict], list[dict]]:
    """(records, seals) of every segment, in order."""
    records, seals = [], []
    for path in sorted(p for p in directory.iterdir() if SEGMENT_NAME.match(p.name)):
        for line in path.read_bytes().splitlines():
            entry = orjson.loads(line)
            (seals if entry.get("type") == "seal" else records).append(entry)
    return records, seals


def assert_chained(records: list[dict]) -> None:
    prev = GENESIS
    for seq, record in enumerate(records, start=1):
        assert record["seq"] == seq and record["prev"] == prev
        assert personal_ok(record)
        prev = digest(record)


def audited(upstream: MockUpstream, directory: Path, extra: str = "", read_s: float = 5) -> str:
    return (
        policy_yaml(upstream.base_url, read_s=read_s)
        + f"audit:\n  dir: '{directory}'\n  fsync: none\n{extra}"
    )


def test_every_request_gets_exactly_one_record(
    upstream: MockUpstream, start_gateway: GatewayFactory, tmp_path: Path
) -> None:
    text = (
        audited(upstream, tmp_path, read_s=60) + "ratelimit:\n  limits:\n    key: {concurrent: 1}\n"
    )
    server = start_gateway(text)
    url = f"{server.url}/v1/chat/completions"
    chat = {"model": "gpt-echo", "messages": [{"role": "user", "content": "hi"}], "user": "u-1"}
    sent: list[tuple[str, int, str]] = []  # (request id, status the client saw, expected outcome)

    def post(headers: dict, body: object, outcome: str = "ok", **kw: object) -> httpx.Response:
        response = httpx.post(
            url,
            headers=headers,
            timeout=10,
            **kw,
            **({"json": body} if not isinstance(body, bytes) else {"content": body}),
        )
        sent.append((response.headers["x-request-id"], response.status_code, outcome))
        return response

    post(AUTH, chat)
    post(AUTH, {**chat, "stream": True})
    post({}, chat, "error")  # 401
    post({"authorization": f"Bearer {BOB_KEY}"}, {**chat, "model": "gpt-hold"}, "error")  # 403
    post(AUTH, {**chat, "model": "nope"}, "error")  # 404
    post(AUTH, b"{not json", "error")  # 400
    post(AUTH, {**chat, "model": "gpt-error-500"}, "error")  # 502
    post(AUTH, {**chat, "model": "gpt-die-midstream", "stream": True}, "upstream_failed")
    # Held open by one client, so the next one is refused by the concurrency limit.
    hold = {**chat, "model": "gpt-hold", "stream": True}
    with (
        httpx.Client(timeout=10) as http,
        http.stream("POST", url, json=hold, headers=AUTH) as held,
    ):
        chunks = held.iter_raw()
        next(chunks)
        post(AUTH, chat, "error")  # 429
        held_id = held.headers["x-request-id"]
    assert upstream.record.stream_cancelled.wait(timeout=5)
    server.stop()  # graceful: drains the queue and seals the segment

    records, seals = read_log(tmp_path)
    assert_chained(records)
    assert len(seals) == 1 and seals[0]["last_seq"] == len(records)
    by_id = {r["request_id"]: r for r in records}
    assert len(by_id) == len(records) == len(sent) + 1
    for request_id, status, outcome in sent:
        assert (by_id[request_id]["status"], by_id[request_id]["outcome"]) == (status, outcome)
    assert by_id[held_id]["outcome"] == "client_disconnected"
    assert by_id[held_id]["ratelimit"] == "admitted"

    first, streamed, unauthenticated = (by_id[s[0]] for s in sent[:3])
    assert (first["tenant"], first["key_id"], first["model"]) == ("acme", "alice", "gpt-echo")
    assert first["route"] == {
        "backend": "mock",
        "upstream_model": "echo",
        "replica": upstream.base_url,
        "attempts": 1,
    }
    assert first["usage"] == {"prompt_tokens": 5, "completion_tokens": 3, "total_tokens": 8}
    assert first["personal"]["user"] == "u-1" and first["personal"]["content"] is None
    assert first["ttft_ms"] is None and first["latency_ms"] > 0
    assert streamed["stream"] is True and streamed["ttft_ms"] is not None
    assert streamed["ttft_ms"] <= streamed["latency_ms"]
    assert unauthenticated["tenant"] is None
    assert unauthenticated["error"] == {"type": "authentication_error", "code": "missing_api_key"}
    refused = by_id[sent[-1][0]]
    assert refused["status"] == 429 and refused["ratelimit"] == "refused"


@pytest.mark.parametrize("mode", ["none", "hashed", "redacted"])
def test_content_is_kept_as_the_policy_says(
    upstream: MockUpstream, start_gateway: GatewayFactory, tmp_path: Path, mode: str
) -> None:
    server = start_gateway(audited(upstream, tmp_path, f"  content: {mode}\n  client_ip: full\n"))
    body = orjson.dumps({"model": "gpt-echo", "messages": [{"role": "user", "content": "secret"}]})
    response = httpx.post(f"{server.url}/v1/chat/completions", content=body, headers=AUTH)
    server.stop()
    (record,), _ = read_log(tmp_path)
    content = record["personal"]["content"]
    assert record["personal"]["client_ip"] == "127.0.0.1"
    if mode == "none":
        assert content is None and b"secret" not in orjson.dumps(record)
    elif mode == "hashed":
        assert content["request_sha256"] == hashlib.sha256(body).hexdigest()
        assert content["response_sha256"] == hashlib.sha256(response.content).hexdigest()
        assert b"secret" not in orjson.dumps(record)
    else:
        assert content["request"] == {"messages": [{"role": "user", "content": "secret"}]}
        assert content["response"] == "echo: secret"


def test_client_ips_are_truncated_by_default(
    upstream: MockUpstream, start_gateway: GatewayFactory, tmp_path: Path
) -> None:
    server = start_gateway(audited(upstream, tmp_path))
    httpx.post(
        f"{server.url}/v1/chat/completions",
        headers=AUTH,
        json={"model": "gpt-echo", "messages": [{"role": "user", "content": "x"}]},
    )
    server.stop()
    (record,), _ = read_log(tmp_path)
    assert record["personal"]["client_ip"] == "127.0.0.0"


@pytest.mark.parametrize(
    ("client", "network"),
    [("203.0.113.77", "203.0.113.0"), ("2001:db8:abcd:12::1", "2001:db8:abcd::"), ("x", None)],
)
def test_truncated_ips_keep_only_the_network(client: str, network: str | None) -> None:
    from gateway.audit.trail import truncated_ip

    assert truncated_ip(client) == network
    assert truncated_ip(client) == network  # the cached answer is the same
