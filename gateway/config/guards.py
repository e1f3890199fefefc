"""The policy's `guards` section: input and output lists of guard entries, by `type`.

Each guard type keeps its own config model beside its code; this module maps a `type` to it and
imports the module only when a policy uses it (Presidio and spaCy are slow to import). Plugins
(`type: plugin`) are resolved while the policy loads, so a broken path is a policy error.
"""

from __future__ import annotations

import importlib
from typing import Any, Literal

from pydantic import Field, ValidationError, field_validator

from gateway.config.base import StrictModel

# type -> (module, config model, guard class). The guard class is built with the config.
GUARD_TYPES: dict[str, tuple[str, str, str]] = {
    "validation": ("gateway.guards.validation", "ValidationConfig", "ValidationGuard"),
    "pii": ("gateway.guards.pii", "PIIConfig", "PIIGuard"),
    "injection": ("gateway.guards.injection", "InjectionConfig", "InjectionGuard"),
    "moderation": ("gateway.guards.moderation", "ModerationConfig", "ModerationGuard"),
    "plugin": ("gateway.guards.plugins", "PluginConfig", ""),
}


class GuardEntryError(ValueError):
    """A problem with one guard entry, at `path` below the entry."""

    def __init__(self, path: tuple[str | int, ...], message: str) -> None:
        super().__init__(message)
        self.path = path


class GuardsConfig(StrictModel):
    input: tuple[Any, ...] = ()
    output: tuple[Any, ...] = ()
    # Put pseudonymized values back into the answer before it reaches the client.
    restore_pseudonyms: bool = True
    # A guard that raises or overruns `timeout_s`: "block" answers 503 (fail closed), "allow"
    # lets the request on and records the failure (fail open).
    on_error: Literal["block", "allow"] = "block"
    timeout_s: float = Field(10.0, gt=0, le=300)

    @field_validator("input", "output", mode="before")
    @classmethod
    def _entries(cls, value: Any) -> tuple[Any, ...]:
        from gateway.config.schema import LocatedError

        if value is None:
            return ()
        if not isinstance(value, list | tuple):
            raise ValueError("must be a list of guards, each a mapping with a `type`")
        out = []
        names: dict[str, int] = {}
        for index, entry in enumerate(value):
            try:
                config = guard_config(entry)
            except GuardEntryError as error:
                raise LocatedError((index, *error.path), str(error)) from None
            name = getattr(config, "name", None) or config.type
            if name in names:
                raise LocatedError(
                    (index, "name"),
                    f"two guards in this list are named {name!r} (also entry {names[name]}); "
                    "give one a distinct `name`",
                )
            names[name] = index
            out.append(config)
        return tuple(out)


def guard_config(entry: Any) -> Any:
    """The validated config model for one guard entry; `GuardEntryError` says what is wrong."""
    if not isinstance(entry, dict):
        raise GuardEntryError((), "each guard must be a mapping with a `type`")
    kind = entry.get("type")
    if kind is None:
        raise GuardEntryError(("type",), f"needs a `type`; known types: {_known()}")
    if kind not in GUARD_TYPES:
        raise GuardEntryError(("type",), f"unknown guard type {kind!r}; known types: {_known()}")
    module_name, config_name, _ = GUARD_TYPES[kind]
    model = getattr(importlib.import_module(module_name), config_name)
    try:
        return model.model_validate(entry)
    except ValidationError as exc:
        first = exc.errors()[0]
        message = "unknown key" if first["type"] == "extra_forbidden" else first["msg"]
        if first["type"] == "value_error":
            message = str(first.get("ctx", {}).get("error", message))
        raise GuardEntryError(tuple(first["loc"]), message) from None


def guard_class(kind: str) -> Any:
    module_name, _, class_name = GUARD_TYPES[kind]
    return getattr(importlib.import_module(module_name), class_name) if class_name else None


def _known() -> str:
    return ", ".join(GUARD_TYPES)
