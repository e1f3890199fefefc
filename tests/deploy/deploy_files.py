"""Where the deploy files live and how the tests read them: the Kubernetes objects, the
compose file, and the secrets their policies expect in the environment."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
K8S = DEPLOY / "k8s"
COMPOSE_DIR = DEPLOY / "compose"
COMPOSE_FILE = COMPOSE_DIR / "docker-compose.yaml"
COMPOSE_POLICY = COMPOSE_DIR / "policy.yaml"

# What the policies' key_env and hmac_key_env name; the policy loader wants them set.
SECRETS_ENV = {"SLUICE_API_KEY": "test-api-key", "SLUICE_AUDIT_HMAC_KEY": "test-hmac-key"}

# Files in deploy/k8s that are not Kubernetes API objects.
NOT_MANIFESTS = {"kustomization.yaml"}


def yaml_docs(path: Path) -> list[Any]:
    return [doc for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")) if doc]


def manifest_files() -> list[Path]:
    return sorted(p for p in K8S.glob("*.yaml") if p.name not in NOT_MANIFESTS)


def k8s_objects() -> list[dict[str, Any]]:
    return [doc for path in manifest_files() for doc in yaml_docs(path)]


def k8s_object(kind: str, name: str) -> dict[str, Any]:
    (found,) = [
        obj for obj in k8s_objects() if obj["kind"] == kind and obj["metadata"]["name"] == name
    ]
    return found


def k8s_container(deployment: str) -> dict[str, Any]:
    (container,) = k8s_object("Deployment", deployment)["spec"]["template"]["spec"]["containers"]
    return container


def compose() -> dict[str, Any]:
    (doc,) = yaml_docs(COMPOSE_FILE)
    return doc
