"""Request validation: every bad request is a 400/404/405/413 whose error names the field."""

from __future__ import annotations

import httpx
import orjson
import pytest

from gateway.api.schemas import ChatCompletionRequest, CompletionRequest, EmbeddingRequest
from gateway.api.validation import parse_request
from gateway.errors import InvalidRequest
from tests.conftest import ALICE_KEY
from tests.support.servers import ServerThread

AUTH = {"authorization": f"Bearer {ALICE_KEY}"}
USER = [{"role": "user", "content": "hi"}]


def chat(**fields: object) -> dict:
    return {"model": "m", "messages": USER, **fields}


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"messages": USER}, "model"),
        ({"model": "m"}, "messages"),
        (chat(messages=[]), "messages"),
        (chat(messages=[{"role": "robot", "content": "x"}]), "messages[0].role"),
        (chat(messages=[{"content": "x"}]), "messages[0].role"),
        (chat(messages=[{"role": "user", "content": 5}]), "messages[0].content"),
        (
            chat(messages=[{"role": "user", "content": [{"type": "text"}]}]),
            "messages[0].content[0].text",
        ),
        (
            chat(messages=[{"role": "user", "content": [{"type": "video"}]}]),
            "messages[0].content[0].type",
        ),
        (chat(messages=[{"role": "tool", "content": "42"}]), "messages[0].tool_call_id"),
        (
            chat(
                messages=[
                    {
                        "role": "assistant",
                        "tool_calls": [{"id": "c", "type": "function", "function": {"name": "f"}}],
                    }
                ]
            ),
            "messages[0].tool_calls[0].function.arguments",
        ),
        (chat(temperature=2.5), "temperature"),
        (chat(temperature="hot"), "temperature"),
        (chat(top_p=-0.1), "top_p"),
        (chat(n=0), "n"),
        (chat(max_tokens=0), "max_tokens"),
        (chat(max_completion_tokens="10"), "max_completion_tokens"),
        (chat(stop=["a", "b", "c", "d", "e"]), "stop"),
        (chat(stream="yes"), "stream"),
        (chat(stream_options={"include_usage": "yes"}), "stream_options.include_usage"),
        (chat(logprobs=True, top_logprobs=21), "top_logprobs"),
        (chat(seed=1.5), "seed"),
        (
            chat(tools=[{"type": "function", "function": {"name": "bad name!"}}]),
            "tools[0].function.name",
        ),
        (chat(tool_choice="sometimes"), "tool_choice"),
        (chat(response_format={"type": "xml"}), "response_format.type"),
        (chat(response_format={"type": "json_schema"}), "response_format.json_schema"),
        (chat(metadata={"k": 1}), "metadata.k"),
        (chat(user=7), "user"),
        (chat(frequency_penalty=3), "frequency_penalty"),
        (chat(logit_bias={"50256": 101}), "logit_bias.50256"),
    ],
)
def test_chat_errors_name_the_offending_field(body: dict, param: str) -> None:
    with pytest.raises(InvalidRequest) as caught:
        parse_request(ChatCompletionRequest, orjson.dumps(body))
    assert caught.value.param == param
    assert param in caught.value.message


def test_valid_requests_with_every_content_shape_pass() -> None:
    body = chat(
        messages=[
            {"role": "system", "content": "be brief"},
            {"role": "developer", "content": [{"type": "text", "text": "really"}]},
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "look"},
                    {
                        "type": "image_url",
                        "image_url": {"url": "data:image/png;base64,AA", "detail": "low"},
                    },
                ],
                "name": "u1",
            },
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}
                ],
            },
            {"role": "tool", "tool_call_id": "c1", "content": "42"},
        ],
        tools=[{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}],
        tool_choice={"type": "function", "function": {"name": "f"}},
        response_format={"type": "json_schema", "json_schema": {"name": "x", "schema": {}}},
        stop="END",
        n=2,
        seed=7,
        logprobs=True,
        top_logprobs=3,
        max_completion_tokens=5,
        stream=True,
        stream_options={"include_usage": True},
        metadata={"team": "a"},
        some_future_parameter={"kept": True},
    )
    request = parse_request(ChatCompletionRequest, orjson.dumps(body))
    assert request.model == "m" and len(request.messages) == 5
    assert request.model_extra == {"some_future_parameter": {"kept": True}}


@pytest.mark.parametrize(
    ("schema", "body", "param"),
    [
        (CompletionRequest, {"model": "m"}, "prompt"),
        (CompletionRequest, {"model": "m", "prompt": [1.5]}, "prompt[0]"),
        (CompletionRequest, {"model": "m", "prompt": "x", "logprobs": 6}, "logprobs"),
        (EmbeddingRequest, {"model": "m", "input": {"a": 1}}, "input"),
        (
            EmbeddingRequest,
            {"model": "m", "input": "x", "encoding_format": "hex"},
            "encoding_format",
        ),
    ],
)
def test_completion_and_embedding_errors(schema: type, body: dict, param: str) -> None:
    with pytest.raises(InvalidRequest) as caught:
        parse_request(schema, orjson.dumps(body))
    assert caught.value.param == param


def test_http_bad_requests(gateway: ServerThread) -> None:
    url = f"{gateway.url}/v1/chat/completions"
    with httpx.Client(timeout=10, headers=AUTH) as http:
        malformed = http.post(url, content=b'{"model": ')
        assert malformed.status_code == 400 and malformed.json()["error"]["code"] == "invalid_json"
        assert http.post(url, content=b"[]").status_code == 400
        assert http.post(url, content=b"").status_code == 400
        bad_field = http.post(url, json=chat(model="gpt-echo", n="two"))
        assert bad_field.status_code == 400 and bad_field.json()["error"]["param"] == "n"
        huge = http.post(url, content=b'{"model": "gpt-echo", "x": "' + b"a" * 70_000 + b'"}')
        assert huge.status_code == 413 and huge.json()["error"]["code"] == "request_too_large"
        assert http.post(url, json=chat(model="unknown")).status_code == 404
        wrong_method = http.get(url)
        assert wrong_method.status_code == 405 and wrong_method.headers["allow"] == "POST"
        assert http.post(f"{gateway.url}/v1/nothing-here", json={}).status_code == 404
        assert http.post(f"{gateway.url}/v1/models").status_code == 405


def test_oversized_chunked_body_is_413_without_content_length(gateway: ServerThread) -> None:
    def body():
        yield b'{"model": "gpt-echo", "x": "'
        for _ in range(20):
            yield b"a" * 4096
        yield b'"}'

    response = httpx.post(
        f"{gateway.url}/v1/chat/completions", content=body(), headers=AUTH, timeout=10
    )
    assert response.status_code == 413


def test_unknown_fields_reach_the_upstream_untouched(gateway: ServerThread, upstream) -> None:
    response = httpx.post(
        f"{gateway.url}/v1/chat/completions",
        headers=AUTH,
        timeout=10,
        json=chat(model="gpt-echo", reasoning_effort="low", store=False),
    )
    assert response.status_code == 200
    assert upstream.record.seen[-1]["reasoning_effort"] == "low"
    assert upstream.record.seen[-1]["store"] is False


def test_openapi_document_describes_the_endpoints(gateway: ServerThread) -> None:
    doc = httpx.get(f"{gateway.url}/openapi.json", timeout=10).json()
    assert doc["openapi"].startswith("3.1")
    assert {"/v1/chat/completions", "/v1/completions", "/v1/embeddings", "/v1/models"} <= set(
        doc["paths"]
    )
    assert "ChatCompletionRequest" in doc["components"]["schemas"]
