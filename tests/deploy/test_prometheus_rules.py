"""The Prometheus alert rules, their unit tests and the scrape config: valid for promtool,
every alert tested and documented, and every query naming a metric that exists."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.deploy.deploy_files import DEPLOY, REPO, k8s_object
from tests.deploy.metric_catalogue import (
    ENGINE_METRICS,
    gateway_metrics,
    known_series,
    referenced_metrics,
)
from tests.deploy.tools import require_tool, run_tool

PROMETHEUS = DEPLOY / "prometheus"
ALERTS = PROMETHEUS / "alerts.yaml"
ALERTS_TEST = PROMETHEUS / "alerts_test.yaml"
SCRAPE_CONFIG = PROMETHEUS / "prometheus.yml"
ADAPTER_VALUES = PROMETHEUS / "adapter-values.yaml"
DEPLOY_DOC = REPO / "docs" / "deploy.md"


def load(path: Path) -> Any:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def alert_rules() -> list[dict[str, Any]]:
    return [rule for group in load(ALERTS)["groups"] for rule in group["rules"]]


def markdown_anchors(path: Path) -> set[str]:
    """The anchors a Markdown renderer (GitHub's) gives the headings of `path`."""
    anchors = set()
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith("#"):
            title = line.lstrip("#").strip().lower()
            title = re.sub(r"[^\w\- ]", "", title)
            anchors.add(title.replace(" ", "-"))
    return anchors


def test_promtool_accepts_the_alert_rules() -> None:
    promtool = require_tool("promtool")
    output = run_tool([promtool, "check", "rules", str(ALERTS)])
    assert f"SUCCESS: {len(alert_rules())} rules found" in output


def test_alert_unit_tests_pass() -> None:
    promtool = require_tool("promtool")
    run_tool([promtool, "test", "rules", str(ALERTS_TEST)])


def test_promtool_accepts_the_scrape_config_and_finds_the_rules() -> None:
    promtool = require_tool("promtool")
    output = run_tool([promtool, "check", "config", str(SCRAPE_CONFIG)])
    assert "1 rule files found" in output


def test_every_alert_is_shown_firing_by_a_unit_test() -> None:
    fired: set[str] = set()
    for case in load(ALERTS_TEST)["tests"]:
        for check in case.get("alert_rule_test", []):
            if check.get("exp_alerts"):
                fired.add(check["alertname"])
    missing = {rule["alert"] for rule in alert_rules()} - fired
    assert not missing, f"alerts with no test showing them fire: {sorted(missing)}"


def test_the_unit_tests_load_the_rule_file_they_sit_beside() -> None:
    assert load(ALERTS_TEST)["rule_files"] == [ALERTS.name]


def test_every_alert_has_severity_summary_and_a_runbook_entry_in_docs() -> None:
    anchors = markdown_anchors(DEPLOY_DOC)
    for rule in alert_rules():
        name = rule["alert"]
        assert rule["labels"]["severity"] in {"critical", "warning"}, name
        assert rule["annotations"]["summary"], name
        runbook = rule["annotations"]["runbook"]
        doc, _, anchor = runbook.partition("#")
        assert doc == "docs/deploy.md", f"{name}: runbook {runbook!r}"
        assert anchor == name.lower(), f"{name}: runbook anchor {anchor!r}"
        assert anchor in anchors, f"{name}: docs/deploy.md has no heading for #{anchor}"


def test_alerts_and_unit_tests_query_only_metrics_that_exist() -> None:
    known = known_series()
    for path in (ALERTS, ALERTS_TEST):
        unknown = referenced_metrics(path.read_text(encoding="utf-8")) - known
        assert not unknown, f"{path.relative_to(REPO)} references unknown metrics {unknown}"


def test_alerts_cover_gateway_errors_latency_redis_audit_and_engine_pressure() -> None:
    exprs = " ".join(rule["expr"] for rule in alert_rules())
    for needed in (
        "sluice_requests_total",
        "sluice_request_duration_seconds_bucket",
        "sluice_ratelimit_store_failures_total",
        "sluice_audit_queue_backlog",
        "sluice_audit_dropped_total",
        "sluice:num_preemptions_total",
        "sluice:kv_cache_usage_perc",
        "sluice:num_requests_waiting",
    ):
        assert needed in exprs, f"no alert on {needed}"


def test_metric_catalogue_reads_the_gateway_module() -> None:
    # Guards the name check above against passing because it found nothing to compare with.
    found = gateway_metrics()
    assert found["sluice_requests"] == "counter"
    assert found["sluice_request_duration_seconds"] == "histogram"
    assert found["sluice_audit_queue_backlog"] == "gauge"
    assert "sluice_requests_total" in known_series()
    assert "sluice_tokens" not in known_series(), "a counter is exported with _total"


def test_scrape_config_targets_the_compose_services() -> None:
    jobs = {job["job_name"]: job for job in load(SCRAPE_CONFIG)["scrape_configs"]}
    targets = {
        name: [t for sc in job["static_configs"] for t in sc["targets"]]
        for name, job in jobs.items()
    }
    assert targets["sluicegate-gateway"] == ["gateway:8080"]
    assert targets["sluicegate-engine"] == ["engine:8000"]
    # The alert on scrape failures selects these job names.
    target_down = next(r for r in alert_rules() if r["alert"] == "SluicegateTargetDown")
    pattern = re.search(r'job=~"([^"]+)"', target_down["expr"])
    assert pattern is not None
    for job in ("sluicegate-gateway", "sluicegate-engine"):
        assert re.fullmatch(pattern.group(1), job)


def test_adapter_serves_the_engine_queue_gauge_under_the_name_the_hpa_asks_for() -> None:
    rule = load(ADAPTER_VALUES)["rules"]["custom"][0]
    assert referenced_metrics(rule["seriesQuery"]) == {"sluice:num_requests_waiting"}
    assert rule["name"]["matches"] == "^sluice:num_requests_waiting$"
    assert ENGINE_METRICS["sluice:num_requests_waiting"] == "gauge"
    exposed = rule["name"]["as"]
    hpa = k8s_object("HorizontalPodAutoscaler", "sluicegate-engine")
    assert [m["pods"]["metric"]["name"] for m in hpa["spec"]["metrics"]] == [exposed]


@pytest.mark.parametrize("base", sorted(ENGINE_METRICS))
def test_engine_exports_the_metric_the_deploy_files_rely_on(base: str) -> None:
    sources = "\n".join(
        p.read_text(encoding="utf-8", errors="replace") for p in (REPO / "backend").rglob("*.py")
    )
    if "num_requests_waiting" not in sources:
        pytest.skip("the engine's metrics are not in backend/ yet")
    short = base.removeprefix("sluice:")
    assert short in sources, f"backend/ does not define {base}"


def test_the_adapter_snippet_in_the_docs_is_the_shipped_one() -> None:
    text = DEPLOY_DOC.read_text(encoding="utf-8")
    blocks = [block.split("```")[0] for block in text.split("```yaml\n")[1:]]
    (snippet,) = [yaml.safe_load(b) for b in blocks if "seriesQuery" in b]
    assert snippet["rules"] == load(ADAPTER_VALUES)["rules"]
