"""The `injection` guard's policy entry: `guards: {input: [{type: injection, ...}]}`."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from gateway.config.base import StrictModel
from gateway.guards.classifier import ClassifierConfig

INJECTION = "injection"


class InjectionClassifierConfig(ClassifierConfig):
    # Which of the model's labels mean "injection" (e.g. protectai's DeBERTa models: INJECTION).
    labels: dict[str, str] = Field(default_factory=lambda: {"INJECTION": INJECTION}, min_length=1)

    @field_validator("labels")
    @classmethod
    def _injection_only(cls, value: dict[str, str]) -> dict[str, str]:
        wrong = sorted(category for category in value.values() if category != INJECTION)
        if wrong:
            raise ValueError(
                f"an injection classifier maps labels to 'injection' only, not {wrong}; "
                "leave out the labels that mean benign"
            )
        return value


class InjectionConfig(StrictModel):
    type: Literal["injection"]
    name: str = Field("injection", min_length=1, max_length=64)
    # block: refuse the request; flag: let it through and record the decision.
    action: Literal["block", "flag"] = "block"
    # A text scoring at least this much (heuristics or classifier) is an injection.
    threshold: float = Field(0.5, ge=0.0, le=1.0)
    # Heuristic detector on or off (off makes sense only with a classifier).
    heuristics: bool = True
    classifier: InjectionClassifierConfig | None = None

    @model_validator(mode="after")
    def _something_to_run(self) -> InjectionConfig:
        if not self.heuristics and self.classifier is None:
            raise ValueError("heuristics: false needs a classifier, or the guard checks nothing")
        return self
