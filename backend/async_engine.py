"""`AsyncEngine`: the engine on a worker thread, streamed to asyncio callers.

`async for output in engine.stream(...)`; leaving the loop early (cancellation, a client
gone) aborts the request, which frees its KV blocks before the next step.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import queue
import threading
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass

from backend.engine import LLMEngine
from backend.engine_config import EngineConfig
from backend.outputs import CompletionOutput, GenerationResult, RequestOutput
from backend.sampling_params import SamplingParams

log = logging.getLogger("sluicegate.engine")


class EngineDeadError(RuntimeError):
    """The engine loop failed; the request cannot complete."""


_STOP = object()


@dataclass(frozen=True, slots=True)
class _Add:
    request_id: str
    prompt: list[int]
    params: SamplingParams
    priority: int


@dataclass(frozen=True, slots=True)
class _Abort:
    request_id: str


_Delivery = RequestOutput | tuple[str, BaseException]


class AsyncEngine:
    def __init__(self, engine: LLMEngine):
        self.engine = engine
        self.tokenizer = engine.tokenizer
        self._commands: queue.SimpleQueue[object] = queue.SimpleQueue()
        self._streams: dict[str, asyncio.Queue[RequestOutput | BaseException]] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._ids = itertools.count()
        self._thread = threading.Thread(target=self._run, name="sluice-engine", daemon=True)
        self._thread.start()

    @classmethod
    async def start(cls, config: EngineConfig | None = None) -> AsyncEngine:
        """Load the model off the event loop, then start the engine thread."""
        engine = await asyncio.to_thread(LLMEngine, config, progress=False)
        return cls(engine)

    @property
    def max_model_len(self) -> int:
        return self.engine.max_model_len

    # ---- requests ----------------------------------------------------------------------------

    async def stream(
        self,
        prompt_token_ids: Sequence[int],
        params: SamplingParams,
        *,
        request_id: str | None = None,
        priority: int = 0,
    ) -> AsyncIterator[RequestOutput]:
        """Deltas as they are produced; the last one has `finished` set."""
        request_id = request_id or f"req-{next(self._ids)}"
        prompt = self.engine.check_request(prompt_token_ids, request_id)
        self._loop = asyncio.get_running_loop()
        outputs: asyncio.Queue[RequestOutput | BaseException] = asyncio.Queue()
        self._streams[request_id] = outputs
        self._commands.put(_Add(request_id, prompt, params, priority))
        finished = False
        try:
            while not finished:
                item = await outputs.get()
                if isinstance(item, BaseException):
                    raise item
                finished = item.finished
                yield item
        finally:
            self._streams.pop(request_id, None)
            if not finished:
                self._commands.put(_Abort(request_id))

    async def generate(
        self, prompt_token_ids: Sequence[int], params: SamplingParams, **kwargs: object
    ) -> GenerationResult:
        result: GenerationResult | None = None
        async for output in self.stream(prompt_token_ids, params, **kwargs):  # type: ignore[arg-type]
            if result is None:
                outs = [CompletionOutput(index=i) for i in range(params.n)]
                result = GenerationResult(output.request_id, output.prompt_token_ids, outs)
            result.add(output)
        assert result is not None
        return result

    def abort(self, request_id: str) -> None:
        self._commands.put(_Abort(request_id))

    async def aclose(self) -> None:
        self._commands.put(_STOP)
        await asyncio.to_thread(self._thread.join)

    # ---- the worker thread -------------------------------------------------------------------

    def _run(self) -> None:
        engine = self.engine
        while True:
            # Idle: sleep until a command arrives. Busy: take what has arrived and step.
            block = not engine.has_unfinished()
            try:
                while True:
                    command = self._commands.get(block=block)
                    if command is _STOP:
                        return
                    self._apply(command)
                    block = False
            except queue.Empty:
                pass
            if not engine.has_unfinished():
                continue
            try:
                outputs = engine.step()
            except Exception as exc:  # the loop must survive; fail what was running
                log.exception("engine step failed")
                self._fail_all(exc)
                continue
            if outputs:
                self._deliver(outputs)

    def _apply(self, command: object) -> None:
        if isinstance(command, _Abort):
            self.engine.abort_request(command.request_id)
            return
        assert isinstance(command, _Add)
        try:
            self.engine.add_request(
                command.request_id, command.prompt, command.params, priority=command.priority
            )
        except Exception as exc:
            self._deliver_error(command.request_id, exc)

    def _deliver(self, outputs: list[RequestOutput]) -> None:
        loop = self._loop
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(self._dispatch, list[_Delivery](outputs))

    def _dispatch(self, outputs: list[_Delivery]) -> None:
        # On the event loop: hand each output to its stream (gone streams were aborted).
        for item in outputs:
            payload: RequestOutput | BaseException
            if isinstance(item, tuple):
                request_id, payload = item
            else:
                request_id, payload = item.request_id, item
            stream = self._streams.get(request_id)
            if stream is not None:
                stream.put_nowait(payload)

    def _deliver_error(self, request_id: str, exc: BaseException) -> None:
        loop = self._loop
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(self._dispatch, list[_Delivery]([(request_id, exc)]))

    def _fail_all(self, exc: Exception) -> None:
        error = EngineDeadError(f"the engine step failed: {exc}")
        for request_id in list(self._streams):
            self.engine.abort_request(request_id)
            self._deliver_error(request_id, error)
