"""The `moderation` guard's policy entry: `guards: {input|output: [{type: moderation, ...}]}`."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from gateway.config.base import StrictModel
from gateway.guards.classifier import ClassifierConfig
from gateway.guards.moderation.categories import CATEGORIES, Category

# Llama Guard 3's hazard codes and the OpenAI categories they correspond to. Codes with no
# counterpart (defamation, specialized advice, privacy, intellectual property, elections)
# still make the text unsafe; they are reported by their code.
LLAMA_GUARD_CATEGORIES: dict[str, Category] = {
    "S1": "violence",
    "S2": "illicit",
    "S3": "sexual",
    "S4": "sexual/minors",
    "S9": "illicit/violent",
    "S10": "hate",
    "S11": "self-harm",
    "S12": "sexual",
    "S14": "illicit",
}


class ModerationClassifierConfig(ClassifierConfig):
    @field_validator("labels")
    @classmethod
    def _known_categories(cls, value: dict[str, str]) -> dict[str, str]:
        wrong = sorted(category for category in value.values() if category not in CATEGORIES)
        if wrong:
            raise ValueError(
                f"labels map to moderation categories ({', '.join(CATEGORIES)}), not {wrong}"
            )
        return value


class JudgeConfig(StrictModel):
    """An LLM that answers "safe" or "unsafe\\nS1,S2" (Llama Guard, or any model prompted so)."""

    # A backend of this policy (its name under `backends`) and the model name to ask it for.
    backend: str = Field(min_length=1)
    model: str = Field(min_length=1)
    # "llama_guard": send our Llama-Guard-style instruction prompt as one user message (for
    # general instruct models); "conversation": send the text as the conversation itself and
    # let the server's chat template build the prompt (a Llama Guard model served as such).
    prompt: Literal["llama_guard", "conversation"] = "llama_guard"
    timeout_s: float = Field(10.0, gt=0, le=600)
    # When the judge fails (timeout, error, an answer we cannot read): "allow" falls back to the
    # other scorers (fail open); "block" refuses the request (fail closed).
    on_error: Literal["allow", "block"] = "allow"
    # Ask the judge only when the lexicon or classifier already scores this much (0: always).
    min_score: float = Field(0.0, ge=0.0, le=1.0)
    # Hazard code -> category, for the codes the judge may answer with.
    categories: dict[str, Category] = Field(default_factory=lambda: dict(LLAMA_GUARD_CATEGORIES))
    # The most characters of text sent (the end of the text is kept: the newest turn).
    max_chars: int = Field(8000, ge=100, le=1_000_000)


class ModerationConfig(StrictModel):
    type: Literal["moderation"]
    name: str = Field("moderation", min_length=1, max_length=64)
    # block: refuse the request (or end the stream); flag: let it pass and record the decision.
    action: Literal["block", "flag"] = "block"
    # A category scoring at least this much is flagged; `thresholds` overrides it per category.
    threshold: float = Field(0.5, ge=0.0, le=1.0)
    thresholds: dict[Category, float] = Field(default_factory=dict)
    # The categories that trigger the action (the others are still scored and recorded).
    categories: list[Category] = Field(default_factory=lambda: list(CATEGORIES), min_length=1)
    # The built-in lexicon scorer (lexicon.yaml); off makes sense with a classifier or judge.
    lexicon: bool = True
    classifier: ModerationClassifierConfig | None = None
    judge: JudgeConfig | None = None
    # Characters held back while a stream is checked: a blocked phrase split across chunks is
    # still caught before it leaves. Must cover the longest lexicon match.
    stream_window_chars: int = Field(256, ge=16, le=65536)

    @field_validator("thresholds")
    @classmethod
    def _in_range(cls, value: dict[Category, float]) -> dict[Category, float]:
        for category, threshold in value.items():
            if not 0.0 <= threshold <= 1.0:
                raise ValueError(f"thresholds.{category} must be between 0 and 1")
        return value

    @model_validator(mode="after")
    def _something_to_run(self) -> ModerationConfig:
        if not self.lexicon and self.classifier is None and self.judge is None:
            raise ValueError("lexicon: false needs a classifier or a judge, or nothing is checked")
        return self

    def threshold_for(self, category: str) -> float:
        return self.thresholds.get(category, self.threshold)  # type: ignore[call-overload]
