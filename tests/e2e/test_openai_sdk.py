"""The official openai SDK, sync and async, through the gateway to a real upstream on loopback."""

from __future__ import annotations

import openai
import pytest

from tests.conftest import ALICE_KEY, BOB_KEY
from tests.support.mock_upstream import MockUpstream
from tests.support.servers import ServerThread

MESSAGES = [{"role": "user", "content": "hello gateway"}]


def client(gateway: ServerThread, key: str = ALICE_KEY) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{gateway.url}/v1", api_key=key, max_retries=0)


def test_chat_completion_round_trips(gateway: ServerThread, upstream: MockUpstream) -> None:
    response = client(gateway).chat.completions.create(model="gpt-echo", messages=MESSAGES)
    assert response.choices[0].message.content == "echo: hello gateway"
    assert response.usage is not None and response.usage.total_tokens == 8
    # The public model name is mapped to the upstream's name on the way out.
    assert upstream.record.seen[-1]["model"] == "echo"


def test_response_carries_request_id_and_forwards_it(
    gateway: ServerThread, upstream: MockUpstream
) -> None:
    raw = client(gateway).chat.completions.with_raw_response.create(
        model="gpt-echo", messages=MESSAGES, extra_headers={"x-request-id": "trace-42"}
    )
    assert raw.headers["x-request-id"] == "trace-42"
    assert upstream.record.headers[-1]["x-request-id"] == "trace-42"
    # The client's gateway key never reaches the upstream.
    assert ALICE_KEY not in str(upstream.record.headers[-1])


def test_insane_request_id_is_replaced(gateway: ServerThread) -> None:
    raw = client(gateway).chat.completions.with_raw_response.create(
        model="gpt-echo", messages=MESSAGES, extra_headers={"x-request-id": "bad id\twith spaces"}
    )
    assert raw.headers["x-request-id"].startswith("req_")


def test_streaming_chat_yields_every_chunk(gateway: ServerThread) -> None:
    stream = client(gateway).chat.completions.create(
        model="gpt-echo",
        messages=MESSAGES,
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "echo: hello gateway"
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 3


def test_text_completion_and_embeddings(gateway: ServerThread) -> None:
    sdk = client(gateway)
    completion = sdk.completions.create(model="gpt-echo", prompt="say hi")
    assert completion.choices[0].text == "echo: say hi"
    embedding = sdk.embeddings.create(model="gpt-echo", input="vector me")
    assert embedding.data[0].embedding == [0.1, 0.2, 0.3]


def test_models_lists_what_the_key_may_use(gateway: ServerThread) -> None:
    alice = {m.id for m in client(gateway).models.list()}
    bob = {m.id for m in client(gateway, BOB_KEY).models.list()}
    assert "gpt-hold" in alice and "gpt-echo" in alice
    assert bob == {"gpt-echo"}


@pytest.mark.parametrize(
    ("key", "model", "messages", "exc", "status"),
    [
        ("sk-wrong", "gpt-echo", MESSAGES, openai.AuthenticationError, 401),
        (BOB_KEY, "gpt-hold", MESSAGES, openai.PermissionDeniedError, 403),
        (ALICE_KEY, "no-such-model", MESSAGES, openai.NotFoundError, 404),
        (ALICE_KEY, "gpt-echo", [{"role": "robot", "content": "x"}], openai.BadRequestError, 400),
        (ALICE_KEY, "gpt-bad-400", MESSAGES, openai.BadRequestError, 400),
        (ALICE_KEY, "gpt-error-500", MESSAGES, openai.InternalServerError, 502),
        (ALICE_KEY, "gpt-always-503", MESSAGES, openai.InternalServerError, 503),
    ],
)
def test_errors_become_sdk_exceptions(
    gateway: ServerThread, key: str, model: str, messages: list, exc: type, status: int
) -> None:
    with pytest.raises(exc) as caught:
        client(gateway, key).chat.completions.create(model=model, messages=messages)
    assert caught.value.status_code == status
    body = caught.value.body
    assert isinstance(body, dict) and isinstance(body.get("message"), str) and body["message"]


def test_bad_field_is_named_in_param(gateway: ServerThread) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        client(gateway).chat.completions.create(
            model="gpt-echo", messages=MESSAGES, temperature=9.0
        )
    assert caught.value.param == "temperature"


def test_stream_failure_raises_in_the_sdk(gateway: ServerThread) -> None:
    stream = client(gateway).chat.completions.create(
        model="gpt-die-midstream", messages=MESSAGES, stream=True
    )
    received: list[str] = []
    with pytest.raises(openai.APIError, match="broke the stream"):
        for chunk in stream:
            received.append(chunk.choices[0].delta.content or "")
    # Everything whole that came before the failure was delivered.
    assert "".join(received) == "echo: hello gateway"


async def test_async_client_plain_and_streaming(gateway: ServerThread) -> None:
    sdk = openai.AsyncOpenAI(base_url=f"{gateway.url}/v1", api_key=ALICE_KEY, max_retries=0)
    response = await sdk.chat.completions.create(model="gpt-echo", messages=MESSAGES)
    assert response.choices[0].message.content == "echo: hello gateway"
    stream = await sdk.chat.completions.create(model="gpt-echo", messages=MESSAGES, stream=True)
    parts = [c.choices[0].delta.content or "" async for c in stream if c.choices]
    assert "".join(parts) == "echo: hello gateway"
    with pytest.raises(openai.NotFoundError):
        await sdk.chat.completions.create(model="missing", messages=MESSAGES)
    await sdk.close()
