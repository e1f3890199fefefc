"""A builtin backend's life around its engine: loading in the background, waiting, failing,
surviving reloads; with a stand-in engine, so these run in milliseconds."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncGenerator, Iterator
from typing import Any

import orjson
import pytest

from backend.outputs import EngineInputError
from gateway.config.loader import PolicyError, parse_policy
from gateway.errors import InvalidRequest, UpstreamError, UpstreamUnavailable
from gateway.runtime import Runtime
from gateway.upstream import builtin
from gateway.upstream.builtin import BuiltinUpstream
from tests.conftest import KEYS_ENV

CHAT = orjson.dumps({"model": "m", "messages": [{"role": "user", "content": "hi"}]})


class FakeEngine:
    def __init__(self) -> None:
        self.closed = 0

    async def aclose(self) -> None:
        self.closed += 1


class FakeHandler:
    """Answers like OpenAIHandler; `fail` makes it raise instead."""

    def __init__(self, fail: BaseException | None = None) -> None:
        self.engine = FakeEngine()
        self.fail = fail
        self.streams_closed = 0

    async def complete(self, kind: str, body: Any, request_id: str) -> bytes:
        if self.fail is not None:
            raise self.fail
        return orjson.dumps({"kind": kind, "id": request_id})

    async def stream(self, kind: str, body: Any, request_id: str) -> AsyncGenerator[bytes, None]:
        if self.fail is not None:
            raise self.fail
        try:
            yield b'data: {"n": 1}\n\n'
            await asyncio.sleep(3600)  # a long generation
            yield b"data: [DONE]\n\n"
        finally:
            self.streams_closed += 1


class Loads:
    """Stands in for the engine load: blocks until `finish()` or `fail()`."""

    def __init__(self) -> None:
        self.go = threading.Event()
        self.error: Exception | None = None
        self.handler = FakeHandler()
        self.calls = 0

    def __call__(self, name: str, config: Any) -> builtin._Loaded:
        self.calls += 1
        self.go.wait(10)
        if self.error is not None:
            raise self.error
        return builtin._Loaded(self.handler, collector=None)  # type: ignore[arg-type]

    def finish(self) -> None:
        self.go.set()


@pytest.fixture
def loads(monkeypatch: pytest.MonkeyPatch) -> Iterator[Loads]:
    fake = Loads()
    monkeypatch.setattr(builtin, "_start_engine", fake)
    yield fake
    fake.go.set()


def policy(extra: str = "") -> str:
    return f"""
auth: none
backends:
  engine:
    kind: builtin
    kv_cache_gb: 0.5
    timeouts: {{total_s: 0.3}}
{extra}
models:
  m: {{backend: engine}}
