"""The guard stages of the request path: input guards before the upstream, output guards on a
whole answer or around a stream, pseudonyms restored for the client after them.

The pipeline calls these only when the policy has guards (`call.guards` is set). `stage` opens a
tracing stage of the request by name (a no-op without tracing).
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any

import orjson

from gateway.api.validation import strict_json
from gateway.errors import ContentFiltered
from gateway.guards.base import GuardContext, Stage, TextSlot
from gateway.guards.pseudonyms import Pseudonyms
from gateway.guards.stream import GuardedStream, merged_decisions
from gateway.guards.texts import request_slots, response_slots
from gateway.metrics import Metrics

if TYPE_CHECKING:
    from gateway.audit.trail import Trail
    from gateway.pipeline import Call

StageSpan = Callable[[str], AbstractContextManager[Any]]


async def guard_input(call: Call, metrics: Metrics, stage: StageSpan) -> None:
    """Run the input guards; a modified request goes upstream (and to the audit) rewritten."""
    guards = call.guards
    assert guards is not None
    call.pseudonyms = Pseudonyms()
    if not guards.input:
        return
    trail = call.trail
    data = strict_json(call.body)
    ctx = _context(call, "input", request_slots(data))
    ctx.metadata["request"] = data
    try:
        with stage("guards.input"):
            await guards.run(ctx, _records(trail), metrics.guard, _guard_spans(call, stage))
    except ContentFiltered:
        trail.withhold_prompt()
        raise
    if ctx.modified:
        call.body = orjson.dumps(data)
        trail.request_body(call.body, trail.user)


async def guard_output(
    call: Call, content: bytes, metrics: Metrics, stage: StageSpan
) -> tuple[bytes, bytes]:
    """Output guards on a whole answer: (the answer for the audit, the answer for the client:
    the same with pseudonyms restored)."""
    guards = call.guards
    assert guards is not None
    restore = _restores(call)
    if not guards.output and not restore:
        return content, content
    try:
        data = orjson.loads(content)
    except orjson.JSONDecodeError:
        return content, content
    if not isinstance(data, dict):
        return content, content
    slots = response_slots(data)
    if guards.output:
        ctx = _context(call, "output", slots)
        with stage("guards.output"):
            await guards.run(ctx, _records(call.trail), metrics.guard, _guard_spans(call, stage))
        if ctx.modified:
            content = orjson.dumps(data)
    if not restore:
        return content, content
    changed = False
    for slot in slots:
        restored = call.pseudonyms.restore(slot.text)
        if restored != slot.text:
            slot.write(restored)
            changed = True
    return content, (orjson.dumps(data) if changed else content)


def stream_guard(call: Call) -> GuardedStream | None:
    """The output guards and pseudonym restoring around a stream; None where neither applies."""
    guards = call.guards
    assert guards is not None
    restore = _restores(call)
    if not guards.output and not restore:
        return None
    call.trail.text_from_guards()
    ctx = _context(call, "output", [])
    restorer = call.pseudonyms.restorer if restore else None
    return GuardedStream(guards.output, ctx, restorer, call.trail.response_text)


def record_stream_decisions(call: Call, guarded: GuardedStream, metrics: Metrics) -> None:
    """A stream's decisions, one per guard, into the audit record and the metrics."""
    records = _records(call.trail)
    for decision in merged_decisions(guarded.guards, guarded.ctx.decisions):
        records.append(decision.record("output"))
        metrics.guard_decisions.labels(decision.guard, "output", decision.action).inc()


def _restores(call: Call) -> bool:
    """Whether the client's answer needs pseudonyms put back."""
    pseudonyms = call.pseudonyms
    assert call.guards is not None
    return call.guards.restores and pseudonyms is not None and len(pseudonyms) > 0


def _records(trail: Trail) -> list[dict[str, Any]]:
    if trail.guards is None:
        trail.guards = []
    return trail.guards


def _guard_spans(call: Call, stage: StageSpan) -> StageSpan | None:
    """One `guard.<name>` span per guard, under a traced request only."""
    if call.span is None:
        return None
    return lambda name: stage(f"guard.{name}")


def _context(call: Call, stage: Stage, slots: list[TextSlot]) -> GuardContext:
    trail = call.trail
    return GuardContext(
        stage,
        slots,
        model=trail.model,
        principal=trail.principal,
        request_id=call.head.request_id,
        pseudonyms=call.pseudonyms,
    )
