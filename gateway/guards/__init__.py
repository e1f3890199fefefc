"""Guards: the stages that inspect and rewrite requests and responses (see base.py)."""

from gateway.guards.base import (
    Decision,
    Guard,
    GuardBlocked,
    GuardContext,
    StreamFilter,
    StreamingGuard,
    TextSlot,
    Verdict,
)
from gateway.guards.texts import request_slots, response_slots
from gateway.guards.window import SlidingWindow, Span, disjoint, rewrite, rewrite_all

__all__ = [
    "Decision",
    "Guard",
    "GuardBlocked",
    "GuardContext",
    "SlidingWindow",
    "Span",
    "StreamFilter",
    "StreamingGuard",
    "TextSlot",
    "Verdict",
    "disjoint",
    "request_slots",
    "response_slots",
    "rewrite",
    "rewrite_all",
]
