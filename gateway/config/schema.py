"""Typed policy configuration: one pydantic model per YAML section, defaults in one place.

docs/policy.md documents every field here; keep the two in step.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Annotated, Any, Literal

from pydantic import Field, field_validator, model_validator

from gateway.config.audit import AuditConfig
from gateway.config.base import StrictModel
from gateway.config.ratelimit import RateLimitConfig
from gateway.config.telemetry import TelemetryConfig


class LocatedError(ValueError):
    """A validation error about a part of the value being validated, at `path` below it."""

    def __init__(self, path: tuple[str | int, ...], message: str) -> None:
        super().__init__(message)
        self.path = path


class ServerConfig(StrictModel):
    host: str = "127.0.0.1"
    port: int = Field(8080, ge=1, le=65535)
    max_body_bytes: int = Field(4 * 1024 * 1024, ge=1024, le=256 * 1024 * 1024)
    # Seconds in-flight requests get to finish on shutdown or after a policy swap.
    drain_timeout_s: float = Field(30.0, ge=0)


class ApiKey(StrictModel):
    id: str = Field(min_length=1, max_length=64)
    tenant: str = Field(min_length=1, max_length=128)
    key_env: str | None = Field(None, description="environment variable holding the key")
    sha256: str | None = None
    models: list[str] = Field(default_factory=lambda: ["*"], min_length=1)

    @field_validator("sha256")
    @classmethod
    def _hex_digest(cls, value: str | None) -> str | None:
        if value is not None and not re.fullmatch(r"[0-9a-fA-F]{64}", value):
            raise ValueError(
                "sha256 must be the 64 hex digits of the key's SHA-256 digest "
                '(e.g. printf %s "$KEY" | sha256sum)'
            )
        return value

    @model_validator(mode="after")
    def _one_source(self) -> ApiKey:
        if self.key_env is not None and self.sha256 is not None:
            raise ValueError("give key_env or sha256, not both")
        if self.key_env is None and self.sha256 is None:
            raise ValueError(
                "needs key_env (env var holding the key) or sha256 (hex digest of the key)"
            )
        return self

    def allows(self, model: str) -> bool:
        return "*" in self.models or model in self.models


class AuthConfig(StrictModel):
    mode: Literal["keys", "none"] = "keys"
    keys: list[ApiKey] = Field(default_factory=list)

    @model_validator(mode="before")
    @classmethod
    def _none_shorthand(cls, value: Any) -> Any:
        if value == "none":
            return {"mode": "none"}
        if isinstance(value, str):
            raise ValueError("auth must be 'none' or a mapping with 'keys'")
        return value

    @model_validator(mode="after")
    def _keys_present(self) -> AuthConfig:
        if self.mode == "keys" and not self.keys:
            raise ValueError("auth needs at least one entry in 'keys' (or say auth: none)")
        first: dict[str, int] = {}
        for index, key in enumerate(self.keys):
            if key.id in first:
                raise LocatedError(
                    ("keys", index, "id"),
                    f"duplicate key id {key.id!r} (already used by keys[{first[key.id]}])",
                )
            first[key.id] = index
        return self


class Timeouts(StrictModel):
    connect_s: float = Field(5.0, gt=0)
    # Longest silence allowed between two bytes from the upstream.
    read_s: float = Field(120.0, gt=0)
    # Whole request, streams included.
    total_s: float = Field(600.0, gt=0)


class Retries(StrictModel):
    # Total attempts, the first one included; 1 means no retry.
    attempts: int = Field(3, ge=1, le=10)
    backoff_initial_s: float = Field(0.1, ge=0)
    backoff_max_s: float = Field(2.0, ge=0)


class OpenAIBackend(StrictModel):
    kind: Literal["openai"]
    base_url: str
    api_key_env: str | None = None
    headers: dict[str, str] = Field(default_factory=dict)
    timeouts: Timeouts = Field(default_factory=Timeouts)
    retries: Retries = Field(default_factory=Retries)
    max_connections: int = Field(256, ge=1, le=65536)

    @field_validator("base_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("base_url must start with http:// or https://")
        return value.rstrip("/")


class BuiltinTimeouts(StrictModel):
    # Whole request, streams included, and the wait for a model still loading.
    total_s: float = Field(600.0, gt=0)


class BuiltinBackend(StrictModel):
    """The built-in engine, in the gateway's process. None: the engine's own default."""

    kind: Literal["builtin"]
    model: str = Field("smollm2-135m-instruct", min_length=1)
    kv_cache_gb: float | None = Field(None, gt=0)
    max_num_seqs: int | None = Field(None, ge=1, le=4096)
    max_num_batched_tokens: int | None = Field(None, ge=1)
    max_model_len: int | None = Field(None, ge=2)
    block_size: int | None = Field(None, ge=1, le=256)
    enable_prefix_caching: bool | None = None
    device: str | None = Field(None, pattern=r"^(auto|cpu|mps|cuda(:[0-9]+)?)$")
    dtype: Literal["float32", "float16", "bfloat16"] | None = None
    num_threads: int | None = Field(None, ge=1)
    timeouts: BuiltinTimeouts = Field(default_factory=BuiltinTimeouts)

    def engine_options(self) -> dict[str, Any]:
        """The EngineConfig keyword arguments this backend sets."""
        return self.model_dump(exclude={"kind", "timeouts"}, exclude_none=True)


Backend = Annotated[OpenAIBackend | BuiltinBackend, Field(discriminator="kind")]


class ModelRoute(StrictModel):
    backend: str
    # Name sent upstream; defaults to the public name.
    model: str | None = None


class Policy(StrictModel):
    server: ServerConfig = Field(default_factory=ServerConfig)
    auth: AuthConfig
    backends: dict[str, Backend] = Field(min_length=1)
    models: dict[str, ModelRoute] = Field(min_length=1)
    ratelimit: RateLimitConfig | None = None
    audit: AuditConfig | None = None
    telemetry: TelemetryConfig | None = None


def dangling_references(policy: Policy) -> list[tuple[tuple[str | int, ...], str]]:
    """(path, message) for every reference to something the policy does not declare."""
    problems: list[tuple[tuple[str | int, ...], str]] = []
    for name, route in policy.models.items():
        if route.backend not in policy.backends:
            known = ", ".join(sorted(policy.backends))
            problems.append(
                (
                    ("models", name, "backend"),
                    f"unknown backend {route.backend!r} (declared: {known})",
                )
            )
    for index, key in enumerate(policy.auth.keys):
        for model in key.models:
            if model != "*" and model not in policy.models:
                problems.append((("auth", "keys", index, "models"), f"unknown model {model!r}"))
    if policy.ratelimit is not None:
        overrides = policy.ratelimit.overrides
        declared = {
            "key": {k.id for k in policy.auth.keys},
            "tenant": {k.tenant for k in policy.auth.keys},
            "model": set(policy.models),
        }
        for scope, named in (
            ("key", overrides.key),
            ("tenant", overrides.tenant),
            ("model", overrides.model),
        ):
            for name in named:
                if name not in declared[scope]:
                    problems.append(
                        (("ratelimit", "overrides", scope, name), f"unknown {scope} {name!r}")
                    )
    return problems


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def unauthenticated_exposure(policy: Policy, bind_host: str) -> str | None:
    """Why `policy` must not serve on `bind_host`, or None: `auth: none` is for loopback only."""
    if policy.auth.mode == "none" and not is_loopback(bind_host):
        return (
            f"auth: none is only allowed when the gateway binds to a loopback address, "
            f"not {bind_host!r}; configure auth.keys or bind to 127.0.0.1"
        )
    return None
