"""The Grafana dashboard and its provisioning: a well-formed dashboard whose every query is
valid PromQL over metrics that exist, provisioned from the folders compose mounts."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.deploy.deploy_files import DEPLOY, compose
from tests.deploy.metric_catalogue import known_series, referenced_metrics
from tests.deploy.tools import require_tool, run_tool

GRAFANA = DEPLOY / "grafana"
DASHBOARD = GRAFANA / "dashboards" / "sluicegate.json"
PROVISIONING = GRAFANA / "provisioning"

# Grafana's variables, replaced by values PromQL accepts so promtool can parse the queries.
GRAFANA_VARIABLES = {"$__rate_interval": "5m", "$__interval": "1m", "$model": ".*"}


def dashboard() -> dict[str, Any]:
    return json.loads(DASHBOARD.read_text(encoding="utf-8"))


def graph_panels() -> list[dict[str, Any]]:
    return [p for p in dashboard()["panels"] if p["type"] != "row"]


def exprs() -> list[tuple[str, str]]:
    return [
        (f"{panel['title']} / {target['refId']}", target["expr"])
        for panel in graph_panels()
        for target in panel["targets"]
    ]


def test_dashboard_has_the_fields_grafana_needs() -> None:
    board = dashboard()
    assert board["uid"] == "sluicegate"
    assert isinstance(board["schemaVersion"], int) and board["schemaVersion"] >= 36
    assert board["title"]
    ids = [p["id"] for p in board["panels"]]
    assert len(ids) == len(set(ids)), "panel ids must be unique"


def test_panels_sit_on_the_24_column_grid_without_overlapping() -> None:
    taken: set[tuple[int, int]] = set()
    for panel in dashboard()["panels"]:
        grid = panel["gridPos"]
        assert grid["w"] >= 1 and grid["h"] >= 1, panel["title"]
        assert 0 <= grid["x"] and grid["x"] + grid["w"] <= 24, panel["title"]
        cells = {
            (x, y)
            for x in range(grid["x"], grid["x"] + grid["w"])
            for y in range(grid["y"], grid["y"] + grid["h"])
        }
        assert not cells & taken, f"{panel['title']} overlaps another panel"
        taken |= cells


def test_every_graph_queries_prometheus_through_the_datasource_variable() -> None:
    variables = {v["name"]: v for v in dashboard()["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    for panel in graph_panels():
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
        assert panel["targets"], panel["title"]
        ref_ids = [t["refId"] for t in panel["targets"]]
        assert len(ref_ids) == len(set(ref_ids)), panel["title"]
        for target in panel["targets"]:
            assert target["expr"].strip(), panel["title"]


def test_dashboard_queries_only_metrics_that_exist() -> None:
    known = known_series()
    queries = [expr for _, expr in exprs()]
    queries += [json.dumps(v.get("query", "")) for v in dashboard()["templating"]["list"]]
    for query in queries:
        unknown = referenced_metrics(query) - known
        assert not unknown, f"{query!r} references unknown metrics {unknown}"


def test_dashboard_shows_what_operators_ask_for() -> None:
    text = " ".join(expr for _, expr in exprs())
    for needed in (
        "sluice_requests_total",
        "sluice_request_duration_seconds_bucket",
        "sluice:time_to_first_token_seconds_bucket",
        "sluice_tokens_total",
        "sluice_ratelimit_decisions_total",
        "sluice_audit_queue_backlog",
        "sluice:num_requests_running",
        "sluice:num_requests_waiting",
        "sluice:kv_cache_usage_perc",
        "sluice:prefix_cache_hits_total",
        "sluice:num_preemptions_total",
    ):
        assert needed in text, f"no panel queries {needed}"


def test_dashboard_queries_are_valid_promql(tmp_path: Path) -> None:
    promtool = require_tool("promtool")
    rules = []
    for index, (where, expr) in enumerate(exprs()):
        for variable, value in GRAFANA_VARIABLES.items():
            expr = expr.replace(variable, value)
        assert "$" not in expr, f"{where}: unknown Grafana variable in {expr!r}"
        rules.append({"record": f"dashboard:query_{index}", "expr": expr})
    rule_file = tmp_path / "dashboard_queries.yaml"
    rule_file.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    run_tool([promtool, "check", "rules", str(rule_file)])


def test_model_variable_lists_the_models_the_gateway_counts() -> None:
    variables = {v["name"]: v for v in dashboard()["templating"]["list"]}
    model = variables["model"]
    assert model["definition"] == "label_values(sluice_requests_total, model)"
    assert model["includeAll"] and model["allValue"] == ".*"
    uses = [expr for _, expr in exprs() if "$model" in expr]
    assert all(re.search(r'model=~"\$model"', expr) for expr in uses)


def test_provisioning_points_at_the_folder_compose_mounts_the_dashboard_in() -> None:
    mounts = dict(
        volume.split(":")[:2]
        for volume in compose()["services"]["grafana"]["volumes"]
        if volume.startswith(".")
    )
    providers = yaml.safe_load((PROVISIONING / "dashboards" / "sluicegate.yaml").read_text())
    path = providers["providers"][0]["options"]["path"]
    assert mounts["../grafana/dashboards"] == path
    assert mounts["../grafana/provisioning"] == "/etc/grafana/provisioning"
    datasources = yaml.safe_load((PROVISIONING / "datasources" / "prometheus.yaml").read_text())
    (prometheus,) = datasources["datasources"]
    assert prometheus["type"] == "prometheus"
    assert prometheus["url"] == "http://prometheus:9090"


@pytest.mark.parametrize("panel", graph_panels(), ids=lambda p: p["title"])
def test_every_panel_has_a_description(panel: dict[str, Any]) -> None:
    assert panel.get("description"), "say what the panel shows and where it comes from"
