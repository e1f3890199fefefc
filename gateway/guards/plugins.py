"""Guard plugins: found by dotted path or `sluicegate.plugins` entry point, built from options.

A policy entry `{type: plugin, name, path, options}` names a guard class, a factory function or
a guard instance. The path is resolved and the options checked while the policy loads, so a
broken plugin is a policy error that says what is wrong; the contract is in docs/plugins.md.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, cast

from pydantic import BaseModel, Field, ValidationError, ValidationInfo, field_validator

from gateway.config.base import StrictModel
from gateway.guards.base import Guard

ENTRY_POINT_GROUP = "sluicegate.plugins"


class PluginConfig(StrictModel):
    """`path` is `package.module:attr`, `package.module.attr` or an entry point's name."""

    type: Literal["plugin"] = "plugin"
    name: str = "plugin"
    path: str
    options: dict[str, Any] = Field(default_factory=dict, validate_default=True)

    @field_validator("path")
    @classmethod
    def _resolvable(cls, spec: str) -> str:
        resolve(spec)
        return spec

    @field_validator("options")
    @classmethod
    def _options_fit(cls, options: dict[str, Any], info: ValidationInfo) -> dict[str, Any]:
        spec = info.data.get("path")  # absent when the path itself was wrong
        if spec is not None:
            recipe(spec, resolve(spec), options, info.data.get("name"))
        return options


def load_guard(
    spec: str, options: Mapping[str, Any] | None = None, *, name: str | None = None
) -> Guard:
    """The guard `spec` names, built with `options`; named `name` when given.

    Raises ValueError naming the spec and what is wrong: no such module or attribute or entry
    point, options the guard does not take, a constructor that failed, or an object that is
    not a guard (no `name`, no async `check`).
    """
    target = resolve(spec)
    guard: Any = recipe(spec, target, dict(options or {}), name).build()
    if name is not None and getattr(guard, "name", None) != name:
        try:
            guard.name = name
        except (AttributeError, TypeError, ValueError) as exc:
            raise ValueError(
                f"plugin {spec!r}: cannot give the guard the name {name!r} ({exc}); "
                "let it take a `name` option or make `name` a writable attribute"
            ) from None
    return ensure_guard(spec, guard)


def resolve(spec: str) -> object:
    """The object a plugin spec names (not yet built)."""
    spec = spec.strip()
    if not spec:
        raise ValueError("plugin path is empty; give package.module:Guard or an entry point's name")
    if ":" in spec:
        module_name, _, attr = spec.partition(":")
        return _attribute(spec, module_name, attr)
    entry = _entry_point(spec)
    if entry is not None:
        try:
            return entry.load()
        except Exception as exc:  # the plugin's own import: any error is its problem
            raise ValueError(
                f"plugin {spec!r}: loading entry point {entry.value!r} failed: "
                f"{type(exc).__name__}: {exc}"
            ) from None
    if "." in spec:
        module_name, _, attr = spec.rpartition(".")
        return _attribute(spec, module_name, attr)
    installed = ", ".join(sorted(ep.name for ep in _entry_points())) or "none"
    raise ValueError(
        f"plugin {spec!r}: no entry point of that name in group {ENTRY_POINT_GROUP!r} "
        f"(installed: {installed}), and not a dotted path such as package.module:Guard"
    )


def _entry_points() -> importlib.metadata.EntryPoints:
    return importlib.metadata.entry_points(group=ENTRY_POINT_GROUP)


def _entry_point(name: str) -> importlib.metadata.EntryPoint | None:
    matches = list(_entry_points().select(name=name))
    if len(matches) > 1:
        sources = ", ".join(
            sorted(f"{ep.value} ({ep.dist.name if ep.dist else '?'})" for ep in matches)
        )
        raise ValueError(
            f"plugin {name!r}: several entry points in group {ENTRY_POINT_GROUP!r} have "
            f"that name: {sources}; use a dotted path instead"
        )
    return matches[0] if matches else None


def _attribute(spec: str, module_name: str, attr: str) -> object:
    if not _dotted(module_name) or not _dotted(attr):
        raise ValueError(
            f"plugin {spec!r}: not a valid dotted path; use package.module:Guard "
            "or package.module.Guard"
        )
    module = _import(spec, module_name)
    value: object = module
    for index, part in enumerate(attr.split(".")):
        try:
            value = getattr(value, part)
        except AttributeError:
            where = ".".join([module_name, *attr.split(".")[:index]])
            if index == 0 and _is_module(f"{module_name}.{part}"):
                raise ValueError(
                    f"plugin {spec!r}: {module_name}.{part} is a module; name the guard "
                    f"in it, as {module_name}.{part}:GuardClass"
                ) from None
            raise ValueError(f"plugin {spec!r}: {where} has no attribute {part!r}") from None
    return value


def _dotted(name: str) -> bool:
    return bool(name) and all(part.isidentifier() for part in name.split("."))


