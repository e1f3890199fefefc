"""Rendering an experiment report (the data from analysis.py) as a text table or as JSON."""

from __future__ import annotations

from typing import Any

import orjson

LABEL_WIDTH = 22


def render_json(report: dict[str, Any]) -> str:
    return orjson.dumps(report, option=orjson.OPT_INDENT_2).decode() + "\n"


def render_text(report: dict[str, Any]) -> str:
    arms = report["arms"]
    confidence = f"{(1 - report['alpha']) * 100:g}%"
    window = report["window"]
    span = "".join(
        f" {word} {window[key]}"
        for key, word in (("since", "from"), ("until", "until"))
        if window[key]
    )
    lines = [
        f"Experiment {report['experiment']}: {report['requests']:,} requests in "
        f"{len(arms)} arm{'s' if len(arms) != 1 else ''}{span}; "
        f"[{confidence} intervals]",
        "",
    ]
    rows: list[tuple[str, list[str]]] = [
        ("", [arm["arm"] for arm in arms]),
        ("backend", [", ".join(arm["backends"]) or "-" for arm in arms]),
        ("requests (share)", [f"{arm['requests']:,} ({_percent(arm['share'])})" for arm in arms]),
        ("expected share", [_percent(arm["expected_share"]) for arm in arms]),
        ("error rate", [_rate(arm["error_rate"]) for arm in arms]),
    ]
    for metric, title in (("latency_ms", "latency"), ("ttft_ms", "TTFT")):
        for quantile in ("p50", "p95", "p99"):
            rows.append(
                (
                    f"{title} {quantile} ms",
                    [_number(arm[metric][quantile]) for arm in arms],
                )
            )
    rows.append(("tokens prompt/compl.", [_tokens(arm["tokens"]) for arm in arms]))
    rows.append(("feedback mean (n)", [_feedback(arm["feedback"]) for arm in arms]))
    if any(arm["shadow"] for arm in arms):
        rows.append(("shadow exact match", [_shadow(arm["shadow"]) for arm in arms]))
    widths = [max(len(cells[i]) for _, cells in rows) + 2 for i in range(len(arms))]
    for label, cells in rows:
        text = label.ljust(LABEL_WIDTH) + "".join(
            cell.ljust(width) for cell, width in zip(cells, widths, strict=True)
        )
        lines.append(text.rstrip())
    for comparison in report["comparisons"]:
        lines.extend(["", f"{comparison['arm']} vs {comparison['control']}:"])
        lines.append(_compared("latency", comparison["latency_ms"], " ms"))
        lines.append(_compared("TTFT", comparison["ttft_ms"], " ms"))
        lines.append(_compared("error rate", comparison["error_rate"], " pts", scale=100))
        lines.append(_compared("feedback", comparison["feedback"], ""))
    lines.extend(["", *_sample_ratio(report["sample_ratio"])])
    if report["requests_without_arm"]:
        lines.append(f"{report['requests_without_arm']:,} records of it carry no arm (left out)")
    feedback = report["feedback"]
    lines.append(
        f"feedback: {feedback['matched']:,} of {feedback['records']:,} feedback records "
        "scored a request of this experiment (a request's last score counts)"
    )
    lines.append(f"* p < {report['alpha']:g}")
    return "\n".join(lines) + "\n"


def _compared(title: str, found: dict[str, Any] | None, unit: str, scale: float = 1) -> str:
    label = f"  {title}".ljust(LABEL_WIDTH)
    if found is None:
        return label + "not enough data"
    value, ci = found["value"], found["ci"]
    text = f"{value * scale:+.4g}{unit}"
    if ci is not None:
        text += f" [{ci[0] * scale:+.4g}, {ci[1] * scale:+.4g}]"
    if found["relative"] is not None:
        text += f" ({found['relative'] * 100:+.1f}%)"
    for name, test in found["tests"].items():
        mark = " *" if test["significant"] else ""
        text += f"   {_TEST_NAMES[name]} p={_p(test['p_value'])}{mark}"
    return label + text


_TEST_NAMES = {
    "welch_t": "Welch t",
    "mann_whitney_u": "Mann-Whitney U",
    "two_proportion_z": "z",
}


def _sample_ratio(srm: dict[str, Any]) -> list[str]:
    weights = ", ".join(f"{arm}={weight:g}" for arm, weight in srm["weights"].items())
    against = f"against weights {weights} ({srm['weights_source']})"
    if srm["problems"]:
        return [f"SAMPLE RATIO MISMATCH {against}:", *(f"  {p}" for p in srm["problems"])]
    if srm["p_value"] is None:
        return [f"sample ratio: not tested (fewer than two arms with traffic) {against}"]
    summary = f"chi2={srm['chi2']:.4g} p={_p(srm['p_value'])} {against}"
    if not srm["mismatch"]:
        return [f"sample ratio: ok, {summary}"]
    return [
        f"SAMPLE RATIO MISMATCH (p < {srm['threshold']:g}): {summary}",
        "  the arms did not get the traffic the weights promise: find out why before trusting "
        "the comparisons above",
    ]


def _number(estimate: dict[str, Any]) -> str:
    if estimate["value"] is None:
        return "-"
    text = f"{estimate['value']:.4g}"
    if estimate["ci"] is not None:
        text += f" [{estimate['ci'][0]:.4g}, {estimate['ci'][1]:.4g}]"
    return text


def _rate(estimate: dict[str, Any]) -> str:
    if estimate["value"] is None:
        return "-"
    low, high = estimate["ci"]
    return f"{estimate['value'] * 100:.2f}% [{low * 100:.2f}, {high * 100:.2f}]"


def _percent(value: float | None) -> str:
    return "-" if value is None else f"{value * 100:.1f}%"


def _tokens(tokens: dict[str, Any]) -> str:
    if tokens["prompt_mean"] is None:
        return "-"
    return f"{tokens['prompt_mean']:.1f} / {tokens['completion_mean']:.1f}"


def _feedback(feedback: dict[str, Any]) -> str:
    return "-" if not feedback["n"] else f"{_number(feedback['mean'])} (n={feedback['n']:,})"


def _shadow(shadow: dict[str, Any] | None) -> str:
    if shadow is None or shadow["exact_match_rate"]["value"] is None:
        return "-"
    return f"{_percent(shadow['exact_match_rate']['value'])} of {shadow['copies']:,}"


def _p(value: float | None) -> str:
    return "-" if value is None else f"{value:.3g}"
