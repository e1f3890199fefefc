"""The guard protocol: what every guard, built in or plugged in, is written against.

A guard gets a `GuardContext` (the request's texts as `TextSlot`s, the principal, the model,
the conversation's pseudonyms) and returns a `Decision`: allow, modify (it rewrote slots through
`ctx.replace`) or block, with a reason. The pipeline, not the guard, handles ordering, timing,
metrics, tracing and the audit record of decisions.

Output guards that can also work on a stream offer `stream_filter(ctx)`: a `StreamFilter` that
sees a choice's text piece by piece and returns what may leave the gateway now.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, Protocol, runtime_checkable

if TYPE_CHECKING:
    from gateway.auth import Principal
    from gateway.guards.pseudonyms import Pseudonyms

Stage = Literal["input", "output"]


class Verdict(enum.StrEnum):
    ALLOW = "allow"
    MODIFY = "modify"
    BLOCK = "block"


@dataclass(slots=True)
class Decision:
    """What one guard decided about one request (or one response).

    `action` names what was done: "allow", "block", "redact", "mask", "hash", "pseudonymize",
    "flag" (allowed but noted), or a plugin's own word. `categories` counts entity types or
    moderation categories found; `scores` holds the highest score per category. Never the text.
    """

    guard: str
    verdict: Verdict
    action: str
    reason: str | None = None
    categories: dict[str, int] = field(default_factory=dict)
    scores: dict[str, float] = field(default_factory=dict)

    @classmethod
    def allow(cls, guard: str, **scores: float) -> Decision:
        return cls(guard, Verdict.ALLOW, "allow", scores=dict(scores))

    @classmethod
    def block(
        cls,
        guard: str,
        reason: str,
        categories: dict[str, int] | None = None,
        scores: dict[str, float] | None = None,
    ) -> Decision:
        return cls(guard, Verdict.BLOCK, "block", reason, categories or {}, scores or {})

    @property
    def blocked(self) -> bool:
        return self.verdict is Verdict.BLOCK

    def record(self, stage: Stage) -> dict[str, Any]:
        """The audit record's form of this decision."""
        out: dict[str, Any] = {"guard": self.guard, "stage": stage, "action": self.action}
        if self.reason is not None:
            out["reason"] = self.reason
        if self.categories:
            out["categories"] = self.categories
        if self.scores:
            out["scores"] = {k: round(v, 4) for k, v in self.scores.items()}
        return out


SlotKind = Literal["content", "name", "tool_arguments", "tool_result", "prompt", "input", "refusal"]


@dataclass(slots=True, eq=False)
class TextSlot:
    """One place in a request or a response where text can hide.

    `path` says where (``messages[2].content[0].text``); `role` is the message's role (None for
    completions prompts and embeddings input); `user_controlled` is False only for text the
    deployment wrote itself (system and developer messages), which injection guards skip.
    """

    path: str
    kind: SlotKind
    role: str | None
    text: str
    user_controlled: bool
    container: Any
    key: Any

    def write(self, text: str) -> None:
        self.text = text
        self.container[self.key] = text


class GuardBlocked(Exception):
    """Raised by a stream filter that must stop the stream; carries its decision."""

    def __init__(self, decision: Decision) -> None:
        super().__init__(decision.reason or decision.guard)
        self.decision = decision


class GuardContext:
    """The request (or response) as guards see it. One per stage per request."""

    __slots__ = (
        "decisions",
        "metadata",
        "model",
        "modified",
        "principal",
        "pseudonyms",
        "request_id",
        "slots",
        "stage",
    )

    def __init__(
        self,
        stage: Stage,
        slots: list[TextSlot],
        *,
        model: str | None = None,
        principal: Principal | None = None,
        request_id: str = "",
        pseudonyms: Pseudonyms | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> None:
        self.stage: Stage = stage
        self.slots = slots
        self.model = model
        self.principal = principal
        self.request_id = request_id
        self.pseudonyms = pseudonyms
        # Free-form per-request values: the parsed body under "request" (input stage).
        self.metadata: dict[str, Any] = metadata if metadata is not None else {}
        self.modified = False
        # Decisions made outside `check` (by stream filters); the pipeline reads them at the end.
        self.decisions: list[Decision] = []

    def replace(self, slot: TextSlot, text: str) -> None:
        """Rewrite one slot's text (in the body that goes on, too)."""
        if text != slot.text:
            slot.write(text)
            self.modified = True

    def texts(self, *, user_controlled_only: bool = False) -> list[TextSlot]:
        if not user_controlled_only:
            return self.slots
        return [slot for slot in self.slots if slot.user_controlled]


@runtime_checkable
class Guard(Protocol):
    """A guard: `name` for audit and metrics, one async `check`."""

    name: str

    async def check(self, ctx: GuardContext) -> Decision: ...


class StreamFilter(Protocol):
    """One choice's text on its way out of a stream.

    `feed` gets the next piece and returns what may be sent now (possibly "" while it holds
    back a possible match); `flush` returns the rest at the end of the choice. Either raises
    `GuardBlocked` to end the stream. Modifications are recorded with `ctx.decisions`.
    """

    def feed(self, text: str) -> str: ...

    def flush(self) -> str: ...


@runtime_checkable
class StreamingGuard(Guard, Protocol):
    """An output guard that can also filter a stream as it passes."""

    def stream_filter(self, ctx: GuardContext) -> StreamFilter: ...


# A factory a plugin may expose instead of a class: options in, guard out.
GuardFactory = Callable[..., Guard]
