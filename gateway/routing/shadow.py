"""Shadow traffic: a sampled copy of a model's requests sent to another backend alongside the
primary, with its own timeout and a cap on copies in flight (a sampled request finding the cap
full is not copied, and counted). The copy never touches the primary's answer; once both are in,
their texts are compared and the result goes into the request's audit record (`shadow`).
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from typing import Any

import orjson

from gateway.config.routing import ShadowConfig
from gateway.errors import GatewayError, UpstreamError, UpstreamUnavailable
from gateway.routing.pool import Pool
from gateway.upstream.interface import Retryable

log = logging.getLogger("sluicegate.shadow")

# Bytes of an answer kept for the comparison; a longer answer is compared by length only.
MAX_COMPARED_BYTES = 1 << 20


class ShadowRunner:
    """One model's shadow target and its counters (read by /metrics)."""

    def __init__(self, config: ShadowConfig, pool: Pool, public_model: str) -> None:
        self.config = config
        self.pool = pool
        self.upstream_model = config.model or public_model
        self.in_flight = 0
        self.tasks: set[asyncio.Task[None]] = set()
        # Counters: copies sent, dropped (cap full), by outcome, compared, matched.
        self.sent = 0
        self.dropped = 0
        self.outcomes: dict[str, int] = {"ok": 0, "error": 0, "timeout": 0}
        self.compared = 0
        self.exact = 0

    def sample(self) -> bool:
        rate = self.config.sample_rate
        return rate >= 1.0 or (rate > 0.0 and random.random() < rate)

    def start(self, path: str, body: bytes, request_id: str, streaming: bool) -> ShadowCopy | None:
        """Send a copy now, unless the cap is reached (then None, counted as dropped)."""
        if self.in_flight >= self.config.max_concurrency:
            self.dropped += 1
            return None
        self.in_flight += 1
        self.sent += 1
        return ShadowCopy(self, path, _renamed(body, self.upstream_model), request_id, streaming)

    async def aclose(self) -> None:
        for task in list(self.tasks):
            task.cancel()


