"""The `pii` guard: finds personal data and credentials in every text slot and acts on each.

Input: every slot (content strings and parts, names, tool arguments, tool results) is
analysed; texts seen before come from the cache, the rest go to the engine's worker thread
in one hop. Any entity whose action is `block` blocks the request (the reason names its type,
never its value); the rest are redacted, masked, hashed, pseudonymized or flagged in place.
Output: the same on a whole response, and `stream_filter` for streams (see stream.py).
"""

from __future__ import annotations

import asyncio
import os
from collections import Counter
from typing import TYPE_CHECKING

from gateway.guards.base import Decision, GuardContext, StreamFilter, Verdict
from gateway.guards.pii.actions import apply, replacement
from gateway.guards.pii.cache import DetectionCache, Detections, digest
from gateway.guards.pii.config import STRENGTH, PIIAction, PIIConfig
from gateway.guards.pii.detector import Detector
from gateway.guards.pii.stream import pattern_scanner, pii_stream_filter, stream_replacer
from gateway.guards.pseudonyms import Pseudonyms
from gateway.guards.window import Span

# engine.py imports Presidio and spaCy (seconds): only `start` (or a first use) loads it.
if TYPE_CHECKING:
    from gateway.guards.pii.engine import PIIEngine

# Text a secrets-only guard scans on the event loop itself (a few ms at most); more goes to a
# worker thread.
INLINE_SECRETS_CHARS = 16_384


class PIIGuard:
    """Presidio (spaCy NER + pattern recognizers) and our secret rules, per `PIIConfig`."""

    def __init__(self, config: PIIConfig) -> None:
        self.config = config
        self.name = config.name
        self.detector = Detector(config)
        self.cache = DetectionCache(config.cache_size)
        self._salt = _hash_salt(config) if config.uses(PIIAction.HASH) else b""
        self._engine: PIIEngine | None = None

    async def start(self) -> None:
        """Load the shared Presidio engine (in a worker thread) if this config needs it."""
        await self._ready()

    async def aclose(self) -> None:
        # The engine and its worker are shared with other guards and later policies.
        return None

    async def check(self, ctx: GuardContext) -> Decision:
        slots = [slot for slot in ctx.slots if slot.text]
        if not slots:
            return Decision.allow(self.name)
        found = await self.detect([slot.text for slot in slots])
        action_of = self.detector.action_of
        categories: Counter[str] = Counter()
        scores: dict[str, float] = {}
        blocked: set[str] = set()
        for spans in found:
            for span in spans:
                categories[span.label] += 1
                scores[span.label] = max(span.score, scores.get(span.label, 0.0))
                if action_of(span.label) is PIIAction.BLOCK:
                    blocked.add(span.label)
        if not categories:
            return Decision.allow(self.name)
        if blocked:
            reason = "found " + ", ".join(sorted(blocked))
            return Decision.block(self.name, reason, dict(categories), scores)
        output = ctx.stage == "output"
        if ctx.pseudonyms is None and not output:
            ctx.pseudonyms = Pseudonyms()
        pseudonyms = ctx.pseudonyms
        salt = self._salt

        def replace(text: str, span: Span) -> str:
            action = action_of(span.label) or PIIAction.FLAG
            value = text[span.start : span.end]
            return replacement(
                action, span.label, value, salt=salt, pseudonyms=pseudonyms, output=output
            )

        for slot, spans in zip(slots, found, strict=True):
            if spans:
                ctx.replace(slot, apply(slot.text, list(spans), replace))
        taken = {action_of(label) or PIIAction.FLAG for label in categories}
        strongest = max(taken, key=STRENGTH.__getitem__)
        verdict = Verdict.ALLOW if strongest is PIIAction.FLAG else Verdict.MODIFY
        return Decision(self.name, verdict, strongest.value, None, dict(categories), scores)

    async def detect(self, texts: list[str]) -> list[Detections]:
        """The entities in each text: from the cache, or analysed in one worker-thread hop."""
        keys = [digest(text) for text in texts]
        found: list[Detections | None] = [self.cache.get(key) for key in keys]
        todo: dict[bytes, str] = {}
        for key, text, hit in zip(keys, texts, found, strict=True):
            if hit is None:
                todo.setdefault(key, text)
        if todo:
            fresh = await self._analyze(list(todo.values()))
            done = dict(zip(todo, fresh, strict=True))
            for key, detections in done.items():
                self.cache.put(key, detections)
            found = [
                hit if hit is not None else done[key] for key, hit in zip(keys, found, strict=True)
            ]
        return [hit or () for hit in found]

    def stream_filter(self, ctx: GuardContext) -> StreamFilter:
        recognizers = []
        if self.detector.needs_presidio:
            engine = self._engine or _engine_now(self.config)
            self._engine = engine
            recognizers = engine.pattern_recognizers(self.detector.presidio_types)
        scan = pattern_scanner(self.detector, recognizers)
        replace = stream_replacer(self.name, self.detector, ctx, self._salt)
        return pii_stream_filter(scan, replace, self.config.stream_window_chars)

    async def _analyze(self, texts: list[str]) -> list[Detections]:
        detector = self.detector
        engine = await self._ready()
        if engine is None:
            # Secrets only: precompiled regexes, about 0.25 ms per KB; a thread for big bodies.
            if sum(map(len, texts)) <= INLINE_SECRETS_CHARS:
                return [detector.detect(text, []) for text in texts]
            return await asyncio.to_thread(lambda: [detector.detect(t, []) for t in texts])
        presidio_types = detector.presidio_types

        def work() -> list[Detections]:
            proposed = engine.analyze(texts, presidio_types)
            return [detector.detect(t, p) for t, p in zip(texts, proposed, strict=True)]

        return await asyncio.get_running_loop().run_in_executor(engine.executor, work)

    async def _ready(self) -> PIIEngine | None:
        if self._engine is not None or not self.detector.needs_presidio:
            return self._engine
        # Importing Presidio and spaCy takes seconds too: both happen in the worker thread.
        # Concurrent first requests each wait there on the one build (get_engine locks).
        self._engine = await asyncio.to_thread(_engine_now, self.config)
        return self._engine


def _engine_now(config: PIIConfig) -> PIIEngine:
    """The shared engine, built here and now if nobody has loaded it yet."""
    from gateway.guards.pii.engine import get_engine

    return get_engine(config.language, config.spacy_model)


def _hash_salt(config: PIIConfig) -> bytes:
    salt = os.environ.get(config.hash_salt_env, "")
    if not salt:
        raise ValueError(
            f"the pii guard {config.name!r} hashes values but the environment variable "
            f"{config.hash_salt_env} (its key, `hash_salt_env`) is not set"
        )
    return salt.encode()
