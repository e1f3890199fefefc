"""What one request did, gathered along the pipeline, and the audit record it becomes.

Built only when the policy has an `audit` section; the pipeline fills it as it goes and
submits it exactly once, whatever way the request ends.
"""

from __future__ import annotations

import hashlib
import ipaddress
import time
from datetime import UTC, datetime
from typing import Any

import orjson

from gateway.audit.chain import FORMAT_VERSION, personal_part
from gateway.auth import Principal
from gateway.config.audit import AuditConfig
from gateway.errors import GatewayError

# Fields a client sends as its prompt, per endpoint: what `content: redacted` keeps.
_PROMPT_FIELDS = ("messages", "prompt", "input")


class Trail:
    __slots__ = (
        "_config",
        "_request_hash",
        "_response_hash",
        "_response_text",
        "_started",
        "_text_by_guards",
        "arm",
        "arrived",
        "client",
        "error",
        "experiment",
        "guards",
        "method",
        "model",
        "outcome",
        "path",
        "principal",
        "prompt",
        "ratelimit",
        "request_id",
        "route",
        "shadow",
        "status",
        "stream",
        "ttft_s",
        "usage",
        "user",
    )

    def __init__(self, config: AuditConfig | None, scope: Any, request_id: str) -> None:
        self._config = config
        self._started = time.perf_counter()
        self.arrived = time.time()
        self.method: str = scope["method"]
        self.path: str = scope["path"]
        self.request_id = request_id
        client = scope.get("client")
        self.client: str | None = client[0] if client else None
        self.principal: Principal | None = None
        self.model: str | None = None
        self.route: dict[str, Any] | None = None
        # Experiment and arm the request was assigned to; a shadow copy still running.
        self.experiment: str | None = None
        self.arm: str | None = None
        self.shadow: Any = None
        self.stream = False
        self.status = 0
        self.outcome = "ok"
        self.error: dict[str, str | None] | None = None
        self.ratelimit: str | None = None
        self.usage: dict[str, int] | None = None
        self.ttft_s: float | None = None
        self.user: str | None = None
        self.prompt: Any = None
        self._request_hash: str | None = None
        self._response_hash: Any = None
        self._response_text: list[str] | None = None
        self._text_by_guards = False
        # Guard decisions ({guard, stage, action, ...}); None until a guard runs.
        self.guards: list[dict[str, Any]] | None = None

    # -- filled in by the pipeline ---------------------------------------------------------
    def request_body(self, body: bytes, user: str | None) -> None:
        self.user = user
        if self._config is None:
            return
        if self._config.content == "hashed":
            self._request_hash = hashlib.sha256(body).hexdigest()
            self._response_hash = hashlib.sha256()
        elif self._config.content == "redacted":
            data = orjson.loads(body)
            self.prompt = {k: data[k] for k in _PROMPT_FIELDS if k in data}
            self._response_text = []

    def withhold_prompt(self) -> None:
        """A guard blocked the request: keep none of its text (it may hold what was blocked)."""
        self.prompt = None
        self._request_hash = None

    def text_from_guards(self) -> None:
        """Output guards report the streamed text (before pseudonyms are restored)."""
        self._text_by_guards = True

    def response_text(self, text: str) -> None:
        if self._response_text is not None:
            self._response_text.append(text)

    def failed(self, error: GatewayError, outcome: str = "error") -> None:
        self.status = error.status_code
        self.outcome = outcome
        self.error = {"type": error.error_type, "code": error.code}

    def answered(self, body: bytes, usage: dict[str, int] | None) -> None:
        """A whole (non-streamed) answer went out."""
        self.status = 200
        self.usage = usage
        if self._response_hash is not None:
            self._response_hash.update(body)
        if self._response_text is not None:
            data = _json(body)
            for choice in data.get("choices", []) if isinstance(data, dict) else []:
                message = choice.get("message") or {}
                self._response_text.append(message.get("content") or choice.get("text") or "")

    def stream_chunk(self, data: bytes) -> None:
        """A piece of a stream went out (whole SSE events)."""
        if self.ttft_s is None:
            self.ttft_s = time.perf_counter() - self._started
        if self._response_hash is not None:
            self._response_hash.update(data)
        if self._response_text is not None and not self._text_by_guards:
            for event in data.split(b"\n\n"):
                if event.startswith(b"data: {"):
                    for choice in _json(event[6:]).get("choices", []):
                        delta = choice.get("delta") or {}
                        self._response_text.append(delta.get("content") or choice.get("text") or "")

    def elapsed_s(self) -> float:
        return time.perf_counter() - self._started

    # -- the record ------------------------------------------------------------------------
    def record(self) -> dict[str, Any]:
        principal = self.principal
        personal, personal_sha256 = personal_part(
            {"user": self.user, "client_ip": self._client_ip(), "content": self._content()}
        )
        return {
            "v": FORMAT_VERSION,
            "ts": datetime.fromtimestamp(self.arrived, UTC)
            .isoformat(timespec="milliseconds")
            .replace("+00:00", "Z"),
            "request_id": self.request_id,
            "method": self.method,
            "path": self.path,
            "tenant": principal.tenant if principal else None,
            "key_id": principal.key_id if principal else None,
            "model": self.model,
            "route": self.route,
            "experiment": self.experiment,
            "arm": self.arm,
            "stream": self.stream,
            "status": self.status,
            "outcome": self.outcome,
            "error": self.error,
            "guards": self.guards or [],
            "ratelimit": self.ratelimit,
            "usage": self.usage,
            "latency_ms": round((time.perf_counter() - self._started) * 1000, 3),
            "ttft_ms": round(self.ttft_s * 1000, 3) if self.ttft_s is not None else None,
            "shadow": None,
            "personal_sha256": personal_sha256,
            "personal": personal,
        }

    def _content(self) -> dict[str, Any] | None:
        if self._config is None:
            return None
        if self._config.content == "hashed" and self._request_hash is not None:
            return {
                "request_sha256": self._request_hash,
                "response_sha256": self._response_hash.hexdigest(),
            }
        if self._config.content == "redacted" and self._response_text is not None:
            return {"request": self.prompt, "response": "".join(self._response_text)}
        return None

    def _client_ip(self) -> str | None:
        if self.client is None or self._config is None or self._config.client_ip == "none":
            return None
        if self._config.client_ip == "full":
            return self.client
        return truncated_ip(self.client)


_TRUNCATED: dict[str, str | None] = {}


def truncated_ip(client: str) -> str | None:
    """The /24 (IPv4) or /48 (IPv6) network of `client`; cached, `ipaddress` is slow."""
    network = _TRUNCATED.get(client)
    if network is None and client not in _TRUNCATED:
        try:
            address = ipaddress.ip_address(client)
            prefix = 24 if address.version == 4 else 48
            network = str(ipaddress.ip_network(f"{address}/{prefix}", strict=False).network_address)
        except ValueError:
            network = None
        if len(_TRUNCATED) >= 65536:
            _TRUNCATED.clear()
        _TRUNCATED[client] = network
    return network


def _json(data: bytes) -> Any:
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError:
        return {}
