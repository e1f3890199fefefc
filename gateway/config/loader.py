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

from gateway.config.schema import LocatedError, OpenAIBackend, Policy, dangling_references

Path_ = tuple[str | int, ...]

_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")
_SCALARS = yaml.SafeLoader("")
_MERGE_TAG = "tag:yaml.org,2002:merge"


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
        # Collections being built right now: an alias back to one of them is a cycle.
        self._open: set[int] = set()

    def build(self, node: yaml.Node, path: Path_) -> Any:
        line = node.start_mark.line + 1
        self.lines.setdefault(path, line)
        if isinstance(node, yaml.MappingNode | yaml.SequenceNode):
            if id(node) in self._open:
                self.problems.append(
                    Problem(
                        self.file,
                        line,
                        key_path(path),
                        "an alias refers to a value that contains it",
                    )
                )
                return None
            self._open.add(id(node))
            try:
                if isinstance(node, yaml.MappingNode):
                    return self._mapping(node, path)
                return [self.build(item, (*path, i)) for i, item in enumerate(node.value)]
            finally:
                self._open.discard(id(node))
        value = self._scalar(node, path)
        if isinstance(value, str) and "${" in value:
            value = self._expand(value, path, line)
        return value

    def _scalar(self, node: yaml.Node, path: Path_) -> Any:
        try:
            return _SCALARS.construct_object(node)
        except Exception as exc:  # unknown tags, `!!int abc`, `!!timestamp x`...
            reason = exc.problem if isinstance(exc, yaml.MarkedYAMLError) else str(exc)
            self.problems.append(
                Problem(
                    self.file,
                    node.start_mark.line + 1,
                    key_path(path),
                    f"cannot read this value ({reason}); write it as a plain YAML scalar",
                )
            )
            return None

    def _mapping(self, node: yaml.MappingNode, path: Path_) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key_node, value_node in node.value:
            line = key_node.start_mark.line + 1
            if key_node.tag == _MERGE_TAG:
                self.problems.append(
                    Problem(
                        self.file,
                        line,
                        key_path(path),
                        "YAML merge keys (<<) are not supported; write the keys out",
                    )
                )
                continue
            key = self._scalar(key_node, path) if isinstance(key_node, yaml.ScalarNode) else None
            if not isinstance(key, str):
                got = repr(key) if isinstance(key_node, yaml.ScalarNode) else f"a {key_node.id}"
                self.problems.append(
                    Problem(self.file, line, key_path(path), f"keys must be strings, got {got}")
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
                Problem(
                    self.file,
                    line,
                    key_path(path),
                    f"environment variable ${{{name}}} is not set; "
                    f"set it, or give a default: ${{{name}:-value}}",
                )
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


def _got(value: Any) -> str:
    if value is None:
        return "nothing (null)"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    return repr(value)


_MISSING_SECTION = {
    "auth": "list API keys under auth.keys, or say 'auth: none' (loopback only)",
    "backends": "declare at least one upstream, e.g. backends: {up: {kind: openai, base_url: ...}}",
    "models": "map at least one public model name to a backend, e.g. models: {m: {backend: up}}",
}

# Pydantic error types, in words a policy author can act on.
_MESSAGES = {
    "int_type": "expected a whole number, got {got}",
    "int_parsing": "expected a whole number, got {got}",
    "int_from_float": "expected a whole number, got {got}",
    "float_type": "expected a number, got {got}",
    "float_parsing": "expected a number, got {got}",
    "bool_type": "expected true or false, got {got}",
    "bool_parsing": "expected true or false, got {got}",
    "string_type": "expected a string, got {got}",
    "dict_type": "expected a mapping (key: value entries), got {got}",
    "model_type": "expected a mapping (key: value entries), got {got}",
    "model_attributes_type": "expected a mapping (key: value entries), got {got}",
    "list_type": "expected a list, got {got}",
    "less_than_equal": "must be at most {le}, got {got}",
    "less_than": "must be less than {lt}, got {got}",
    "greater_than_equal": "must be at least {ge}, got {got}",
    "greater_than": "must be greater than {gt}, got {got}",
    "too_short": "needs at least {min_length} entries",
    "too_long": "allows at most {max_length} entries",
    "string_too_short": "needs at least {min_length} characters",
    "string_too_long": "allows at most {max_length} characters",
    "literal_error": "must be one of {expected}, got {got}",
}


def _validation_problem(file: str, lines: dict[Path_, int], err: Any) -> Problem:
    """One pydantic error as a Problem at the key it is about; union tags in `loc` are skipped."""
    loc: Path_ = tuple(err["loc"])
    kind, ctx = err["type"], err.get("ctx") or {}
    line, known = _line_for(lines, loc)
    if kind == "missing":
        where = (*known, loc[-1])
        hint = _MISSING_SECTION.get(str(loc[-1])) if len(known) == 0 else None
        message = "required key is missing" + (f"; {hint}" if hint else "")
        return Problem(file, line, key_path(where), message)
    if kind in ("union_tag_invalid", "union_tag_not_found"):
        where = (*known, ctx.get("discriminator", "kind").strip("'"))
        line = lines.get(where, line)
        expected = ctx.get("expected_tags", "")
        if kind == "union_tag_not_found":
            message = "required key is missing" + (f" (one of: {expected})" if expected else "")
        else:
            message = f"unknown kind {ctx.get('tag')!r}; known kinds: {expected}"
        return Problem(file, line, key_path(where), message)
    error = ctx.get("error")
    if isinstance(error, LocatedError):
        line, known = _line_for(lines, (*known, *error.path))
        return Problem(file, line, key_path(known), str(error))
    if kind == "extra_forbidden":
        return Problem(file, line, key_path(known), "unknown key")
    template = _MESSAGES.get(kind)
    if template is not None:
        if kind in ("too_short", "string_too_short") and ctx.get("min_length") == 1:
            template = "must not be empty"
        try:
            message = template.format(got=_got(err["input"]), **ctx)
        except (KeyError, IndexError):
            message = err["msg"]
    else:
        message = str(error) if error is not None else err["msg"]
    return Problem(file, line, key_path(known), message)


def parse_policy(text: str, file: str = "<policy>", env: Mapping[str, str] | None = None) -> Policy:
    env = os.environ if env is None else env
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else 0
        raise PolicyError(
            [Problem(file, line, "", f"invalid YAML: {exc.problem or exc}")]
        ) from None
    except yaml.YAMLError as exc:
        raise PolicyError([Problem(file, 0, "", f"invalid YAML: {exc}")]) from None
    if root is None:
        raise PolicyError([Problem(file, 1, "", "the policy file is empty")])
    if not isinstance(root, yaml.MappingNode):
        raise PolicyError(
            [Problem(file, root.start_mark.line + 1, "", "the top level must be a mapping")]
        )
    builder = _Builder(file, env)
    data = builder.build(root, ())
    if builder.problems:
        raise PolicyError(builder.problems)
    try:
        policy = Policy.model_validate(data, context={"env": env})
    except ValidationError as exc:
        problems = [_validation_problem(file, builder.lines, err) for err in exc.errors()]
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
                (
                    ("auth", "keys", index, "key_env"),
                    f"environment variable {key.key_env} is not set; put the API key in it "
                    "before starting the gateway, or use sha256 instead",
                )
            )
    for name, backend in policy.backends.items():
        if not isinstance(backend, OpenAIBackend):
            continue
        if backend.api_key_env is not None and not env.get(backend.api_key_env):
            problems.append(
                (
                    ("backends", name, "api_key_env"),
                    f"environment variable {backend.api_key_env} is not set; put the upstream's "
                    "API key in it before starting the gateway",
                )
            )
    return problems


def load_policy(path: str | Path, env: Mapping[str, str] | None = None) -> Policy:
    file = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise PolicyError(
            [Problem(file, 0, "", f"cannot read the policy file: {exc.strerror}")]
        ) from None
    except UnicodeDecodeError:
        raise PolicyError([Problem(file, 0, "", "the policy file is not UTF-8 text")]) from None
    return parse_policy(text, file, env)
