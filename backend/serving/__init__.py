"""The engine behind the OpenAI API: request translation, response objects, one handler.

Shared by the standalone server (`sluice backend serve`) and the gateway's builtin backends.
"""

from __future__ import annotations

from backend.serving.handler import OpenAIHandler
from backend.serving.protocol import EngineRequest, parse_request

__all__ = ["EngineRequest", "OpenAIHandler", "parse_request"]
