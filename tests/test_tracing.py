"""OpenTelemetry: the span tree of a request, W3C traceparent in and out, JSON logs with ids."""

from __future__ import annotations

import json
import logging
import time

import httpx
import pytest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from gateway.app import create_app
from gateway.config.loader import parse_policy
from gateway.telemetry.logs import JsonFormatter, request_context
from gateway.telemetry.tracing import Tracing
from tests.conftest import ALICE_KEY, KEYS_ENV, policy_yaml
from tests.support.mock_upstream import MockUpstream
from tests.support.servers import ServerThread

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
CALLER_SPAN = "00f067aa0ba902b7"
TRACEPARENT = f"00-{TRACE_ID}-{CALLER_SPAN}-01"
TELEMETRY = "\ntelemetry: {traces: {exporter: console}}\n"


@pytest.fixture
def traced(upstream: MockUpstream):
    policy = parse_policy(policy_yaml(upstream.base_url) + TELEMETRY, "p.yaml", KEYS_ENV)
    app = create_app(policy, env=KEYS_ENV)
    exporter = InMemorySpanExporter()
    gateway = app.state  # type: ignore[attr-defined]
    gateway.tracing = Tracing(policy.telemetry, processor=SimpleSpanProcessor(exporter))
    server = ServerThread(app).start()
    yield server, exporter
    server.stop()


def _post(server: ServerThread, body: dict, headers: dict | None = None) -> httpx.Response:
    headers = {"authorization": f"Bearer {ALICE_KEY}", **(headers or {})}
    return httpx.post(f"{server.url}/v1/chat/completions", json=body, headers=headers)


def _finished(exporter: InMemorySpanExporter) -> tuple[ReadableSpan, ...]:
    """The spans once the request's server span has ended: the gateway ends it after the last
    byte went out, so the client can see the answer a moment before."""
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        spans = exporter.get_finished_spans()
        if any(s.kind is SpanKind.SERVER for s in spans):
            return spans
        time.sleep(0.01)
    return exporter.get_finished_spans()


def _tree(spans: tuple[ReadableSpan, ...]) -> tuple[ReadableSpan, dict[str, ReadableSpan]]:
    (root,) = [s for s in spans if s.kind is SpanKind.SERVER]
    children = {s.name: s for s in spans if s.parent and s.parent.span_id == root.context.span_id}
    return root, children


CHAT = {"model": "gpt-echo", "messages": [{"role": "user", "content": "hi"}]}


def test_request_span_tree_continues_the_callers_trace(traced, upstream: MockUpstream) -> None:
    server, exporter = traced
    assert _post(server, CHAT, {"traceparent": TRACEPARENT}).status_code == 200
    root, children = _tree(_finished(exporter))
    assert format(root.context.trace_id, "032x") == TRACE_ID
    assert root.parent is not None and format(root.parent.span_id, "016x") == CALLER_SPAN
    assert root.name == "POST /v1/chat/completions"
    assert list(children) == ["auth", "parse", "route", "upstream"]
    assert children["upstream"].kind is SpanKind.CLIENT
    assert root.attributes["http.response.status_code"] == 200
    assert root.attributes["gen_ai.request.model"] == "gpt-echo"
    # The upstream saw the trace too, as a child of our client span.
    sent = upstream.record.headers[-1]["traceparent"]
    assert sent.split("-")[1] == TRACE_ID
    assert sent.split("-")[2] == format(children["upstream"].context.span_id, "016x")


def test_stream_keeps_the_upstream_span_open_until_relayed(traced) -> None:
    server, exporter = traced
    response = _post(server, {**CHAT, "stream": True})
    assert response.status_code == 200 and "[DONE]" in response.text
    root, children = _tree(_finished(exporter))
    upstream = children["upstream"]
    assert upstream.end_time is not None and root.end_time is not None
    assert upstream.end_time <= root.end_time
    assert root.attributes["sluice.stream"] is True
    assert format(root.context.trace_id, "032x") != TRACE_ID  # a new trace without traceparent


def test_rejected_request_is_one_span_with_its_status(traced) -> None:
    server, exporter = traced
    response = httpx.post(f"{server.url}/v1/chat/completions", json=CHAT)
    assert response.status_code == 401
    root, children = _tree(_finished(exporter))
    assert root.attributes["http.response.status_code"] == 401
    assert "upstream" not in children
    assert children["auth"].status.status_code.name == "ERROR"


def test_no_traceparent_goes_upstream_when_tracing_is_off(gateway, upstream) -> None:
    assert _post(gateway, CHAT, {"traceparent": TRACEPARENT}).status_code == 200
    assert "traceparent" not in upstream.record.headers[-1]


def test_json_log_lines_carry_request_and_trace_ids() -> None:
    record = logging.LogRecord("sluicegate", logging.WARNING, __file__, 1, "hello %s", ("x",), None)
    token = request_context.set(("req_abc", TRACE_ID))
    try:
        line = json.loads(JsonFormatter().format(record))
    finally:
        request_context.reset(token)
    assert line["message"] == "hello x"
    assert line["request_id"] == "req_abc" and line["trace_id"] == TRACE_ID
    assert line["level"] == "warning" and line["time"].endswith("Z")
    outside = json.loads(JsonFormatter().format(record))
    assert "request_id" not in outside
