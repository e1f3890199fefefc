"""The `telemetry` section of a policy: OpenTelemetry traces and the log format.

Tracing is off unless an exporter is named; then every pipeline stage becomes a span.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from gateway.config.base import StrictModel


class TracesConfig(StrictModel):
    # none: no spans at all (nothing on the request path); otlp: OTLP/HTTP protobuf to
    # `endpoint`; console: spans printed to stderr (debugging).
    exporter: Literal["none", "otlp", "console"] = "none"
    endpoint: str = "http://127.0.0.1:4318/v1/traces"
    headers: dict[str, str] = Field(default_factory=dict)
    # Fraction of new traces recorded; a request with a sampled `traceparent` is always kept.
    sample_ratio: float = Field(1.0, ge=0.0, le=1.0)
    timeout_s: float = Field(10.0, gt=0)


class LogsConfig(StrictModel):
    format: Literal["text", "json"] = "text"
    level: Literal["debug", "info", "warning", "error"] = "info"


class TelemetryConfig(StrictModel):
    service_name: str = "sluicegate"
    traces: TracesConfig = Field(default_factory=TracesConfig)
    logs: LogsConfig = Field(default_factory=LogsConfig)
