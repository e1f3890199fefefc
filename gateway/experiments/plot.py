"""`--plot FILE.png`: each arm's latency (and TTFT, when streams have one) as a histogram and
an empirical CDF. matplotlib is imported here only, with the file-only Agg backend."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from gateway.experiments.records import ExperimentSamples

BINS = 60


def plot_latencies(samples: ExperimentSamples, arms: list[str], out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import NullFormatter, ScalarFormatter

    metrics = [("latency_ms", "latency (ms)")]
    if any(len(samples.arms[arm].ttft_ms) for arm in arms):
        metrics.append(("ttft_ms", "time to first token (ms)"))
    figure, axes = plt.subplots(len(metrics), 2, figsize=(12, 4.5 * len(metrics)), squeeze=False)
    try:
        for row, (metric, title) in zip(axes, metrics, strict=True):
            values = {arm: np.array(getattr(samples.arms[arm], metric)) for arm in arms}
            _histogram(row[0], values, title)
            _ecdf(row[1], values, title)
            for axis in row:
                # Plain numbers on the log axis (10^2 reads worse than 100 for milliseconds).
                axis.xaxis.set_major_formatter(ScalarFormatter())
                axis.xaxis.set_minor_formatter(NullFormatter())
        figure.suptitle(f"experiment {samples.name}: per-arm distributions")
        figure.tight_layout()
        figure.savefig(out, format="png", dpi=100)
    finally:
        plt.close(figure)


def _histogram(axis: Any, values: dict[str, np.ndarray], title: str) -> None:
    present = [v for v in values.values() if len(v)]
    if not present:
        axis.set_title(f"{title}: no samples")
        return
    low = max(min(float(v.min()) for v in present), 1e-3)
    high = max(max(float(v.max()) for v in present), low * 1.01)
    # Log-spaced bins: latencies are long-tailed, and a shift shows as the same offset anywhere.
    bins = np.geomspace(low, high, BINS)
    for arm, v in values.items():
        if len(v):
            axis.hist(v, bins=bins, histtype="step", density=True, label=f"{arm} (n={len(v):,})")
    axis.set_xscale("log")
    axis.set_xlabel(title)
    axis.set_ylabel("density")
    axis.legend()


def _ecdf(axis: Any, values: dict[str, np.ndarray], title: str) -> None:
    for arm, v in values.items():
        if len(v):
            ordered = np.sort(v)
            axis.step(ordered, np.arange(1, len(v) + 1) / len(v), where="post", label=arm)
    axis.set_xscale("log")
    axis.set_xlabel(title)
    axis.set_ylabel("share of requests at or below")
    for q in (0.5, 0.95, 0.99):
        axis.axhline(q, color="grey", linewidth=0.5, linestyle=":")
    axis.legend()
