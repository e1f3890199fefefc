"""What one `pii` policy entry counts as an entity in a text: pure, no Presidio import.

Recognizers (Presidio's, our secret rules) propose spans with scores; the detector drops name
guesses no name looks like and adds display names (names.py), keeps the wanted types that
reach their threshold and are not allowed, lets a span give way to a more specific type on
its characters (`prefer`), and merges overlaps so that every character of every kept entity is
covered by exactly one span.
"""

from __future__ import annotations

import re

from gateway.guards.pii.actions import OUR_TOKEN, merge
from gateway.guards.pii.cache import Detections
from gateway.guards.pii.config import NER_TYPES, PRESIDIO_TYPES, PIIConfig
from gateway.guards.pii.names import NAME_TYPES, PERSON, refine
from gateway.guards.pii.secrets import SECRET_TYPES, scan_secrets
from gateway.guards.window import Span

# How specific a type's evidence is: a checksum, a vendor's key format or a strict syntax (2)
# over a generic pattern such as a phone number (1) over a NER guess (0). A span that lies
# within a span of a more specific type gives way to it, whatever their scores or actions: a
# Luhn-valid 15-digit card is not a phone number, an IBAN is not a LOCATION.
_SPECIFIC = (
    frozenset(
        {
            "CREDIT_CARD",
            "CRYPTO",
            "EMAIL_ADDRESS",
            "IBAN_CODE",
            "IP_ADDRESS",
            "MAC_ADDRESS",
            "URL",
            "US_SSN",
            "UUID",
        }
    )
    | SECRET_TYPES
)


def specificity(label: str) -> int:
    if label in _SPECIFIC:
        return 2
    return 0 if label in NER_TYPES and label != "DATE_TIME" else 1


def prefer(spans: list[Span]) -> list[Span]:
    """`spans` less those lying within a span of a more specific type."""
    if len(spans) < 2:
        return spans
    ranked = [(span, specificity(span.label)) for span in spans]
    return [
        span
        for span, rank in ranked
        if not any(
            other_rank > rank and other.start <= span.start and span.end <= other.end
            for other, other_rank in ranked
        )
    ]


class Detector:
    """The filtering half of the PII guard for one config; the recognizers run elsewhere."""

    __slots__ = (
        "_allow",
        "_allow_re",
        "_display_names",
        "_thresholds",
        "action_of",
        "presidio_types",
        "secrets",
    )

    def __init__(self, config: PIIConfig) -> None:
        wanted = config.wanted()
        self.action_of = config.action_for
        # What Presidio must be asked for (empty: Presidio is never loaded).
        self.presidio_types: frozenset[str] = wanted & PRESIDIO_TYPES
        self.secrets = config.secrets and bool(wanted & SECRET_TYPES)
        self._thresholds = {entity: config.threshold_for(entity) for entity in wanted}
        self._display_names = PERSON in wanted
        self._allow = config.allow_list
        self._allow_re = (
            re.compile("|".join(f"(?:{p})" for p in config.allow_patterns))
            if config.allow_patterns
            else None
        )

    @property
    def needs_presidio(self) -> bool:
        return bool(self.presidio_types)

    @property
    def needs_ner(self) -> bool:
        return bool(self.presidio_types & NER_TYPES)

    def detect(self, text: str, proposed: list[Span]) -> Detections:
        """The entities in `text`: `proposed` (Presidio's) plus our secrets, filtered, merged."""
        if self.secrets:
            proposed = proposed + scan_secrets(text)
        return self.select(text, proposed)

    def select(self, text: str, proposed: list[Span]) -> Detections:
        if self._display_names or any(span.label in NAME_TYPES for span in proposed):
            proposed = refine(text, proposed, display_names=self._display_names)
        kept = [span for span in proposed if self._counts(text, span)]
        return tuple(merge(prefer(kept), self.action_of)) if kept else ()

    def _counts(self, text: str, span: Span) -> bool:
        threshold = self._thresholds.get(span.label)
        if threshold is None or span.score < threshold:
            return False
        value = text[span.start : span.end]
        if value in self._allow or OUR_TOKEN.fullmatch(value):
            return False
        return self._allow_re is None or self._allow_re.fullmatch(value) is None
