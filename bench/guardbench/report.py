"""What the benchmark prints on stdout at the end: the latency, pipeline and quality tables,
with the issue's targets under them."""

from __future__ import annotations

from typing import Any

from engine.table import num, render

from guardbench.labeled import NAMES_AND_PLACES, SECRETS, STRUCTURED
from guardbench.options import SIZES_BYTES, Options

# The targets of issue #4 (reported, not asserted).
STRUCTURED_RECALL, NAMES_RECALL = 0.97, 0.85
OVER_REDACTION_MAX = 0.02
PIPELINE_1KB_P50_MS = 5.0


def format_report(opts: Options, doc: dict[str, Any]) -> str:
    lines: list[str] = []
    latency, pipeline, quality = doc.get("latency"), doc.get("pipeline"), doc.get("quality")
    if latency:
        lines += ["", _latency_title(opts), latency_table(latency)]
    skipped = {name: why for name, why in doc.get("skipped", {}).items()}
    if pipeline:
        lines += [
            "",
            f"Input pipeline: {' -> '.join(pipeline['guards'])}",
            pipeline_table(pipeline),
        ]
        lines += _pipeline_notes(pipeline)
    if quality and quality.get("pii"):
        pii = quality["pii"]
        lines += [
            "",
            f"PII quality: {pii['samples']:,} seeded Faker texts ({pii['clean_samples']:,} "
            f"without PII), seed {opts.seed}"
            + ("" if opts.presidio else "; secrets only (--no-presidio)"),
            pii_table(pii),
            *_pii_notes(pii),
        ]
    for name in ("injection", "moderation"):
        if quality and quality.get(name):
            lines += [
                "",
                f"{name.capitalize()} quality: bench/data/{name}.jsonl",
                classifier_table(quality[name]),
            ]
            lines += _group_notes(name, quality[name])
    for name, why in skipped.items():
        lines.append(f"skipped {name}: {why}")
    return "\n".join(lines)


def _latency_title(opts: Options) -> str:
    return (
        f"Guard latency: `check` on fresh one-message requests, p50 / p99 microseconds over "
        f"{opts.samples} messages per size (seed {opts.seed})"
    )


def latency_table(latency: dict[str, Any]) -> str:
    headers = ["guard", "start s", *(f"{_size(size)} p50 / p99 us" for size in SIZES_BYTES)]
    rows = []
    for name, result in latency.items():
        cells = [name, num(result.get("start_s"), ",.2f")]
        for size in SIZES_BYTES:
            s = result["sizes"].get(str(size))
            cells.append(f"{num(s['p50_us'], ',.0f')} / {num(s['p99_us'], ',.0f')}" if s else "-")
        rows.append(cells)
    return render(headers, rows, left=1)


def pipeline_table(pipeline: dict[str, Any]) -> str:
    headers = ["requests", "n", "request KB", "p50 ms", "p99 ms", "blocked"]
    rows = []
    for key, title in (
        ("fresh_1kb", "1 KB message, new text"),
        ("chat", "20-turn chat, turns 2-20"),
    ):
        r = pipeline.get(key)
        if not r:
            continue
        rows.append(
            [
                title,
                str(r["latency"]["n"]),
                num(r["request_bytes_mean"] / 1024, ",.1f"),
                num(_ms(r["latency"]["p50_us"]), ",.2f"),
                num(_ms(r["latency"]["p99_us"]), ",.2f"),
                str(r["blocked"]),
            ]
        )
    return render(headers, rows, left=1)


def _pipeline_notes(pipeline: dict[str, Any]) -> list[str]:
    fresh = pipeline.get("fresh_1kb")
    if not fresh or fresh["latency"]["p50_us"] is None:
        return []
    p50 = _ms(fresh["latency"]["p50_us"])
    met = "met" if p50 is not None and p50 < PIPELINE_1KB_P50_MS else "missed"
    return [
        f"1 KB p50 {num(p50, ',.2f')} ms (target < {PIPELINE_1KB_P50_MS:g} ms once warm: {met})"
    ]


def pii_table(pii: dict[str, Any]) -> str:
    headers = ["entity", "gold", "precision", "recall", "leak rate", "target recall"]
    rows = []
    for label, e in pii["entities"].items():
        target = _recall_target(label)
        if not e["asked"]:
            verdict = "not asked"
        elif target is None or e["recall"] is None:
            verdict = "-"
        else:
            verdict = f">= {target:.2f}: {'met' if e['recall'] >= target else 'missed'}"
        rows.append(
            [
                label,
                str(e["gold"]),
                num(e["precision"], ".3f"),
                num(e["recall"], ".3f"),
                num(e["leak_rate"], ".1%"),
                verdict,
            ]
        )
    return render(headers, rows, left=1)


def _pii_notes(pii: dict[str, Any]) -> list[str]:
    over = pii["over_redaction"]
    met = "met" if over is not None and over < OVER_REDACTION_MAX else "missed"
    return [
        "leak rate (entities asked for, value still verbatim upstream): "
        + num(pii["leak_rate"], ".2%"),
        f"over-redaction (non-PII characters detected as PII): {num(over, '.2%')} "
        f"(target < {OVER_REDACTION_MAX:.0%}: {met}); texts without PII changed: "
        f"{num(pii['clean_samples_changed'], '.1%')}",
    ]


def classifier_table(result: dict[str, Any]) -> str:
    headers = ["split", "n", "precision", "recall", "F1", "FP rate"]
    rows = [
        [
            split,
            str(b["n"]),
            num(b["precision"], ".3f"),
            num(b["recall"], ".3f"),
            num(b["f1"], ".3f"),
            num(b["false_positive_rate"], ".3f"),
        ]
        for split, b in result["splits"].items()
    ]
    return render(headers, rows, left=1)


def _group_notes(name: str, result: dict[str, Any]) -> list[str]:
    key = "kind" if name == "injection" else "categories"
    groups = result.get(key, {})
    recall = [
        f"{g} {num(b['recall'], '.2f')}" for g, b in groups.items() if b["recall"] is not None
    ]
    fp = [
        f"{g} {num(b['false_positive_rate'], '.2f')}"
        for g, b in groups.items()
        if b["recall"] is None and b["false_positive_rate"] is not None
    ]
    notes = (
        [f"recall by {'kind' if key == 'kind' else 'category'}: " + ", ".join(recall)]
        if recall
        else []
    )
    if fp:
        notes.append("false positive rate by kind: " + ", ".join(fp))
    return notes


def _recall_target(label: str) -> float | None:
    if label in STRUCTURED or label in SECRETS:
        return STRUCTURED_RECALL
    if label in NAMES_AND_PLACES:
        return NAMES_RECALL
    return None


def _size(size: int) -> str:
    return f"{size // 1024} KB" if size >= 1024 else f"{size} B"


def _ms(us: float | None) -> float | None:
    return None if us is None else us / 1000
