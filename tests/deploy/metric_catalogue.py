"""Which metric names exist: the gateway's, read from gateway/metrics.py, and the engine's, the
vLLM-style names the built-in engine exports. Deploy files may only query these."""

from __future__ import annotations

import ast
import re
from pathlib import Path

from tests.deploy.deploy_files import REPO

GATEWAY_METRICS_MODULE = REPO / "gateway" / "metrics.py"

# The engine's contract (vLLM's names, our prefix): base name -> Prometheus type.
ENGINE_METRICS = {
    "sluice:num_requests_running": "gauge",
    "sluice:num_requests_waiting": "gauge",
    "sluice:kv_cache_usage_perc": "gauge",
    "sluice:num_preemptions": "counter",
    "sluice:prompt_tokens": "counter",
    "sluice:generation_tokens": "counter",
    "sluice:prefix_cache_queries": "counter",
    "sluice:prefix_cache_hits": "counter",
    "sluice:time_to_first_token_seconds": "histogram",
    "sluice:inter_token_latency_seconds": "histogram",
    "sluice:e2e_request_latency_seconds": "histogram",
}

# prometheus_client constructors -> the type of what they export.
_CONSTRUCTORS = {
    "Counter": "counter",
    "CounterMetricFamily": "counter",
    "Gauge": "gauge",
    "GaugeMetricFamily": "gauge",
    "Histogram": "histogram",
    "HistogramMetricFamily": "histogram",
    "Summary": "summary",
    "SummaryMetricFamily": "summary",
}

# What a query may reference: `sluice_...` or `sluice:...`.
METRIC_REF = re.compile(r"\bsluice[_:][a-z0-9_:]+")


def series_names(base: str, kind: str) -> set[str]:
    """The sample names a metric of this type shows in the text exposition format."""
    if kind == "counter":
        base = base.removesuffix("_total")
        return {f"{base}_total", f"{base}_created"}
    if kind == "histogram":
        return {f"{base}_bucket", f"{base}_sum", f"{base}_count", f"{base}_created"}
    if kind == "summary":
        return {base, f"{base}_sum", f"{base}_count", f"{base}_created"}
    return {base}


def gateway_metrics(module: Path = GATEWAY_METRICS_MODULE) -> dict[str, str]:
    """Base name -> type of every metric gateway/metrics.py constructs (read, not imported)."""
    found: dict[str, str] = {}
    for node in ast.walk(ast.parse(module.read_text(encoding="utf-8"))):
        if not isinstance(node, ast.Call) or not node.args:
            continue
        func = node.func
        name = func.id if isinstance(func, ast.Name) else getattr(func, "attr", None)
        first = node.args[0]
        if name in _CONSTRUCTORS and isinstance(first, ast.Constant):
            found[str(first.value)] = _CONSTRUCTORS[name]
    return found


def known_series() -> set[str]:
    names: set[str] = set()
    for base, kind in (gateway_metrics() | ENGINE_METRICS).items():
        names |= series_names(base, kind)
    return names


def referenced_metrics(text: str) -> set[str]:
    return set(METRIC_REF.findall(text))
