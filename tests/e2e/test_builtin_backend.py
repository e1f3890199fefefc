"""The gateway with a `kind: builtin` backend: the embedded SmolLM2 in-process, behind the whole
pipeline (auth, validation, audit, metrics), driven by the official openai SDK."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import orjson
import pytest

from backend.model_files import resolve_model
from gateway.app import create_app
from gateway.config.loader import parse_policy
from tests.audit.test_records import read_log
from tests.backend.conftest import TEST_CACHE
from tests.conftest import ALICE_KEY, KEYS_ENV
from tests.support.processes import wait_until
from tests.support.servers import ServerThread

AUTH = {"authorization": f"Bearer {ALICE_KEY}"}
MODEL = "smollm2"
MESSAGES = [{"role": "user", "content": "What is the capital of France?"}]


def policy(audit_dir: Path) -> str:
    return f"""
auth:
  keys:
    - {{id: alice, tenant: acme, key_env: ALICE_KEY}}
backends:
  engine:
    kind: builtin
    model: smollm2-135m-instruct
    kv_cache_gb: 0.1
    max_model_len: 256
    num_threads: 1  # the test machine has 2 shared cores
    timeouts: {{total_s: 120}}
models:
  {MODEL}: {{backend: engine}}
audit:
  dir: '{audit_dir}'
  fsync: none
"""


@pytest.fixture(scope="module")
def audit_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("audit")


@pytest.fixture(scope="module")
def gateway(audit_dir: Path) -> Iterator[ServerThread]:
    """Started, not ready: the model loads in the background (its GGUF converted beforehand)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("SLUICE_CACHE", str(TEST_CACHE))
        resolve_model("smollm2-135m-instruct", progress=False)
        app = create_app(parse_policy(policy(audit_dir), "builtin.yaml", KEYS_ENV), env=KEYS_ENV)
        server = ServerThread(app).start()
        yield server
        server.stop()


def client(gateway: ServerThread) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{gateway.url}/v1", api_key=ALICE_KEY, max_retries=0)


def engine_series(gateway: ServerThread) -> dict[str, float]:
    """The builtin engine's series on the gateway's /metrics, by name and labels."""
    out = {}
    for line in httpx.get(f"{gateway.url}/metrics").text.splitlines():
        if line.startswith(("sluice:", "sluice_builtin")) and 'backend="engine"' in line:
            name, value = line.rsplit(" ", 1)
            out[name] = float(value)
    return out


def series(values: dict[str, float], prefix: str, label: str = "") -> float:
    (value,) = [v for k, v in values.items() if k.startswith(prefix + "{") and label in k]
    return value


def test_gateway_listens_at_once_and_a_request_waits_for_the_model(gateway: ServerThread) -> None:
    ready = httpx.get(f"{gateway.url}/readyz").json()
    assert ready["upstreams"]["engine"] in ("ok", "loading model smollm2-135m-instruct")
    if ready["upstreams"]["engine"] != "ok":
        assert ready["status"] == "not ready"
        assert series(engine_series(gateway), "sluice_builtin_engine_ready") == 0
    # Arriving while the model loads, this request waits for it.
    reply = client(gateway).chat.completions.create(
        model=MODEL,
        messages=MESSAGES,
        max_tokens=8,
        temperature=0,
    )
    assert reply.choices[0].message.content
    response = httpx.get(f"{gateway.url}/readyz")
    assert response.status_code == 200
    body = response.json()
    assert (body["status"], body["upstreams"]) == ("ready", {"engine": "ok"})
    assert body["replicas"]["engine"][0]["replica"] == "in-process"