"""


def upstream(loads: Loads, extra: str = "") -> BuiltinUpstream:
    config = parse_policy(policy(extra), "p.yaml", KEYS_ENV).backends["engine"]
    assert isinstance(config, builtin.BuiltinBackend)
    return BuiltinUpstream("engine", config)


async def test_a_request_during_the_load_waits_and_is_served(loads: Loads) -> None:
    engine = upstream(loads)
    assert await engine.probe() == "loading model smollm2-135m-instruct"
    waiting = asyncio.create_task(engine.open("/chat/completions", CHAT, "r1"))
    await asyncio.sleep(0.05)
    assert not waiting.done()
    loads.finish()
    reply = await waiting
    assert orjson.loads(await reply.read()) == {"kind": "chat", "id": "r1"}
    assert await engine.probe() is None and engine.ready


async def test_a_load_longer_than_total_s_is_a_503_saying_so(loads: Loads) -> None:
    engine = upstream(loads)
    with pytest.raises(UpstreamUnavailable) as caught:
        await engine.open("/chat/completions", CHAT, "r1")
    assert "still loading" in caught.value.message and caught.value.code == "model_loading"
    assert caught.value.headers == {"retry-after": "5"}


async def test_a_failed_load_is_a_503_naming_the_cause(loads: Loads) -> None:
    loads.error = ValueError("model 'x' is neither an embedded model nor a folder")
    loads.finish()
    engine = upstream(loads)
    with pytest.raises(UpstreamUnavailable, match=r"could not load its model.*neither"):
        await engine.open("/completions", CHAT, "r1")
    assert (await engine.probe() or "").startswith("model failed to load: model 'x'")


async def test_engine_input_errors_become_400s_with_the_param(loads: Loads) -> None:
    loads.handler = FakeHandler(EngineInputError("temperature must be in [0, 100]", "temperature"))
    loads.finish()
    engine = upstream(loads)
    with pytest.raises(InvalidRequest) as caught:
        await engine.open("/chat/completions", CHAT, "r1")
    assert caught.value.param == "temperature" and caught.value.status_code == 400
    stream = orjson.dumps({**orjson.loads(CHAT), "stream": True})
    with pytest.raises(InvalidRequest):
        await engine.open("/chat/completions", stream, "r2")


async def test_an_engine_failure_is_a_502(loads: Loads) -> None:
    loads.handler = FakeHandler(RuntimeError("the engine step failed: boom"))
    loads.finish()
    with pytest.raises(UpstreamError, match="boom") as caught:
        await upstream(loads).open("/chat/completions", CHAT, "r1")
    assert caught.value.status_code == 502


async def test_embeddings_are_refused(loads: Loads) -> None:
    with pytest.raises(InvalidRequest, match="does not serve /embeddings"):
        await upstream(loads).open("/embeddings", b"{}", "r1")


async def test_closing_a_stream_closes_the_engine_request(loads: Loads) -> None:
    loads.finish()
    engine = upstream(loads)
    body = orjson.dumps({**orjson.loads(CHAT), "stream": True})
    reply = await engine.open("/chat/completions", body, "r1")
    chunks = reply.aiter_raw()
    assert await anext(chunks) == b'data: {"n": 1}\n\n'
    assert loads.handler.streams_closed == 0
    await reply.aclose()
    assert loads.handler.streams_closed == 1


def test_a_reload_keeps_an_unchanged_engine_and_replaces_a_changed_one(loads: Loads) -> None:
    loads.finish()
    before = Runtime(parse_policy(policy(), "p.yaml", KEYS_ENV), KEYS_ENV)
    same = Runtime(parse_policy(policy(), "p.yaml", KEYS_ENV), KEYS_ENV, before)
    assert same.upstreams["engine"] is before.upstreams["engine"]
    assert before.retired(same) == [] and loads.calls == 1
    changed_text = policy().replace("kv_cache_gb: 0.5", "kv_cache_gb: 0.25")
    changed = Runtime(parse_policy(changed_text, "p.yaml", KEYS_ENV), KEYS_ENV, same)
    assert changed.upstreams["engine"] is not same.upstreams["engine"]
    assert same.retired(changed) == [same.upstreams["engine"]]


async def test_closing_stops_the_engine_also_when_closed_mid_load(loads: Loads) -> None:
    engine = upstream(loads)
    await engine.aclose()  # still loading: the load stops the engine when it arrives
    loads.finish()
    await asyncio.to_thread(lambda: engine._loaded.exception(timeout=5))
    assert loads.handler.engine.closed == 1
    assert await engine.probe() == "model failed to load: the backend was closed while loading"


@pytest.mark.parametrize(
    ("line", "words"),
    [
        ("    base_url: http://x/v1", "base_url"),
        ("    dtype: float8", "dtype"),
        ("    max_num_seqs: 0", "max_num_seqs"),
        ("    device: tpu", "device"),
    ],
)
def test_builtin_backend_keys_are_checked(line: str, words: str) -> None:
    with pytest.raises(PolicyError, match=words):
        parse_policy(policy(line), "p.yaml", KEYS_ENV)
