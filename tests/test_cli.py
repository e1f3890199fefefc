"""The `sluice` command line, run as a real subprocess: `policy check` and `serve` refusals."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.support.servers import free_port

REPO = Path(__file__).resolve().parent.parent

GOOD = """\
auth:
  keys:
    - {id: alice, tenant: acme, key_env: CLI_TEST_KEY}
backends:
  up: {kind: openai, base_url: "http://127.0.0.1:9/v1"}
models:
  m1: {backend: up}
"""

BROKEN = """\
auth:
  keys:
    - {id: alice, tenant: acme, key_env: CLI_TEST_KEY}
backends:
  up: {kind: openai, base_url: "ftp://127.0.0.1:9/v1"}
models:
  m1: {backend: up}
"""

OPEN = """\
auth: none
backends:
  up: {kind: openai, base_url: "http://127.0.0.1:9/v1"}
models:
  m1: {backend: up}
"""


def sluice(*args: str, timeout: float = 20) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "CLI_TEST_KEY": "sk-cli-0123456789"}
    env.pop("SLUICE_LOG_LEVEL", None)
    return subprocess.run(
        [sys.executable, "-m", "gateway", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


Writer = Callable[[str], Path]


@pytest.fixture
def write(tmp_path: Path) -> Writer:
    def write(text: str, name: str = "policy.yaml") -> Path:
        path = tmp_path / name
        path.write_text(text, encoding="utf-8")
        return path

    return write


def test_policy_check_says_ok_for_a_good_file(write: Writer) -> None:
    path = write(GOOD)
    result = sluice("policy", "check", str(path))
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"{path}: ok (1 backends, 1 models, auth: keys)"
    assert result.stderr == ""


def test_policy_check_accepts_the_default_policy() -> None:
    result = sluice("policy", "check", "policies/default.yaml")
    assert result.returncode == 0, result.stderr
    assert "policies/default.yaml: ok" in result.stdout


def test_policy_check_names_file_line_and_key_of_a_bad_file(write: Writer) -> None:
    path = write(BROKEN)
    result = sluice("policy", "check", str(path))
    assert result.returncode == 1
    assert result.stdout == ""
    assert f"{path}:5: backends.up.base_url: base_url must start with http://" in result.stderr
    assert "Traceback" not in result.stderr


def test_policy_check_lists_every_problem(write: Writer) -> None:
    path = write(BROKEN.replace("m1: {backend: up}", "m1: {backend: up, colour: red}"))
    result = sluice("policy", "check", str(path))
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert lines == [
        f"{path}:5: backends.up.base_url: base_url must start with http:// or https://",
        f"{path}:7: models.m1.colour: unknown key",
    ]


def test_policy_check_of_a_missing_file_fails_cleanly(tmp_path: Path) -> None:
    path = tmp_path / "nope.yaml"
    result = sluice("policy", "check", str(path))
    assert result.returncode == 1
    assert f"{path}: <top>: cannot read the policy file: No such file or directory" in result.stderr


def test_serve_refuses_auth_none_on_a_public_address(write: Writer) -> None:
    path = write(OPEN)
    result = sluice("serve", "--config", str(path), "--host", "0.0.0.0", "--port", str(free_port()))
    assert result.returncode == 2
    assert "refusing to start" in result.stderr
    assert "auth: none is only allowed when the gateway binds to a loopback" in result.stderr
    assert "'0.0.0.0'" in result.stderr


def test_serve_refuses_auth_none_when_the_policy_binds_publicly(write: Writer) -> None:
    path = write("server: {host: 0.0.0.0}\n" + OPEN)
    result = sluice("serve", "--config", str(path), "--port", str(free_port()))
    assert result.returncode == 2
    assert "refusing to start: auth: none" in result.stderr


def test_serve_with_a_broken_policy_exits_2_naming_line_and_key(write: Writer) -> None:
    path = write(GOOD.replace("m1: {backend: up}", "m1: {backend: down}"))
    result = sluice("serve", "--config", str(path), "--port", str(free_port()))
    assert result.returncode == 2
    assert "sluice serve: the policy cannot be used" in result.stderr
    assert f"{path}:7: models.m1.backend: unknown backend 'down'" in result.stderr
    assert "Traceback" not in result.stderr


def test_serve_with_invalid_yaml_exits_2_naming_the_line(write: Writer) -> None:
    path = write(GOOD.replace("  up: {kind", "  up {kind"))
    result = sluice("serve", "--config", str(path), "--port", str(free_port()))
    assert result.returncode == 2
    assert f"{path}:5: <top>: invalid YAML" in result.stderr
