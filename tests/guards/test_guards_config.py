"""The `guards` policy section: entries by type, errors that name the file, line and key."""

from __future__ import annotations

import pytest

from gateway.config.loader import PolicyError, parse_policy

BASE = """
auth: none
backends:
  up: {kind: openai, base_url: http://127.0.0.1:9}
models:
  m: {backend: up}
guards:
"""


def problems(guards: str) -> list[str]:
    with pytest.raises(PolicyError) as caught:
        parse_policy(BASE + guards, "p.yaml", {})
    return [str(p) for p in caught.value.problems]


def test_unknown_guard_type_names_the_line_and_the_known_types() -> None:
    [problem] = problems("  input:\n    - {type: validation}\n    - {type: telepathy}\n")
    assert problem.startswith("p.yaml:10: guards.input[1].type: unknown guard type 'telepathy'")
    assert "pii" in problem and "plugin" in problem


def test_missing_type_and_non_mapping_entries() -> None:
    [problem] = problems("  output:\n    - {name: x}\n")
    assert "guards.output[0]: needs a `type`" in problem
    [problem] = problems("  input: [pii]\n")
    assert "guards.input[0]" in problem and "mapping" in problem


def test_unknown_key_inside_a_guard_entry_is_an_error() -> None:
    [problem] = problems("  input:\n    - {type: validation, max_mesages: 3}\n")
    assert "guards.input[0].max_mesages: unknown key" in problem


def test_two_guards_with_one_name_in_a_list_are_an_error() -> None:
    [problem] = problems("  input:\n    - {type: validation}\n    - {type: validation}\n")
    assert problem.startswith("p.yaml:10: guards.input[1]: two guards")
    assert "distinct `name`" in problem


def test_empty_guards_section_builds_no_guard_set() -> None:
    from gateway.runtime import Runtime

    policy = parse_policy(BASE + "  input: []\n", "p.yaml", {})
    assert Runtime(policy, {}).guards is None


def test_a_judge_naming_an_unknown_backend_is_a_policy_error() -> None:
    guards = "  input:\n    - type: moderation\n      judge: {backend: nowhere, model: guard}\n"
    [problem] = problems(guards)
    assert "guards.input[0].judge.backend: unknown backend 'nowhere' (declared: up)" in problem
