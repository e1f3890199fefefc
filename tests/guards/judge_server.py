"""A tiny OpenAI-compatible chat server on loopback that plays a Llama-Guard-style judge.

It answers by what the last user message contains: "S1-BAIT" -> "unsafe\\nS1", "S10-BAIT" ->
"unsafe\\nS10", "S5-BAIT" -> "unsafe\\nS5", "GARBLE" -> an answer that is no verdict, "SLOW" ->
waits 3 s first; anything else -> "safe". It records every request body it received.
"""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route, Router

from tests.support.servers import ServerThread

ANSWERS = (
    ("S10-BAIT", "unsafe\nS10"),
    ("S1-BAIT", "unsafe\nS1"),
    ("S5-BAIT", "unsafe\nS5"),
    ("GARBLE", "I think this might be fine?"),
)


class JudgeServer:
    def __init__(self) -> None:
        self.seen: list[dict[str, Any]] = []
        self.server = ServerThread(
            Router(
                routes=[
                    Route("/v1/chat/completions", self.chat, methods=["POST"]),
                    Route("/v1/models", self.models, methods=["GET"]),
                ]
            )
        )

    @property
    def base_url(self) -> str:
        return f"{self.server.url}/v1"

    def start(self) -> JudgeServer:
        self.server.start()
        return self

    def stop(self) -> None:
        self.server.stop()

    async def models(self, request: Request) -> Response:
        return JSONResponse({"object": "list", "data": [{"id": "guard", "object": "model"}]})

    async def chat(self, request: Request) -> Response:
        payload = orjson.loads(await request.body())
        self.seen.append(payload)
        prompt = payload["messages"][-1]["content"]
        if "SLOW" in prompt:
            await asyncio.sleep(3)
        answer = next((reply for bait, reply in ANSWERS if bait in prompt), "safe")
        return JSONResponse(
            {
                "id": "chatcmpl-judge",
                "object": "chat.completion",
                "created": 0,
                "model": payload["model"],
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": answer},
                        "finish_reason": "stop",
                    }
                ],
            }
        )
