"""The input validation guard: size caps, roles, parameters, hidden characters, NFKC."""

from gateway.guards.validation.config import ValidationConfig
from gateway.guards.validation.guard import ValidationGuard

__all__ = ["ValidationConfig", "ValidationGuard"]
