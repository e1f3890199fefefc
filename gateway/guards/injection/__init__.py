"""The prompt-injection guard: heuristics (heuristics.py) and an optional local classifier."""

from gateway.guards.injection.config import InjectionClassifierConfig, InjectionConfig
from gateway.guards.injection.guard import InjectionGuard
from gateway.guards.injection.heuristics import Detection, detect

__all__ = [
    "Detection",
    "InjectionClassifierConfig",
    "InjectionConfig",
    "InjectionGuard",
    "detect",
]