def test_chat_plain_and_streamed_agree(gateway: ServerThread) -> None:
    sdk = client(gateway)
    whole = sdk.chat.completions.create(
        model=MODEL,
        messages=MESSAGES,
        max_tokens=10,
        temperature=0,
    )
    assert whole.model == MODEL and whole.object == "chat.completion"
    assert whole.usage is not None and 0 < whole.usage.completion_tokens <= 10
    chunks = list(
        sdk.chat.completions.create(
            model=MODEL,
            messages=MESSAGES,
            max_tokens=10,
            temperature=0,
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == whole.choices[0].message.content
    assert chunks[-1].usage is not None
    assert chunks[-1].usage.prompt_tokens == whole.usage.prompt_tokens


def test_text_completion(gateway: ServerThread) -> None:
    reply = client(gateway).completions.create(
        model=MODEL, prompt="The capital of France is", max_tokens=6, temperature=0
    )
    assert reply.object == "text_completion" and reply.choices[0].text
    assert reply.usage is not None and reply.usage.completion_tokens == 6


def test_audit_record_carries_the_engine_usage(gateway: ServerThread, audit_dir: Path) -> None:
    raw = client(gateway).chat.completions.with_raw_response.create(
        model=MODEL,
        messages=MESSAGES,
        max_tokens=5,
        extra_headers={"x-request-id": "builtin-audit-1"},
    )
    usage = raw.parse().usage
    assert usage is not None

    def record() -> dict | None:
        records, _ = read_log(audit_dir)
        return next((r for r in records if r["request_id"] == "builtin-audit-1"), None)

    found = wait_until(record, "the request's audit record is written")
    assert isinstance(found, dict)
    assert found["route"] == {
        "backend": "engine",
        "upstream_model": MODEL,
        "replica": "in-process",
        "attempts": 1,
    }
    assert found["status"] == 200 and found["outcome"] == "ok"
    assert found["usage"] == {
        "prompt_tokens": usage.prompt_tokens,
        "completion_tokens": usage.completion_tokens,
        "total_tokens": usage.total_tokens,
    }


def test_metrics_export_the_engine_series(gateway: ServerThread) -> None:
    before = engine_series(gateway)
    client(gateway).completions.create(model=MODEL, prompt="Hello", max_tokens=4)
    after = engine_series(gateway)
    assert series(after, "sluice_builtin_engine_ready") == 1
    assert series(after, "sluice:num_requests_running") == 0
    assert series(after, "sluice:num_requests_waiting") == 0
    generated = "sluice:generation_tokens_total"
    assert series(after, generated) >= series(before, generated) + 4
    assert series(after, "sluice:kv_cache_usage_perc") == 0


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"prompt": "hello " * 300}, "prompt"),
        ({"prompt": ["one", "two"]}, "prompt"),
        ({"prompt": "hi", "extra_body": {"top_k": -5}}, "top_k"),
    ],
)
def test_engine_input_errors_are_gateway_400s(
    gateway: ServerThread, body: dict, param: str
) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        client(gateway).completions.create(model=MODEL, **body)
    assert caught.value.param == param
    assert caught.value.code is None or isinstance(caught.value.code, str)


def test_image_parts_are_refused_by_name(gateway: ServerThread) -> None:
    content = [{"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}}]
    with pytest.raises(openai.BadRequestError) as caught:
        client(gateway).chat.completions.create(
            model=MODEL,
            messages=[{"role": "user", "content": content}],
            stream=True,
        )
    assert caught.value.param == "messages[0].content[0].type"
    assert "text-only" in caught.value.message


def test_embeddings_are_not_served_by_the_engine(gateway: ServerThread) -> None:
    response = httpx.post(
        f"{gateway.url}/v1/embeddings", headers=AUTH, json={"model": MODEL, "input": "x"}
    )
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "unsupported_endpoint"


def test_client_disconnect_aborts_the_engine_request(gateway: ServerThread) -> None:
    def aborted() -> float:
        values = engine_series(gateway)
        label = 'finished_reason="abort"'
        return sum(v for k, v in values.items() if "request_success_total" in k and label in k)

    before = aborted()
    body = {"model": MODEL, "messages": MESSAGES, "max_tokens": 200, "ignore_eos": True}
    url = f"{gateway.url}/v1/chat/completions"
    with httpx.stream(
        "POST", url, headers=AUTH, json={**body, "stream": True}, timeout=30
    ) as response:
        assert response.status_code == 200
        events = 0
        running = None
        for line in response.iter_lines():
            events += line.startswith("data: {")
            if events == 3:
                # Still inside the loop: leaving it closes the iterator, and with it (in recent
                # httpx versions) the connection.
                running = series(engine_series(gateway), "sluice:num_requests_running")
                break
        assert running == 1
    wait_until(
        lambda: (
            aborted() == before + 1
            and series(engine_series(gateway), "sluice:kv_cache_usage_perc") == 0
        ),
        "the engine aborts the request and frees its KV blocks",
    )
    # The gateway is fine afterwards.
    reply = httpx.post(url, headers=AUTH, json={**body, "max_tokens": 2}, timeout=30)
    assert reply.status_code == 200, reply.text
    assert orjson.loads(reply.content)["usage"]["completion_tokens"] == 2
