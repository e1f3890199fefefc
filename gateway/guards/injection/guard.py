"""The `injection` guard: scores user-controlled text (user messages, tool results, names,
prompts) as prompt injection and blocks or flags the request. System and developer messages
are the deployment's own words and are never scanned.
"""

from __future__ import annotations

import asyncio

from gateway.guards.base import Decision, GuardContext, TextSlot, Verdict
from gateway.guards.classifier import Classifier
from gateway.guards.injection.config import INJECTION, InjectionConfig
from gateway.guards.injection.heuristics import Detection, detect_cached

# Below this many characters the heuristics run on the event loop: a thread hop costs more.
INLINE_CHARS = 4096


class InjectionGuard:
    def __init__(self, config: InjectionConfig) -> None:
        self.config = config
        self.name = config.name
        self.classifier = Classifier(config.classifier) if config.classifier else None

    async def start(self) -> None:
        if self.classifier is not None:
            await self.classifier.start()

    async def check(self, ctx: GuardContext) -> Decision:
        slots = [slot for slot in ctx.texts(user_controlled_only=True) if slot.text.strip()]
        if not slots:
            return Decision.allow(self.name)
        texts = [slot.text for slot in slots]
        detections: list[Detection] = []
        if self.config.heuristics:
            if sum(map(len, texts)) <= INLINE_CHARS:
                detections = [detect_cached(text) for text in texts]
            else:
                detections = await asyncio.to_thread(lambda: [detect_cached(t) for t in texts])
        model_scores: list[float] = []
        if self.classifier is not None:
            model_scores = [s.get(INJECTION, 0.0) for s in await self.classifier.scores(texts)]
        return self._decide(slots, detections, model_scores)

    def _decide(
        self, slots: list[TextSlot], detections: list[Detection], model_scores: list[float]
    ) -> Decision:
        score, worst = 0.0, -1
        categories: dict[str, int] = {}
        for index in range(len(slots)):
            here = 0.0
            if detections:
                here = detections[index].score
                if here >= self.config.threshold:
                    for category, count in detections[index].categories().items():
                        categories[category] = categories.get(category, 0) + count
            if model_scores:
                here = max(here, model_scores[index])
                if model_scores[index] >= self.config.threshold:
                    categories["classifier"] = categories.get("classifier", 0) + 1
            if here > score:
                score, worst = here, index
        scores = {INJECTION: round(score, 4)}
        if score < self.config.threshold:
            return Decision(self.name, Verdict.ALLOW, "allow", scores=scores)
        reason = (
            f"prompt injection detected in {slots[worst].path} "
            f"(score {score:.2f} >= threshold {self.config.threshold:g})"
        )
        if self.config.action == "block":
            return Decision.block(self.name, reason, categories, scores)
        return Decision(self.name, Verdict.ALLOW, "flag", reason, categories, scores)
