"""OpenTelemetry spans for the pipeline: one server span per request, one child per stage,
one client span for the upstream call, whose `traceparent` goes upstream with the request."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from typing import Any

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    ConsoleSpanExporter,
    SpanExporter,
    SpanProcessor,
)
from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased
from opentelemetry.trace import Span, SpanKind, Status, StatusCode

__all__ = ["SpanKind", "Tracing", "end_request_span", "traceparent"]
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from gateway.config.telemetry import TelemetryConfig

_PROPAGATOR = TraceContextTextMapPropagator()


class Tracing:
    """A tracer provider of our own (never the global one), so a reload can replace it."""

    def __init__(self, config: TelemetryConfig, processor: SpanProcessor | None = None) -> None:
        self.config = config
        sampler = ParentBased(TraceIdRatioBased(config.traces.sample_ratio))
        resource = Resource.create({"service.name": config.service_name})
        self.provider = TracerProvider(resource=resource, sampler=sampler)
        self.provider.add_span_processor(processor or BatchSpanProcessor(_exporter(config)))
        self.tracer = self.provider.get_tracer("sluicegate.gateway")

    @classmethod
    def from_config(cls, config: TelemetryConfig | None) -> Tracing | None:
        if config is None or config.traces.exporter == "none":
            return None
        return cls(config)

    def request_span(self, name: str, headers: Mapping[str, str], **attributes: Any) -> Span:
        """The server span of one request, a child of the client's `traceparent` if sent."""
        parent = _PROPAGATOR.extract(headers) if "traceparent" in headers else None
        return self.tracer.start_span(
            name, context=parent, kind=SpanKind.SERVER, attributes=attributes
        )

    @contextlib.contextmanager
    def stage(self, parent: Span, name: str, kind: SpanKind = SpanKind.INTERNAL) -> Iterator[Span]:
        context = trace.set_span_in_context(parent)
        span = self.tracer.start_span(name, context=context, kind=kind)
        try:
            yield span
        except BaseException as exc:
            span.set_status(Status(StatusCode.ERROR, type(exc).__name__))
            raise
        finally:
            span.end()

    def shutdown(self) -> None:
        self.provider.shutdown()


def traceparent(span: Span) -> str | None:
    """The W3C `traceparent` header value that makes the upstream's work a child of span."""
    carrier: dict[str, str] = {}
    _PROPAGATOR.inject(carrier, context=trace.set_span_in_context(span, Context()))
    return carrier.get("traceparent")


def end_request_span(span: Span, status: int, attributes: Mapping[str, Any]) -> None:
    span.set_attribute("http.response.status_code", status)
    for key, value in attributes.items():
        if value is not None:
            span.set_attribute(key, value)
    if status >= 500:
        span.set_status(Status(StatusCode.ERROR))
    span.end()


def _exporter(config: TelemetryConfig) -> SpanExporter:
    traces = config.traces
    if traces.exporter == "console":
        return ConsoleSpanExporter()
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    return OTLPSpanExporter(
        endpoint=traces.endpoint, headers=dict(traces.headers), timeout=traces.timeout_s
    )
