"""`/admin/experiments/{name}`: an experiment's live weights, read and changed by hand.

GET shows the arms' weights and shares (a canary's ramp, its window, a rollback); POST sets an
arm's weight (`{"arm", "weight"}`; a canary arm's weight is its percent of traffic), or
`{"action": "resume"}` (back to the policy's weights and schedule) or `{"action": "rollback"}`.
Needs an API key with `admin: true`; changes live in this gateway process until it restarts or
the experiment's settings change.
"""

from __future__ import annotations

import time
from typing import Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field

from gateway.api.validation import parse_request
from gateway.asgi import Receive, Scope, Send, read_body, read_head, send_body, send_error
from gateway.errors import (
    GatewayError,
    InvalidRequest,
    MethodNotAllowed,
    NotFound,
    PermissionDenied,
)
from gateway.service import Gateway

MAX_BODY_BYTES = 4096


class WeightChange(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False, frozen=True)

    arm: str | None = Field(None, min_length=1, max_length=64)
    weight: float | None = Field(None, ge=0)
    action: Literal["resume", "rollback"] | None = None


class ExperimentAdmin:
    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        head = read_head(scope)
        try:
            method = scope["method"]
            if method not in ("GET", "HEAD", "POST"):
                raise MethodNotAllowed(
                    f"{method} is not allowed on {scope['path']}; use GET or POST.",
                    headers={"allow": "GET, POST"},
                )
            runtime = self.gateway.runtime
            principal = runtime.keyring.authenticate(head.authorization)
            if not principal.admin:
                raise PermissionDenied(
                    f"The API key '{principal.key_id}' may not change experiments: it needs "
                    "admin: true in the policy's auth.keys.",
                    code="admin_required",
                )
            name = scope["path_params"]["name"]
            split = runtime.experiments.get(name)
            if split is None:
                known = ", ".join(sorted(runtime.experiments)) or "none"
                raise NotFound(
                    f"No experiment '{name}' in the current policy (experiments: {known}).",
                    code="experiment_not_found",
                )
            if method == "POST":
                body = await read_body(receive, head, MAX_BODY_BYTES)
                change = parse_request(WeightChange, body)
                if change.action == "resume" and change.arm is None:
                    split.resume()
                elif change.action == "rollback" and change.arm is None:
                    split.roll_back()
                elif change.action is None and change.arm is not None and change.weight is not None:
                    split.set_weight(change.arm, change.weight)
                else:
                    raise InvalidRequest(
                        'Send {"arm": NAME, "weight": NUMBER}, {"action": "resume"} or '
                        '{"action": "rollback"}.'
                    )
            payload = split.status(time.monotonic())
        except GatewayError as error:
            await send_error(send, error, head.request_id)
            return
        await send_body(send, 200, orjson.dumps(payload), head.request_id)
