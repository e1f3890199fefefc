"""The moderation guard: lexicon, optional classifier and judge; `POST /v1/moderations`."""

from gateway.guards.moderation.config import JudgeConfig, ModerationConfig
from gateway.guards.moderation.guard import ModerationGuard, ModerationResult
from gateway.guards.moderation.lexicon import Lexicon, default_lexicon

__all__ = [
    "JudgeConfig",
    "Lexicon",
    "ModerationConfig",
    "ModerationGuard",
    "ModerationResult",
    "default_lexicon",
]
