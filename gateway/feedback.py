"""`POST /v1/feedback`: a client's score for an earlier request, kept as an audit record.

The record joins the request records in the same hash chain; `sluice experiments report`
reads both. Without an `audit` section in the policy there is nowhere to keep it: 404 (this
gateway offers no feedback endpoint), never a 5xx for what the client sent.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from typing import Any

import orjson
from pydantic import BaseModel, ConfigDict, Field

from gateway.api.validation import parse_request
from gateway.asgi import Receive, Scope, Send, read_body, read_head, send_body, send_error
from gateway.audit.chain import FORMAT_VERSION, personal_part
from gateway.audit.trail import truncated_ip
from gateway.auth import Principal
from gateway.config.audit import AuditConfig
from gateway.errors import GatewayError, MethodNotAllowed
from gateway.service import Gateway

# Scores live on one scale so a report can average them: thumbs down/up are -1/1; a 1..5
# rating maps to (stars - 3) / 2. Documented in docs/experiments.md.
SCORE_MIN = -1.0
SCORE_MAX = 1.0
# A feedback body is tiny; this keeps a comment from filling the audit log.
MAX_BODY_BYTES = 16 * 1024
MAX_COMMENT_CHARS = 4096
KIND = "feedback"


class FeedbackRequest(BaseModel):
    """The body; unknown fields are refused (a typo must not drop the score silently)."""

    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False, frozen=True)

    # The `x-request-id` a response carried (the gateway's own ids match this too).
    request_id: str = Field(pattern=r"^[A-Za-z0-9._:\-]{1,128}$")
    score: float = Field(ge=SCORE_MIN, le=SCORE_MAX)
    # A category, committed to the chain and never erased, so no free text: that is `comment`.
    label: str | None = Field(None, pattern=r"^[A-Za-z0-9._:\-]{1,64}$")
    # Free text may identify a person: it goes into the record's erasable `personal` part.
    comment: str | None = Field(None, max_length=MAX_COMMENT_CHARS)


class FeedbackUnavailable(GatewayError):
    """The policy has no `audit` section: feedback has nowhere to go."""

    status_code = 404
    error_type = "invalid_request_error"
    code = "feedback_unavailable"


class AuditBacklogFull(GatewayError):
    status_code = 503
    error_type = "server_error"
    code = "audit_backlog_full"


class Feedback:
    """ASGI app for `POST /v1/feedback`; authenticated with the same keys as the API."""

    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        head = read_head(scope)
        try:
            if scope["method"] != "POST":
                raise MethodNotAllowed(
                    f"{scope['method']} is not allowed on {scope['path']}; use POST.",
                    headers={"allow": "POST"},
                )
            principal = self.gateway.runtime.keyring.authenticate(head.authorization)
            audit = self.gateway.audit
            if audit is None:
                raise FeedbackUnavailable(
                    "Feedback is not recorded by this gateway: its policy has no 'audit' "
                    "section, and feedback is kept in the audit log."
                )
            limit = min(MAX_BODY_BYTES, self.gateway.runtime.policy.server.max_body_bytes)
            body = parse_request(FeedbackRequest, await read_body(receive, head, limit))
            client = scope.get("client")
            record = feedback_record(
                body,
                principal,
                audit.config,
                client[0] if client else None,
                head.request_id,
                datetime.now(UTC),
            )
            dropped = audit.dropped
            audit.submit(record)
            if audit.dropped != dropped:
                raise AuditBacklogFull(
                    "The audit log is behind and did not take this feedback; retry later.",
                    headers={"retry-after": "1"},
                )
        except GatewayError as error:
            await send_error(send, error, head.request_id)
            return
        answer = {"status": "recorded", "request_id": body.request_id, "id": head.request_id}
        await send_body(send, 202, orjson.dumps(answer), head.request_id)


def feedback_record(
    body: FeedbackRequest,
    principal: Principal,
    config: AuditConfig,
    client: str | None,
    feedback_id: str,
    now: datetime,
) -> dict[str, Any]:
    """The audit record for one feedback, before the chain numbers it (pure: `now` passed in).

    Field meanings are in docs/audit.md; `personal` follows the request record's shape so
    `sluice audit purge` treats both alike.
    """
    personal, personal_sha256 = personal_part(
        {
            "user": None,
            "client_ip": _client_ip(client, config),
            "content": _comment(body.comment, config),
        }
    )
    return {
        "v": FORMAT_VERSION,
        "kind": KIND,
        "ts": now.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        "request_id": body.request_id,
        "feedback_id": feedback_id,
        "tenant": principal.tenant,
        "key_id": principal.key_id,
        "score": body.score,
        "label": body.label,
        "personal_sha256": personal_sha256,
        "personal": personal,
    }


def _comment(comment: str | None, config: AuditConfig) -> dict[str, str] | None:
    """The comment as the policy keeps content: as written, as a digest, or not at all."""
    if comment is None or config.content == "none":
        return None
    if config.content == "hashed":
        return {"comment_sha256": hashlib.sha256(comment.encode()).hexdigest()}
    return {"comment": comment}


def _client_ip(client: str | None, config: AuditConfig) -> str | None:
    if client is None or config.client_ip == "none":
        return None
    return client if config.client_ip == "full" else truncated_ip(client)
