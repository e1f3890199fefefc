"""`OpenAIHandler`: one OpenAI request in, the engine run, the OpenAI answer out (whole or SSE).

Leaving a stream early (a client gone, a cancelled task) closes the engine's generator,
which aborts the request and frees its KV blocks at once.
"""

from __future__ import annotations

import itertools
from collections.abc import AsyncGenerator
from contextlib import aclosing
from typing import TYPE_CHECKING, Any, cast

from backend.outputs import CompletionOutput, RequestOutput
from backend.serving.protocol import EngineRequest, parse_request
from backend.serving.responses import DONE_EVENT, ResponseWriter, TokenTexts

if TYPE_CHECKING:
    from backend.async_engine import AsyncEngine


class OpenAIHandler:
    """Serves `/v1/chat/completions` ("chat") and `/v1/completions` ("completions") bodies.

    Client mistakes raise `backend.outputs.EngineInputError` (HTTP 400) before any output:
    from `complete`, or from the first step of `stream`'s iterator, so a caller can fetch the
    first event before it commits to a 200.
    """

    def __init__(self, engine: AsyncEngine, model_name: str) -> None:
        self.engine = engine
        self.model_name = model_name
        self.texts = TokenTexts(engine.tokenizer)
        self._ids = itertools.count()

    async def parse(self, kind: str, body: Any) -> EngineRequest:
        return await parse_request(
            kind,
            body,
            self.engine.tokenizer,
            max_model_len=self.engine.max_model_len,
            vocab_size=self.engine.engine.model_config.vocab_size,
        )

    async def complete(self, kind: str, body: Any, request_id: str) -> bytes:
        """The whole answer: a chat.completion or text_completion object."""
        request = await self.parse(kind, body)
        writer = self._writer(request, request_id)
        outputs = [CompletionOutput(index=i) for i in range(request.params.n)]
        cached = 0
        async with aclosing(self._generate(request, request_id)) as stream:
            async for output in stream:
                cached = output.num_cached_tokens
                for delta in output.deltas:
                    outputs[delta.index].add(delta)
        return writer.whole(outputs, cached)

    async def stream(self, kind: str, body: Any, request_id: str) -> AsyncGenerator[bytes, None]:
        """Whole SSE events, ending with `data: [DONE]`; close it to abort the request."""
        request = await self.parse(kind, body)
        writer = self._writer(request, request_id)
        first = writer.first_events()
        if first:
            yield first
        completion_tokens = cached = 0
        async with aclosing(self._generate(request, request_id)) as stream:
            async for output in stream:
                completion_tokens += sum(len(delta.token_ids) for delta in output.deltas)
                cached = output.num_cached_tokens
                events = writer.delta_events(output)
                if events:
                    yield events
        if request.include_usage:
            yield writer.usage_event(completion_tokens, cached)
        yield DONE_EVENT

    def _writer(self, request: EngineRequest, request_id: str) -> ResponseWriter:
        # Answer with the name the client asked for (a gateway may route several names here).
        return ResponseWriter(request, request_id, request.model or self.model_name, self.texts)

    def _generate(
        self, request: EngineRequest, request_id: str
    ) -> AsyncGenerator[RequestOutput, None]:
        # The engine wants ids unique among running requests; a client may reuse its own.
        engine_id = f"{request_id}.{next(self._ids)}"
        ids, params, priority = request.prompt_token_ids, request.params, request.priority
        stream = self.engine.stream(ids, params, request_id=engine_id, priority=priority)
        return cast("AsyncGenerator[RequestOutput, None]", stream)  # an async generator
