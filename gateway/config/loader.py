"""Reads a policy YAML file into a `Policy`, with every error naming the file, line and key.

YAML is composed into nodes first so each value keeps its line; `${VAR}` and `${VAR:-default}`
are expanded in string scalars before validation.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from gateway.config.schema import Policy, dangling_references

Path_ = tuple[str | int, ...]

_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")
_SCALARS = yaml.SafeLoader("")


@dataclass(frozen=True, slots=True)
class Problem:
    file: str
    line: int
    key: str
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        return f"{where}: {self.key or '<top>'}: {self.message}"


class PolicyError(Exception):
    """A policy file that cannot be used; `problems` lists every reason found."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


def key_path(path: Path_) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


class _Builder:
    """Turns composed YAML nodes into plain Python data, remembering the line of each path."""

    def __init__(self, file: str, env: Mapping[str, str]) -> None:
        self.file = file
        self.env = env
        self.lines: dict[Path_, int] = {}
        self.problems: list[Problem] = []

    def build(self, node: yaml.Node, path: Path_) -> Any:
        self.lines.setdefault(path, node.start_mark.line + 1)
        if isinstance(node, yaml.MappingNode):
            return self._mapping(node, path)
        if isinstance(node, yaml.SequenceNode):
            return [self.build(item, (*path, i)) for i, item in enumerate(node.value)]
        value = _SCALARS.construct_object(node)
        if isinstance(value, str) and "${" in value:
            value = self._expand(value, path, node.start_mark.line + 1)
        return value

    def _mapping(self, node: yaml.MappingNode, path: Path_) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key_node, value_node in node.value:
            line = key_node.start_mark.line + 1
            key = _SCALARS.construct_object(key_node)
            if not isinstance(key, str):
                self.problems.append(
                    Problem(self.file, line, key_path(path), f"keys must be strings, got {key!r}")
                )
                continue
            child = (*path, key)
            if key in out:
                self.problems.append(Problem(self.file, line, key_path(child), "duplicate key"))
                continue
            self.lines[child] = line
            out[key] = self.build(value_node, child)
        return out

    def _expand(self, text: str, path: Path_, line: int) -> str:
        def substitute(match: re.Match[str]) -> str:
            name, default = match.group(1), match.group(2)
            if name in self.env:
                return self.env[name]
            if default is not None:
                return default
            self.problems.append(
                Problem(self.file, line, key_path(path), f"environment variable ${{{name}}} is not set")
            )
            return ""

        return _ENV_REF.sub(substitute, text)


def _line_for(lines: dict[Path_, int], loc: Path_) -> tuple[int, Path_]:
    """The line of the deepest known path along `loc`; pydantic adds union tags we skip."""
    known: Path_ = ()
    for part in loc:
        candidate = (*known, part)
        if candidate in lines:
            known = candidate
    return lines.get(known, 0), known


def parse_policy(text: str, file: str = "<policy>", env: Mapping[str, str] | None = None) -> Policy:
    env = os.environ if env is None else env
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else 0
        raise PolicyError([Problem(file, line, "", f"invalid YAML: {exc.problem or exc}")]) from None
    except yaml.YAMLError as exc:
        raise PolicyError([Problem(file, 0, "", f"invalid YAML: {exc}")]) from None
    if root is None:
        raise PolicyError([Problem(file, 1, "", "the policy file is empty")])
    if not isinstance(root, yaml.MappingNode):
        raise PolicyError([Problem(file, root.start_mark.line + 1, "", "the top level must be a mapping")])
    builder = _Builder(file, env)
    data = builder.build(root, ())
    if builder.problems:
        raise PolicyError(builder.problems)
    try:
        policy = Policy.model_validate(data)
    except ValidationError as exc:
        problems = []
        for err in exc.errors(include_url=False):
            line, known = _line_for(builder.lines, tuple(err["loc"]))
            shown = key_path(tuple(err["loc"])) if err["type"] == "extra_forbidden" else key_path(known)
            message = "unknown key" if err["type"] == "extra_forbidden" else err["msg"]
            message = message.removeprefix("Value error, ")
            if err["type"] == "missing":
                message = f"missing required key {key_path(tuple(err['loc']))!r}"
            problems.append(Problem(file, line, shown, message))
        raise PolicyError(problems) from None
    semantic = dangling_references(policy) + _unset_env_vars(policy, env)
    if semantic:
        raise PolicyError(
            [Problem(file, _line_for(builder.lines, p)[0], key_path(p), m) for p, m in semantic]
        )
    return policy


def _unset_env_vars(policy: Policy, env: Mapping[str, str]) -> list[tuple[Path_, str]]:
    problems: list[tuple[Path_, str]] = []
    for index, key in enumerate(policy.auth.keys):
        if key.key_env is not None and not env.get(key.key_env):
            problems.append(
                (("auth", "keys", index, "key_env"), f"environment variable {key.key_env} is not set")
            )
    for name, backend in policy.backends.items():
        if backend.api_key_env is not None and not env.get(backend.api_key_env):
            problems.append(
                (("backends", name, "api_key_env"), f"environment variable {backend.api_key_env} is not set")
            )
    return problems


def load_policy(path: str | Path, env: Mapping[str, str] | None = None) -> Policy:
    file = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise PolicyError([Problem(file, 0, "", f"cannot read the policy file: {exc.strerror}")]) from None
    except UnicodeDecodeError:
        raise PolicyError([Problem(file, 0, "", "the policy file is not UTF-8 text")]) from None
    return parse_policy(text, file, env)
