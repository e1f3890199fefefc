"""Where the expected split comes from: `--weights` text and the policy's experiments section."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.experiments.weights import parse_weights, weights_from_policy


def test_weights_text() -> None:
    assert parse_weights("control=50, treatment=50") == {"control": 50.0, "treatment": 50.0}
    assert parse_weights("a=0.9,b=0.1,c=0") == {"a": 0.9, "b": 0.1, "c": 0.0}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("control", "'control' is not ARM=WEIGHT"),
        ("=5", "'=5' is not ARM=WEIGHT"),
        ("a=1,a=2", "arm 'a' is given twice"),
        ("a=x", "the weight of 'a' must be a number"),
        ("a=nan", "must be a finite number >= 0"),
        ("a=0,b=0", "at least one arm needs a weight above 0"),
    ],
)
def test_bad_weights_text(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_weights(text)


@pytest.mark.parametrize(
    "section",
    [
        "experiments:\n  exp:\n    arms: {control: 90, treatment: 10}\n",
        "experiments:\n  exp:\n    arms:\n      control: {weight: 90}\n"
        "      treatment: {weight: 10}\n",
        "experiments:\n  - name: exp\n    arms:\n      - {name: control, weight: 90}\n"
        "      - {name: treatment, weight: 10}\n",
        "experiments:\n  exp:\n    model: chat\n    sticky_by: user\n    arms:\n"
        "      control: {backend: a, model: m1, weight: 90}\n"
        "      treatment: {backend: b, weight: 10}\n",
    ],
    ids=["arm-to-number", "arm-to-mapping", "lists", "policy-schema"],
)
def test_policy_shapes(tmp_path: Path, section: str) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_text("auth: none\n" + section)
    assert weights_from_policy(policy, "exp") == {"control": 90.0, "treatment": 10.0}


def test_an_arm_without_weight_has_the_policy_default(tmp_path: Path) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_text("experiments:\n  exp:\n    arms: {a: {backend: x}, b: {backend: y}}\n")
    assert weights_from_policy(policy, "exp") == {"a": 1.0, "b": 1.0}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("auth: none\n", "has no 'experiments' section"),
        ("experiments: {other: {arms: {a: 1}}}\n", "declares no experiment 'exp'"),
        ("experiments: {exp: {model: m}}\n", "has no 'arms'"),
        ("experiments: {exp: {arms: [{weight: 1}]}}\n", "needs a name"),
        ("experiments: {exp: {arms: {a: {weight: lots}}}}\n", "must be a number"),
        ("experiments: [unclosed\n", "is not valid YAML"),
        (
            "experiments: {exp: {arms: {a: {}, b: {}}, canary: {arm: b, schedule: []}}}\n",
            "is a canary: its weights ramp",
        ),
    ],
)
def test_policy_problems(tmp_path: Path, text: str, message: str) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_text(text)
    with pytest.raises(ValueError, match=message):
        weights_from_policy(policy, "exp")
