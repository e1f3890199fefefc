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
from gateway.config.guards import GuardsConfig
from gateway.config.ratelimit import RateLimitConfig
from gateway.config.routing import (
    Balance,
    CircuitBreaker,
    Experiment,
    FallbackTarget,
    HealthCheck,
    Replica,
    RetryBudget,
    RouteTarget,
    ShadowConfig,
    http_url,
)
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
    # May change experiment weights at run time (/admin/experiments/...).
    admin: bool = False

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
    # Caps retries so a failing upstream is not hammered; null: no cap beyond `attempts`.
    budget: RetryBudget | None = Field(default_factory=RetryBudget)


class OpenAIBackend(StrictModel):
    kind: Literal["openai"]
    # One server (base_url), or several interchangeable ones (replicas).
    base_url: str | None
    replicas: list[Replica] | None = Field(None, min_length=1, max_length=256)
    balance: Balance = "least_outstanding"
    health_check: HealthCheck | None = None
    circuit_breaker: CircuitBreaker | None = None
    api_key_env: str | None = None
    headers: dict[str, str] = Field(default_factory=dict)
    timeouts: Timeouts = Field(default_factory=Timeouts)
    retries: Retries = Field(default_factory=Retries)
    max_connections: int = Field(256, ge=1, le=65536)

    @model_validator(mode="before")
    @classmethod
    def _replicas_instead(cls, value: Any) -> Any:
        # base_url is required unless replicas are given (then it is "missing" by name).
        if isinstance(value, dict) and "replicas" in value and "base_url" not in value:
            return {**value, "base_url": None}
        return value

    @field_validator("base_url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        return None if value is None else http_url(value)

    @model_validator(mode="after")
    def _one_address(self) -> OpenAIBackend:
        if self.base_url is not None and self.replicas is not None:
            raise LocatedError(("replicas",), "give base_url or replicas, not both")
        return self

    def replica_list(self) -> list[Replica]:
        if self.replicas is not None:
            return self.replicas
        assert self.base_url is not None
        return [Replica(base_url=self.base_url)]


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
    # int8: weight-only int8 linear layers; int8 KV cache (about twice the tokens per GB).
    weights: Literal["auto", "int8"] | None = None
    kv_cache: Literal["auto", "int8"] | None = None
    # auto: the Triton kernels on CUDA (when triton imports), PyTorch elsewhere.
    kernels: Literal["auto", "triton", "torch"] | None = None
    cuda_graphs: bool | None = None
    num_threads: int | None = Field(None, ge=1)
    timeouts: BuiltinTimeouts = Field(default_factory=BuiltinTimeouts)
    circuit_breaker: CircuitBreaker | None = None

    def engine_options(self) -> dict[str, Any]:
        """The EngineConfig keyword arguments this backend sets."""
        options = self.model_dump(
            exclude={"kind", "timeouts", "circuit_breaker"}, exclude_none=True
        )
        if "kv_cache" in options:
            options["kv_cache_dtype"] = options.pop("kv_cache")
        return options


Backend = Annotated[OpenAIBackend | BuiltinBackend, Field(discriminator="kind")]


class ModelRoute(StrictModel):
    # One target (backend, model), or weighted targets (routes).
    backend: str | None = None
    # Name sent upstream; defaults to the public name.
    model: str | None = None
    routes: list[RouteTarget] | None = Field(None, min_length=1, max_length=64)
    # Tried in order when the chosen target fails (connection errors, timeouts, 5xx).
    fallback: list[FallbackTarget] = Field(default_factory=list, max_length=16)
    shadow: ShadowConfig | None = None

    @model_validator(mode="after")
    def _one_form(self) -> ModelRoute:
        if self.routes is None:
            if self.backend is None:
                raise ValueError("needs backend (one target) or routes (weighted targets)")
            return self
        if self.backend is not None:
            raise LocatedError(("routes",), "give backend or routes, not both")
        if self.model is not None:
            raise LocatedError(("model",), "with routes, give each route its own model")
        if sum(route.weight for route in self.routes) <= 0:
            raise LocatedError(("routes",), "at least one route needs a weight above 0")
        return self

    def targets(self) -> list[RouteTarget]:
        """The weighted targets, the one-backend form included."""
        if self.routes is not None:
            return self.routes
        assert self.backend is not None
        return [RouteTarget(backend=self.backend, model=self.model)]


class Policy(StrictModel):
    server: ServerConfig = Field(default_factory=ServerConfig)
    auth: AuthConfig
    backends: dict[str, Backend] = Field(min_length=1)
    models: dict[str, ModelRoute] = Field(min_length=1)
    ratelimit: RateLimitConfig | None = None
    audit: AuditConfig | None = None
    telemetry: TelemetryConfig | None = None
    guards: GuardsConfig | None = None
    experiments: dict[str, Experiment] = Field(default_factory=dict)


def dangling_references(policy: Policy) -> list[tuple[tuple[str | int, ...], str]]:
    """(path, message) for every reference to something the policy does not declare."""
    problems = _routing_references(policy)
    if policy.guards is not None:
        for stage in ("input", "output"):
            for index, entry in enumerate(getattr(policy.guards, stage)):
                judge = getattr(entry, "judge", None)
                if judge is not None and judge.backend not in policy.backends:
                    known = ", ".join(sorted(policy.backends))
                    problems.append(
                        (
                            ("guards", stage, index, "judge", "backend"),
                            f"unknown backend {judge.backend!r} (declared: {known})",
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


def _routing_references(policy: Policy) -> list[tuple[tuple[str | int, ...], str]]:
    """Backends and models named by routes, fallbacks, shadows and experiments."""
    problems: list[tuple[tuple[str | int, ...], str]] = []
    known = ", ".join(sorted(policy.backends))

    def backend(path: tuple[str | int, ...], name: str) -> None:
        if name not in policy.backends:
            problems.append((path, f"unknown backend {name!r} (declared: {known})"))

    for name, route in policy.models.items():
        if route.routes is None:
            backend(("models", name, "backend"), route.backend or "")
        for index, target in enumerate(route.routes or []):
            backend(("models", name, "routes", index, "backend"), target.backend)
        for index, fallback in enumerate(route.fallback):
            backend(("models", name, "fallback", index, "backend"), fallback.backend)
        if route.shadow is not None:
            backend(("models", name, "shadow", "backend"), route.shadow.backend)
    split: dict[str, str] = {}
    for name, experiment in policy.experiments.items():
        if experiment.model not in policy.models:
            problems.append((("experiments", name, "model"), f"unknown model {experiment.model!r}"))
        elif experiment.model in split:
            problems.append(
                (
                    ("experiments", name, "model"),
                    f"model {experiment.model!r} is already split by experiment "
                    f"{split[experiment.model]!r}; one experiment per model",
                )
            )
        split.setdefault(experiment.model, name)
        for arm_name, arm in experiment.arms.items():
            backend(("experiments", name, "arms", arm_name, "backend"), arm.backend)
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
