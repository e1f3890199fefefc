"""`POST /v1/moderations`: OpenAI's moderation API, answered by this gateway's moderation guard.

The request is OpenAI's (`{"input": str | [str] | [{"type": "text", "text": ...}], "model"?}`)
and so is the answer (`{"id": "modr-...", "model", "results": [{"flagged", "categories",
"category_scores", "category_applied_input_types"}]}`). Keys are checked like on every other
endpoint. The guard is the policy's moderation guard configuration (its input one first) when
there is one, else the built-in lexicon with default thresholds.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from typing import Annotated, Any

import orjson
from pydantic import Field

from gateway.api.schemas import ImagePart, OpenModel, TextPart
from gateway.api.validation import parse_request
from gateway.asgi import Receive, Scope, Send, read_body, read_head, send_body, send_error
from gateway.errors import (
    GatewayError,
    InternalError,
    InvalidRequest,
    MethodNotAllowed,
    UpstreamUnavailable,
)
from gateway.guards.moderation.categories import CATEGORIES
from gateway.guards.moderation.config import ModerationConfig
from gateway.guards.moderation.guard import ModerationGuard, ModerationResult
from gateway.guards.moderation.judge import judge_upstreams
from gateway.runtime import Runtime
from gateway.service import Gateway

log = logging.getLogger("sluicegate")

DEFAULT_MODEL = "sluicegate-moderation"
MAX_INPUTS = 256

ModerationPart = Annotated[TextPart | ImagePart, Field(discriminator="type")]


class ModerationRequest(OpenModel):
    input: str | list[str] | list[ModerationPart]
    model: str | None = Field(None, min_length=1)

    def texts(self) -> list[str]:
        if isinstance(self.input, str):
            return [self.input]
        if not self.input:
            raise InvalidRequest("'input' must not be an empty list.", param="input")
        if len(self.input) > MAX_INPUTS:
            raise InvalidRequest(
                f"'input' holds {len(self.input)} items; send at most {MAX_INPUTS} per request.",
                param="input",
            )
        texts: list[str] = []
        for index, item in enumerate(self.input):
            if isinstance(item, str):
                texts.append(item)
            elif isinstance(item, TextPart):
                texts.append(item.text)
            else:
                raise InvalidRequest(
                    "This gateway moderates text only; remove the image_url parts.",
                    param=f"input[{index}]",
                )
        return texts


def policy_moderation(runtime: Runtime) -> ModerationConfig:
    """The policy's moderation guard configuration (input first), or the defaults."""
    guards = getattr(runtime.policy, "guards", None)
    for stage in ("input", "output"):
        for entry in getattr(guards, stage, None) or []:
            if isinstance(entry, ModerationConfig):
                return entry
    return ModerationConfig(type="moderation")


class ModerationsEndpoint:
    """ASGI app for `POST /v1/moderations`."""

    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway
        # One guard per policy generation: rebuilt when a reload swaps the runtime.
        self._guard: tuple[Runtime, ModerationGuard] | None = None

    def guard(self, runtime: Runtime) -> ModerationGuard:
        if self._guard is None or self._guard[0] is not runtime:
            upstreams = judge_upstreams(runtime.upstreams)
            self._guard = (runtime, ModerationGuard(policy_moderation(runtime), upstreams))
        return self._guard[1]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        head = read_head(scope)
        try:
            if scope["method"] != "POST":
                raise MethodNotAllowed(
                    f"{scope['method']} is not allowed on {scope['path']}; use POST.",
                    headers={"allow": "POST"},
                )
            runtime = self.gateway.runtime
            runtime.keyring.authenticate(head.authorization)
            body = await read_body(receive, head, runtime.policy.server.max_body_bytes)
            request = parse_request(ModerationRequest, body)
            payload = await self.moderate(runtime, request, head.request_id)
        except GatewayError as error:
            await send_error(send, error, head.request_id)
            return
        except Exception:
            log.exception("internal error on moderation request %s", head.request_id)
            internal = InternalError(f"Internal gateway error (request {head.request_id}).")
            await send_error(send, internal, head.request_id)
            return
        await send_body(send, 200, orjson.dumps(payload), head.request_id)

    async def moderate(
        self, runtime: Runtime, request: ModerationRequest, request_id: str
    ) -> dict[str, Any]:
        guard = self.guard(runtime)
        texts = request.texts()
        results = await asyncio.gather(
            *(guard.assess([text], "input", f"{request_id}-{i}") for i, text in enumerate(texts))
        )
        judge = guard.config.judge
        if judge is not None and judge.on_error == "block":
            failed = next((r.judge_error for r in results if r.judge_error), None)
            if failed is not None:
                raise UpstreamUnavailable(f"The moderation judge is unavailable: {failed}")
        return {
            "id": "modr-" + secrets.token_hex(12),
            "model": request.model or DEFAULT_MODEL,
            "results": [result_body(guard, result) for result in results],
        }


def result_body(guard: ModerationGuard, result: ModerationResult) -> dict[str, Any]:
    """One entry of `results`, shaped like OpenAI's."""
    flagged = set(guard.flagged(result))
    return {
        "flagged": bool(flagged),
        "categories": {category: category in flagged for category in CATEGORIES},
        "category_scores": {c: round(result.scores.get(c, 0.0), 6) for c in CATEGORIES},
        "category_applied_input_types": {c: ["text"] for c in CATEGORIES},
    }
