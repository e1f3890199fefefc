"""The split an experiment is meant to have, for the sample-ratio check: from `--weights`, from
the `experiments` section of a policy file, or equal across the arms seen.

Errors are ValueError with a message that says what to fix.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import yaml

Weights = dict[str, float]
DEFAULT_WEIGHT = 1.0  # an arm's weight when the policy gives none (gateway/config/routing.py)


def parse_weights(text: str) -> Weights:
    """`control=50,treatment=50` -> {"control": 50.0, "treatment": 50.0}."""
    weights: Weights = {}
    for part in text.split(","):
        arm, sep, value = part.strip().partition("=")
        arm = arm.strip()
        if not sep or not arm:
            raise ValueError(f"--weights: {part.strip()!r} is not ARM=WEIGHT")
        if arm in weights:
            raise ValueError(f"--weights: arm {arm!r} is given twice")
        weights[arm] = _weight(value.strip(), f"--weights: the weight of {arm!r}")
    return _checked(weights, "--weights")


def weights_from_policy(path: Path, experiment: str) -> Weights:
    """The arm weights of `experiment` in a policy file's `experiments` section.

    Read as plain YAML (no key variables needed to run a report). The policy's shape is
    `experiments: {NAME: {arms: {ARM: {weight: W, ...}}}}` (gateway/config/routing.py; an arm
    without `weight` has 1); also accepted: experiments as a list of `{name: ...}`, arms as
    `ARM: W` or a list of `{name: ..., weight: ...}`. A canary's weights ramp over time, so
    it has no one split to check: ValueError, asking for `--weights`.
    """
    where = f"{path}"
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ValueError(f"--config: cannot read {path}: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise ValueError(f"--config: {path} is not valid YAML: {exc}") from None
    section = data.get("experiments") if isinstance(data, dict) else None
    if section is None:
        raise ValueError(f"--config: {where} has no 'experiments' section")
    entry = _named(section, experiment)
    if entry is None:
        raise ValueError(f"--config: {where} declares no experiment {experiment!r}")
    if entry.get("canary") is not None:
        raise ValueError(
            f"--config: experiment {experiment!r} in {where} is a canary: its weights ramp, so "
            "no single split holds for it; pass the split of a window with --weights and "
            "--since/--until"
        )
    arms = entry.get("arms")
    if arms is None:
        raise ValueError(f"--config: experiment {experiment!r} in {where} has no 'arms'")
    weights: Weights = {}
    items = arms.items() if isinstance(arms, dict) else _list_items(arms, "arms", where)
    for arm, spec in items:
        value = spec.get("weight", DEFAULT_WEIGHT) if isinstance(spec, dict) else spec
        weights[str(arm)] = _weight(value, f"--config: weight of arm {arm!r} in {where}")
    return _checked(weights, f"--config: experiment {experiment!r} in {where}")


def equal_weights(arms: list[str]) -> Weights:
    return dict.fromkeys(arms, 1.0)


def _named(section: Any, name: str) -> dict[str, Any] | None:
    if isinstance(section, dict):
        entry = section.get(name)
        return entry if isinstance(entry, dict) else None
    if isinstance(section, list):
        for entry in section:
            if isinstance(entry, dict) and entry.get("name") == name:
                return entry
    return None


def _list_items(arms: Any, what: str, where: str) -> list[tuple[str, Any]]:
    if not isinstance(arms, list):
        raise ValueError(f"--config: '{what}' in {where} must be a mapping or a list")
    items = []
    for arm in arms:
        if not isinstance(arm, dict) or not isinstance(arm.get("name"), str):
            raise ValueError(f"--config: every entry of '{what}' in {where} needs a name")
        items.append((arm["name"], arm))
    return items


def _weight(value: Any, what: str) -> float:
    try:
        weight = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{what} must be a number, not {value!r}") from None
    if isinstance(value, bool) or not math.isfinite(weight) or weight < 0:
        raise ValueError(f"{what} must be a finite number >= 0, not {value!r}")
    return weight


def _checked(weights: Weights, what: str) -> Weights:
    if not weights or sum(weights.values()) <= 0:
        raise ValueError(f"{what}: at least one arm needs a weight above 0")
    return weights
