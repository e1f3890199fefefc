"""The PII guard: Presidio on spaCy plus our secret rules; redact, mask, hash, pseudonymize
or block each entity type (see docs/guards.md). Importing it loads neither Presidio nor spaCy."""

from gateway.guards.pii.config import PIIAction, PIIConfig
from gateway.guards.pii.guard import PIIGuard

__all__ = ["PIIAction", "PIIConfig", "PIIGuard"]