def _import(spec: str, module_name: str) -> Any:
    try:
        return importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        missing = exc.name or ""
        if missing and (module_name == missing or module_name.startswith(missing + ".")):
            raise ValueError(
                f"plugin {spec!r}: no module named {module_name!r} "
                "(is the plugin installed, or its folder on PYTHONPATH?)"
            ) from None
        raise ValueError(
            f"plugin {spec!r}: importing {module_name!r} failed: {exc} "
            "(a dependency of the plugin is missing)"
        ) from None
    except Exception as exc:  # the plugin's own import: any error is its problem
        raise ValueError(
            f"plugin {spec!r}: importing {module_name!r} failed: {type(exc).__name__}: {exc}"
        ) from None


def _is_module(name: str) -> bool:
    try:
        importlib.import_module(name)
    except Exception:  # only asked to word an error better
        return False
    return True


@dataclass(frozen=True, slots=True)
class Recipe:
    """How to build a plugin's guard once its options are known to fit."""

    spec: str
    call: Callable[..., Any] | None = None
    args: tuple[Any, ...] = ()
    kwargs: dict[str, Any] = field(default_factory=dict)
    instance: object | None = None

    def build(self) -> object:
        if self.call is None:
            return self.instance
        try:
            return self.call(*self.args, **self.kwargs)
        except Exception as exc:  # the plugin's constructor: any error is its problem
            raise ValueError(
                f"plugin {self.spec!r}: building the guard failed: {type(exc).__name__}: {exc}"
            ) from None


def recipe(spec: str, target: object, options: dict[str, Any], name: str | None) -> Recipe:
    """Check `options` against what `target` takes, without building anything yet.

    A class or factory with a pydantic `config_model` (or a pydantic `Config`) gets one
    validated config object; otherwise the options are its keyword arguments. `name` is
    passed on when the config model or the signature has a `name` and the options do not.
    """
    if _is_guard(target) and not inspect.isclass(target):
        if options:
            raise ValueError(
                f"plugin {spec!r}: names a guard instance, which takes no options "
                f"(got {', '.join(sorted(options))})"
            )
        return Recipe(spec, instance=target)
    if inspect.ismodule(target):
        raise ValueError(
            f"plugin {spec!r}: {target.__name__} is a module; name the guard in it, "
            f"as {target.__name__}:GuardClass"
        )
    if not callable(target):
        raise ValueError(
            f"plugin {spec!r}: is a {type(target).__name__}, not a guard class, "
            "a factory function or a guard instance"
        )
    model = config_model(target)
    if model is not None:
        if name is not None and "name" in model.model_fields and "name" not in options:
            options = {**options, "name": name}
        try:
            config = model.model_validate(options)
        except ValidationError as exc:
            raise ValueError(f"plugin {spec!r}: bad options: {_problems(exc)}") from None
        return Recipe(spec, target, (config,))
    try:
        signature = inspect.signature(target)
    except (TypeError, ValueError):  # a builtin without one: let the call decide
        return Recipe(spec, target, kwargs=options)
    if name is not None and "name" in signature.parameters and "name" not in options:
        options = {**options, "name": name}
    try:
        signature.bind(**options)
    except TypeError as exc:
        takes = ", ".join(
            p.name
            for p in signature.parameters.values()
            if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
        )
        raise ValueError(
            f"plugin {spec!r}: bad options: {exc} (it takes: {takes or 'no options'})"
        ) from None
    return Recipe(spec, target, kwargs=options)


def config_model(target: object) -> type[BaseModel] | None:
    """The pydantic model a plugin declares for its options: `config_model`, else `Config`."""
    for attr in ("config_model", "Config"):
        model = getattr(target, attr, None)
        if inspect.isclass(model) and issubclass(model, BaseModel):
            return model
    return None


def _problems(exc: ValidationError) -> str:
    problems = []
    for error in exc.errors():
        where = ".".join(str(part) for part in error["loc"])
        message = error["msg"]
        if error["type"] == "value_error" and "error" in error.get("ctx", {}):
            message = str(error["ctx"]["error"])  # without pydantic's "Value error, "
        problems.append(f"{where}: {message}" if where else message)
    return "; ".join(problems)


def _is_guard(value: object) -> bool:
    return inspect.iscoroutinefunction(getattr(value, "check", None))


def ensure_guard(spec: str, value: object) -> Guard:
    """`value`, if it keeps the guard protocol; ValueError saying what it lacks if not."""
    kind = type(value).__name__
    if not _is_guard(value):
        raise ValueError(
            f"plugin {spec!r}: built a {kind}, which is not a guard: "
            "it needs an `async def check(self, ctx) -> Decision` method"
        )
    name = getattr(value, "name", None)
    if not isinstance(name, str) or not name:
        raise ValueError(f"plugin {spec!r}: the {kind} guard has no `name` string")
    stream_filter = getattr(value, "stream_filter", None)
    if stream_filter is not None and not callable(stream_filter):
        raise ValueError(f"plugin {spec!r}: `stream_filter` of the {kind} guard is not a method")
    for hook in ("start", "aclose"):
        method = getattr(value, hook, None)
        if method is not None and not inspect.iscoroutinefunction(method):
            raise ValueError(
                f"plugin {spec!r}: `{hook}` of the {kind} guard must be an async method"
            )
    return cast(Guard, value)
