"""Traces (OpenTelemetry) and structured logs for the gateway."""
