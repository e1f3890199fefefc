"""What the deploy files run and probe exists: every command line they start parses with the
real `sluice` CLI, every probe, health check and scrape path is a route of the server it hits,
and the gateway asks the engine for the model name the engine serves."""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from gateway.cli import build_parser
from gateway.config.loader import parse_policy
from tests.deploy.deploy_files import (
    COMPOSE_POLICY,
    DEPLOY,
    REPO,
    SECRETS_ENV,
    compose,
    k8s_container,
    k8s_object,
)

GATEWAY_APP = REPO / "gateway" / "app.py"
ENGINE_APP = REPO / "backend" / "server.py"
_ROUTE = re.compile(r"""Route\(\s*["']([^"']+)["']""")
_URL_PATH = re.compile(r"http://127\.0\.0\.1:\d+(/[\w/.-]*)")


def routes_of(module: Path) -> set[str]:
    """The paths a Starlette app declares with Route("/path", ...)."""
    return set(_ROUTE.findall(module.read_text(encoding="utf-8")))


def engine_routes() -> set[str]:
    if not ENGINE_APP.exists():
        pytest.skip("the engine's HTTP server (backend/server.py) is not there yet")
    return routes_of(ENGINE_APP)


def load(path: Path) -> Any:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def compose_services() -> dict[str, Any]:
    return dict(compose()["services"])


def pod_annotations(deployment: str) -> dict[str, str]:
    return dict(k8s_object("Deployment", deployment)["spec"]["template"]["metadata"]["annotations"])


def probe_paths(container: dict[str, Any]) -> set[str]:
    return {
        container[probe]["httpGet"]["path"]
        for probe in ("startupProbe", "livenessProbe", "readinessProbe")
        if probe in container
    }


def scrape_paths() -> dict[str, str]:
    jobs = load(DEPLOY / "prometheus" / "prometheus.yml")["scrape_configs"]
    return {job["job_name"]: job.get("metrics_path", "/metrics") for job in jobs}


def dockerfile_cmd() -> list[str]:
    for line in (DEPLOY / "Dockerfile").read_text(encoding="utf-8").splitlines():
        if line.startswith("CMD "):
            return list(json.loads(line.removeprefix("CMD ")))
    raise AssertionError("the Dockerfile has no CMD")


def parse_cli(argv: list[str]) -> argparse.Namespace:
    parser = build_parser()
    if argv[0] == "backend" and "backend" not in parser.format_help():
        pytest.skip("`sluice backend` is not registered in gateway/cli.py yet")
    errors = io.StringIO()
    try:
        with contextlib.redirect_stderr(errors):
            return parser.parse_args(argv)
    except SystemExit:
        pytest.fail(f"`sluice {' '.join(argv)}` does not parse:\n{errors.getvalue()}")


GATEWAY_COMMANDS = {
    "Dockerfile CMD": dockerfile_cmd,
    "compose gateway": lambda: compose_services()["gateway"]["command"],
    "k8s gateway": lambda: k8s_container("sluicegate-gateway")["args"],
}
ENGINE_COMMANDS = {
    "compose engine": lambda: compose_services()["engine"]["command"],
    "k8s engine": lambda: k8s_container("sluicegate-engine")["args"],
}


@pytest.mark.parametrize("where", sorted(GATEWAY_COMMANDS))
def test_gateway_command_parses_with_the_real_cli(where: str) -> None:
    args = parse_cli(GATEWAY_COMMANDS[where]())
    assert args.command == "serve"
    assert (args.host, args.port) == ("0.0.0.0", 8080)


@pytest.mark.parametrize("where", sorted(ENGINE_COMMANDS))
def test_engine_command_parses_with_the_real_cli(where: str) -> None:
    args = parse_cli(ENGINE_COMMANDS[where]())
    assert (args.command, args.backend_command) == ("backend", "serve")
    # The engine binds to loopback by default, out of reach of the gateway's container.
    assert args.host == "0.0.0.0"
    assert args.model == "smollm2-135m-instruct"


def test_gateway_probes_health_check_and_scrape_hit_gateway_routes() -> None:
    routes = routes_of(GATEWAY_APP)
    container = k8s_container("sluicegate-gateway")
    paths = probe_paths(container)
    assert paths == {"/healthz", "/readyz"}
    healthcheck = next(
        line
        for line in (DEPLOY / "Dockerfile").read_text(encoding="utf-8").splitlines()
        if "urlopen(" in line
    )
    paths |= set(_URL_PATH.findall(healthcheck))
    annotations = pod_annotations("sluicegate-gateway")
    paths |= {annotations["prometheus.io/path"], scrape_paths()["sluicegate-gateway"]}
    assert paths <= routes, f"not served by the gateway: {paths - routes}"


def test_engine_probes_health_check_and_scrape_hit_engine_routes() -> None:
    routes = engine_routes()
    paths = probe_paths(k8s_container("sluicegate-engine"))
    healthcheck = " ".join(compose_services()["engine"]["healthcheck"]["test"])
    paths |= set(_URL_PATH.findall(healthcheck))
    annotations = pod_annotations("sluicegate-engine")
    paths |= {annotations["prometheus.io/path"], scrape_paths()["sluicegate-engine"]}
    assert len(paths) >= 3
    assert paths <= routes, f"not served by the engine: {paths - routes}"


def test_gateway_asks_the_engine_for_the_model_it_serves() -> None:
    configmap = k8s_object("ConfigMap", "sluicegate-policy")
    policies = {
        "compose": (
            parse_policy(COMPOSE_POLICY.read_text(), env=SECRETS_ENV),
            compose_services()["engine"]["command"],
        ),
        "k8s": (
            parse_policy(configmap["data"]["policy.yaml"], env=SECRETS_ENV),
            k8s_container("sluicegate-engine")["args"],
        ),
    }
    for where, (policy, engine_args) in policies.items():
        served = engine_args[engine_args.index("--model") + 1]
        if "--served-model-name" in engine_args:
            served = engine_args[engine_args.index("--served-model-name") + 1]
        for public, route in policy.models.items():
            assert (route.model or public) == served, where