class ShadowCopy:
    """One copy in flight, and the primary's answer it is compared with."""

    __slots__ = ("_primary", "_primary_failed", "_streaming", "_text", "result", "runner", "task")

    def __init__(
        self, runner: ShadowRunner, path: str, body: bytes, request_id: str, streaming: bool
    ) -> None:
        self.runner = runner
        self._streaming = streaming
        self._primary: bytes | None = None
        self._primary_failed = False
        self._text: str | None = None
        self.result: dict[str, Any] = {
            "backend": runner.pool.name,
            "model": runner.upstream_model,
            "status": None,
            "latency_ms": None,
            "ttft_ms": None,
            "length": None,
            "primary_length": None,
            "exact_match": None,
            "error": None,
        }
        self.task = asyncio.get_running_loop().create_task(
            self._run(path, body, f"{request_id}-shadow")
        )
        runner.tasks.add(self.task)
        self.task.add_done_callback(runner.tasks.discard)

    # -- the primary side (the router calls these) -------------------------------------------
    def primary_answered(self, body: bytes | None) -> None:
        """The primary's whole answer (a JSON body or SSE bytes); None: too long to compare."""
        self._primary = body

    def primary_failed(self) -> None:
        self._primary_failed = True

    # -- the copy ----------------------------------------------------------------------------
    async def _run(self, path: str, body: bytes, request_id: str) -> None:
        runner, result = self.runner, self.result
        started = time.perf_counter()
        try:
            async with asyncio.timeout(runner.config.timeout_s):
                answer = await self._send(path, body, request_id, started)
            result["status"] = 200
            runner.outcomes["ok"] += 1
            if answer is not None:
                self._text = answer_text(answer, self._streaming)
                if self._text is not None:
                    result["length"] = len(self._text)
        except TimeoutError:
            result["status"], result["error"] = 504, "shadow_timeout"
            runner.outcomes["timeout"] += 1
        except Retryable as failure:
            result["status"], result["error"] = failure.error.status_code, failure.error.code
            runner.outcomes["error"] += 1
        except GatewayError as error:
            result["status"], result["error"] = error.status_code, error.code
            runner.outcomes["error"] += 1
        except Exception as exc:  # the copy must never fail anything else
            log.debug("shadow copy %s failed: %r", request_id, exc)
            result["status"], result["error"] = 502, type(exc).__name__
            runner.outcomes["error"] += 1
        finally:
            runner.in_flight -= 1
            result["latency_ms"] = round((time.perf_counter() - started) * 1000, 3)

    async def _send(self, path: str, body: bytes, request_id: str, started: float) -> bytes | None:
        pool = self.runner.pool
        now = time.monotonic()
        replica = pool.pick(now, frozenset())
        if replica is None:
            raise UpstreamUnavailable(f"Backend '{pool.name}': {pool.unavailable_reason(now)}")
        try:
            reply = await replica.upstream.open(path, body, request_id)
        except (Retryable, UpstreamError):
            replica.outcome(time.monotonic(), False)
            raise
        except BaseException:
            replica.outcome(time.monotonic(), None)
            raise
        replica.outcome(time.monotonic(), True)
        try:
            if not self._streaming:
                data = await reply.read()
                return data if len(data) <= MAX_COMPARED_BYTES else None
            parts: list[bytes] = []
            size = 0
            async for chunk in reply.aiter_raw():
                if self.result["ttft_ms"] is None:
                    self.result["ttft_ms"] = round((time.perf_counter() - started) * 1000, 3)
                size += len(chunk)
                if size <= MAX_COMPARED_BYTES:
                    parts.append(chunk)
            return b"".join(parts) if size <= MAX_COMPARED_BYTES else None
        finally:
            await reply.aclose()

    # -- the record ----------------------------------------------------------------------------
    async def settle(self, record: dict[str, Any]) -> None:
        """After the primary's answer went out: wait for the copy (its own timeout bounds the
        wait) and put the comparison of both into the audit record's `shadow`."""
        try:
            await asyncio.shield(self.task)
        except asyncio.CancelledError:
            # The request is over and its task is being cancelled (a forced shutdown): the
            # record must still be written, so the cancel ends here.
            record["shadow"] = {**self.result, "error": "unfinished"}
            return
        result = self.result
        if not self._primary_failed and self._primary is not None:
            primary = answer_text(self._primary, self._streaming)
            if primary is not None:
                result["primary_length"] = len(primary)
                if self._text is not None:
                    result["exact_match"] = self._text == primary
                    self.runner.compared += 1
                    self.runner.exact += result["exact_match"]
        record["shadow"] = result


def answer_text(body: bytes, streamed: bool) -> str | None:
    """The generated text of a chat or text completion (choices joined in index order), from
    a whole JSON answer or from SSE events; None when it holds no choices."""
    texts: dict[int, list[str]] = {}
    if streamed:
        for event in body.split(b"\n\n"):
            event = event.strip()
            if not event.startswith(b"data: {"):
                continue
            _add_choices(texts, _json(event[6:]), "delta")
    else:
        _add_choices(texts, _json(body), "message")
    if not texts:
        return None
    return "\n".join("".join(texts[index]) for index in sorted(texts))


def _add_choices(texts: dict[int, list[str]], data: Any, part: str) -> None:
    if not isinstance(data, dict):
        return
    for choice in data.get("choices") or []:
        if not isinstance(choice, dict):
            continue
        index = choice.get("index", 0)
        inner = choice.get(part)
        text = inner.get("content") if isinstance(inner, dict) else None
        if text is None:
            text = choice.get("text")
        bucket = texts.setdefault(index if isinstance(index, int) else 0, [])
        if isinstance(text, str):
            bucket.append(text)


def _json(data: bytes) -> Any:
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError:
        return None


def _renamed(body: bytes, model: str) -> bytes:
    data = _json(body)
    if not isinstance(data, dict):
        return body
    data["model"] = model
    # The copy's usage is not charged to anyone: no need to ask for it.
    data.pop("stream_options", None)
    return orjson.dumps(data)
