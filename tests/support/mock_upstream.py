"""A scriptable OpenAI-compatible upstream: a real HTTP server on loopback for the tests.

The upstream model name picks the behaviour (`echo`, `chars` (streams one character per event),
`hold`, `die-midstream`, `error-500`...),
and the server records what it saw so tests can assert on it.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route, Router

from tests.support.servers import ServerThread


@dataclass
class Record:
    seen: list[dict[str, Any]] = field(default_factory=list)
    headers: list[dict[str, str]] = field(default_factory=list)
    attempts: Counter[str] = field(default_factory=Counter)
    # Set once a held stream noticed that the gateway closed the connection.
    stream_cancelled: threading.Event = field(default_factory=threading.Event)
    # Released by the test to let a held stream finish.
    release: threading.Event = field(default_factory=threading.Event)
    # Set just after a held stream has sent its first chunks (a client may read them first: wait).
    first_chunks_sent: threading.Event = field(default_factory=threading.Event)
    # Requests of the `busy:<seconds>` behaviour being answered right now, and the most at once.
    in_flight: int = 0
    max_in_flight: int = 0


def completion(model: str, text: str) -> dict[str, Any]:
    return {
        "id": "chatcmpl-mock",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [
            {"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}
        ],
        "usage": {"prompt_tokens": 5, "completion_tokens": 3, "total_tokens": 8},
    }


def text_completion(model: str, text: str) -> dict[str, Any]:
    return {
        "id": "cmpl-mock",
        "object": "text_completion",
        "created": int(time.time()),
        "model": model,
        "choices": [{"index": 0, "text": text, "finish_reason": "stop", "logprobs": None}],
        "usage": {"prompt_tokens": 2, "completion_tokens": 3, "total_tokens": 5},
    }


def chunk(model: str, delta: dict[str, Any], finish: str | None = None) -> bytes:
    body = {
        "id": "chatcmpl-mock",
        "object": "chat.completion.chunk",
        "created": 0,
        "model": model,
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }
    return b"data: " + orjson.dumps(body) + b"\n\n"


def last_user_text(payload: dict[str, Any]) -> str:
    if "messages" in payload:
        content = payload["messages"][-1].get("content") or ""
        return (
            content
            if isinstance(content, str)
            else " ".join(p.get("text", "") for p in content if isinstance(p, dict))
        )
    prompt = payload.get("prompt", "")
    return prompt if isinstance(prompt, str) else str(prompt)


class MockUpstream:
    def __init__(self) -> None:
        self.record = Record()
        self.server = ServerThread(
            Router(
                routes=[
                    Route("/v1/chat/completions", self.chat, methods=["POST"]),
                    Route("/v1/completions", self.chat, methods=["POST"]),
                    Route("/v1/embeddings", self.embeddings, methods=["POST"]),
                    Route("/v1/models", self.models, methods=["GET"]),
                ]
            )
        )

    @property
    def base_url(self) -> str:
        return f"{self.server.url}/v1"

    def start(self) -> MockUpstream:
        self.server.start()
        return self

    def stop(self) -> None:
        self.record.release.set()
        self.server.stop()

    async def models(self, request: Request) -> Response:
        return JSONResponse({"object": "list", "data": [{"id": "echo", "object": "model"}]})

    async def embeddings(self, request: Request) -> Response:
        payload = orjson.loads(await request.body())
        self.record.seen.append(payload)
        return JSONResponse(
            {
                "object": "list",
                "model": payload["model"],
                "data": [{"object": "embedding", "index": 0, "embedding": [0.1, 0.2, 0.3]}],
                "usage": {"prompt_tokens": 2, "total_tokens": 2},
            }
        )

    async def chat(self, request: Request) -> Response:
        payload = orjson.loads(await request.body())
        self.record.seen.append(payload)
        self.record.headers.append(dict(request.headers))
        model = payload.get("model", "")
        rid = request.headers.get("x-request-id", "")
        self.record.attempts[rid] += 1
        behaviour = model.split(":")[0]
        if behaviour == "error-500":
            return JSONResponse({"error": {"message": "boom", "type": "server_error"}}, 500)
        if behaviour == "auth-401":
            return JSONResponse({"error": {"message": "bad key", "type": "auth"}}, 401)
        if behaviour == "bad-400":
            return JSONResponse(
                {
                    "error": {
                        "message": "context too long",
                        "type": "invalid_request_error",
                        "param": "messages",
                        "code": "context_length_exceeded",
                    }
                },
                400,
            )
        if behaviour == "flaky-503" and self.record.attempts[rid] < 3:
            return JSONResponse({"error": {"message": "overloaded", "type": "server_error"}}, 503)
        if behaviour == "always-503":
            return JSONResponse({"error": {"message": "overloaded", "type": "server_error"}}, 503)
        if behaviour == "slow":
            await asyncio.sleep(float(model.split(":")[1]))
        if behaviour == "busy":
            self.record.in_flight += 1
            self.record.max_in_flight = max(self.record.max_in_flight, self.record.in_flight)
            try:
                await asyncio.sleep(float(model.split(":")[1]))
            finally:
                self.record.in_flight -= 1
        text = f"echo: {last_user_text(payload)}"
        if behaviour == "long":
            text = " ".join(["tok"] * int(model.split(":")[1]))
        if behaviour == "hold" and not payload.get("stream"):
            # Headers now, the body only once released: a long non-streamed generation.
            body = orjson.dumps(completion(model, text))
            return HeldStream(self.record, [], [body], media_type=b"application/json")
        if not payload.get("stream"):
            if request.url.path.endswith("/v1/completions"):
                return JSONResponse(text_completion(model, text))
            return JSONResponse(completion(model, text))
        if behaviour == "hold":
            return HeldStream(
                self.record,
                [chunk(model, {"role": "assistant", "content": "first"})],
                [chunk(model, {"content": " last"}, "stop"), b"data: [DONE]\n\n"],
            )
        return StreamingResponse(
            self._stream(model, behaviour, text, payload), media_type="text/event-stream"
        )

    async def _stream(self, model: str, behaviour: str, text: str, payload: dict[str, Any]):
        yield chunk(model, {"role": "assistant", "content": ""})
        words = text.split(" ")
        if behaviour == "chars":  # one character per event: every possible cut
            for char in text:
                yield chunk(model, {"content": char})
        else:
            for i, word in enumerate(words):
                yield chunk(model, {"content": word if i == 0 else " " + word})
        if behaviour == "die-midstream":
            # Half an event, then the connection goes away.
            yield b'data: {"id": "chatcmpl-mock", "choi'
            raise ConnectionResetError("mock upstream dies mid-stream")
        if behaviour == "no-done":
            yield chunk(model, {}, "stop")
            return
        yield chunk(model, {}, "stop")
        if (payload.get("stream_options") or {}).get("include_usage"):
            usage = {
                "id": "chatcmpl-mock",
                "object": "chat.completion.chunk",
                "created": 0,
                "model": model,
                "choices": [],
                "usage": {
                    "prompt_tokens": 5,
                    "completion_tokens": len(words),
                    "total_tokens": 5 + len(words),
                },
            }
            yield b"data: " + orjson.dumps(usage) + b"\n\n"
        yield b"data: [DONE]\n\n"


class HeldStream(Response):
    """Sends its first chunks, then waits until the test releases it or the client goes away."""

    def __init__(
        self,
        record: Record,
        first: list[bytes],
        rest: list[bytes],
        media_type: bytes = b"text/event-stream",
    ) -> None:
        super().__init__()
        self.record, self.first, self.rest, self.held_type = record, first, rest, media_type

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        headers = [(b"content-type", self.held_type)]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        for part in self.first:
            await send({"type": "http.response.body", "body": part, "more_body": True})
        self.record.first_chunks_sent.set()

        async def client_gone() -> None:
            while (await receive())["type"] != "http.disconnect":
                pass

        released = asyncio.ensure_future(asyncio.to_thread(self.record.release.wait))
        gone = asyncio.ensure_future(client_gone())
        await asyncio.wait({released, gone}, return_when=asyncio.FIRST_COMPLETED)
        if gone.done():
            self.record.stream_cancelled.set()
            return
        gone.cancel()
        for part in self.rest:
            await send({"type": "http.response.body", "body": part, "more_body": True})
        await send({"type": "http.response.body", "body": b"", "more_body": False})
