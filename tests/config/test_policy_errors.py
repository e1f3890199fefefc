"""Broken policy files are refused with messages naming the file, the line and the key path."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from gateway.config.loader import PolicyError, parse_policy

REPO = Path(__file__).resolve().parents[2]
ENV = {"ALICE_KEY": "sk-alice-0123456789"}
DIGEST = "ab" * 32

# The line numbers in the comments are the ones the cases below refer to.
GOOD = """\
server:                            # 1
  host: 127.0.0.1                  # 2
  port: 8080                       # 3
auth:                              # 4
  keys:                            # 5
    - id: alice                    # 6
      tenant: acme                 # 7
      key_env: ALICE_KEY           # 8
backends:                          # 9
  up:                              # 10
    kind: openai                   # 11
    base_url: http://127.0.0.1:9/v1  # 12
models:                            # 13
  m1:                              # 14
    backend: up                    # 15
"""


def edit(changes: dict[int, str | None]) -> str:
    """GOOD with line N replaced by changes[N] (which may hold several lines), None deletes."""
    lines = GOOD.splitlines()
    out = []
    for number, line in enumerate(lines, start=1):
        if number not in changes:
            out.append(line)
        elif changes[number] is not None:
            out.append(changes[number])
    return "\n".join(out) + "\n"


def reject(text: str, env: dict[str, str] | None = None) -> PolicyError:
    with pytest.raises(PolicyError) as caught:
        parse_policy(text, "p.yaml", ENV if env is None else env)
    return caught.value


def test_the_base_policy_of_these_cases_is_valid() -> None:
    policy = parse_policy(GOOD, "p.yaml", ENV)
    assert policy.models["m1"].backend == "up"
    assert policy.backends["up"].base_url == "http://127.0.0.1:9/v1"


BROKEN = [
    pytest.param(
        edit({7: "     tenant: acme"}),
        "p.yaml:7: <top>: invalid YAML",
        id="yaml-bad-indentation",
    ),
    pytest.param(
        edit({3: "\tport: 8080"}),
        "p.yaml:3: <top>: invalid YAML: found character '\\t'",
        id="yaml-tab-indentation",
    ),
    pytest.param("", "p.yaml:1: <top>: the policy file is empty", id="empty-file"),
    pytest.param(
        "# only a comment\n",
        "p.yaml:1: <top>: the policy file is empty",
        id="only-comments",
    ),
    pytest.param(
        "- server\n- auth\n",
        "p.yaml:1: <top>: the top level must be a mapping",
        id="top-level-list",
    ),
    pytest.param(
        GOOD + "extras: 1\n",
        "p.yaml:16: extras: unknown key",
        id="unknown-top-level-key",
    ),
    pytest.param(
        edit({3: "  port: 8080\n  bogus: 1"}),
        "p.yaml:4: server.bogus: unknown key",
        id="unknown-nested-key",
    ),
    pytest.param(
        edit({11: "    kind: openai\n    bogus: 1"}),
        "p.yaml:12: backends.up.bogus: unknown key",
        id="unknown-key-in-backend",
    ),
    pytest.param(
        edit({3: "  port: abc"}),
        "p.yaml:3: server.port: expected a whole number, got 'abc'",
        id="port-not-a-number",
    ),
    pytest.param(
        edit({3: "  port: 70000"}),
        "p.yaml:3: server.port: must be at most 65535, got 70000",
        id="port-out-of-range",
    ),
    pytest.param(
        edit({1: "server: [127.0.0.1, 8080]", 2: None, 3: None}),
        "p.yaml:1: server: expected a mapping (key: value entries), got a list",
        id="section-of-wrong-type",
    ),
    pytest.param(
        edit({11: "    kind: openai\n    timeouts: {read_s: -1}"}),
        "p.yaml:12: backends.up.timeouts.read_s: must be greater than 0",
        id="negative-timeout",
    ),
    pytest.param(
        edit({3: "  port: 8080\n  port: 8081"}),
        "p.yaml:4: server.port: duplicate key",
        id="duplicate-key",
    ),
    pytest.param(
        edit({4: None, 5: None, 6: None, 7: None, 8: None}),
        "p.yaml:1: auth: required key is missing; "
        "list API keys under auth.keys, or say 'auth: none'",
        id="missing-auth-section",
    ),
    pytest.param(
        edit({9: None, 10: None, 11: None, 12: None}),
        "p.yaml:1: backends: required key is missing; declare at least one upstream",
        id="missing-backends-section",
    ),
    pytest.param(
        edit({12: None}),
        "p.yaml:10: backends.up.base_url: required key is missing",
        id="missing-nested-key",
    ),
    pytest.param(
        edit({9: "backends: {}", 10: None, 11: None, 12: None}),
        "p.yaml:9: backends: must not be empty",
        id="no-backends-declared",
    ),
    pytest.param(
        edit({15: "    backend: down"}),
        "p.yaml:15: models.m1.backend: unknown backend 'down' (declared: up)",
        id="model-routed-to-undeclared-backend",
    ),
    pytest.param(
        edit({8: f"      key_env: ALICE_KEY\n      sha256: {DIGEST}"}),
        "p.yaml:6: auth.keys[0]: give key_env or sha256, not both",
        id="key-with-both-sources",
    ),
    pytest.param(
        edit({8: None}),
        "p.yaml:6: auth.keys[0]: needs key_env (env var holding the key) or sha256",
        id="key-with-no-source",
    ),
    pytest.param(
        edit({8: "      sha256: abc123"}),
        "p.yaml:8: auth.keys[0].sha256: sha256 must be the 64 hex digits",
        id="malformed-sha256",
    ),
    pytest.param(
        edit({12: "    base_url: ${UPSTREAM_URL}"}),
        "p.yaml:12: backends.up.base_url: environment variable ${UPSTREAM_URL} is not set; "
        "set it, or give a default: ${UPSTREAM_URL:-value}",
        id="unset-variable-without-default",
    ),
    pytest.param(
        edit({8: "      key_env: CAROL_KEY"}),
        "p.yaml:8: auth.keys[0].key_env: environment variable CAROL_KEY is not set",
        id="key-env-names-unset-variable",
    ),
    pytest.param(
        edit({12: "    base_url: http://127.0.0.1:9/v1\n    api_key_env: UPSTREAM_KEY"}),
        "p.yaml:13: backends.up.api_key_env: environment variable UPSTREAM_KEY is not set",
        id="api-key-env-names-unset-variable",
    ),
    pytest.param(
        edit({11: "    kind: grpc"}),
        "p.yaml:11: backends.up.kind: unknown kind 'grpc'; known kinds: 'openai'",
        id="unknown-backend-kind",
    ),
    pytest.param(
        edit({11: None}),
        "p.yaml:10: backends.up.kind: required key is missing",
        id="backend-without-kind",
    ),
    pytest.param(
        edit({12: "    base_url: ftp://127.0.0.1:9/v1"}),
        "p.yaml:12: backends.up.base_url: base_url must start with http:// or https://",
        id="bad-base-url-scheme",
    ),
    pytest.param(
        edit({8: "      key_env: ALICE_KEY\n      models: [m1, m9]"}),
        "p.yaml:9: auth.keys[0].models: unknown model 'm9'",
        id="allow-list-names-unknown-model",
    ),
    pytest.param(
        edit({8: f"      key_env: ALICE_KEY\n    - {{id: alice, tenant: beta, sha256: {DIGEST}}}"}),
        "p.yaml:9: auth.keys[1].id: duplicate key id 'alice' (already used by keys[0])",
        id="duplicate-key-ids",
    ),
    pytest.param(
        edit({5: "  mode: open\n  keys:"}),
        "p.yaml:5: auth.mode: must be one of 'keys' or 'none', got 'open'",
        id="unknown-auth-mode",
    ),
    pytest.param(
        edit({3: "  port: !port 8080"}),
        "p.yaml:3: server.port: cannot read this value (could not determine a constructor "
        "for the tag '!port')",
        id="unknown-yaml-tag",
    ),
    pytest.param(
        edit({3: "  port: !!int eighty"}),
        "p.yaml:3: server.port: cannot read this value",
        id="scalar-that-fails-its-explicit-tag",
    ),
    pytest.param(
        edit({2: "  <<: {host: 127.0.0.1}"}),
        "p.yaml:2: server: YAML merge keys (<<) are not supported",
        id="yaml-merge-key",
    ),
    pytest.param(
        GOOD + "loop: &loop [*loop]\n",
        "p.yaml:16: loop[0]: an alias refers to a value that contains it",
        id="recursive-alias",
    ),
]


@pytest.mark.parametrize(("text", "expected"), BROKEN)
def test_broken_policy_names_its_line_and_key(text: str, expected: str) -> None:
    error = reject(text)
    assert expected in str(error), str(error)
    assert len(error.problems) == 1, str(error)


def test_unknown_key_names_its_line() -> None:
    problem = reject(edit({3: "  port: 8080\n  bogus: 1"})).problems[0]
    assert (problem.file, problem.line, problem.key) == ("p.yaml", 4, "server.bogus")


def test_messages_carry_no_pydantic_jargon() -> None:
    texts = [
        edit({3: "  port: abc"}),
        edit({11: "    kind: grpc"}),
        edit({8: "      sha256: x"}),
        edit({1: "server: 3", 2: None, 3: None}),
    ]
    for text in texts:
        message = str(reject(text))
        for jargon in ("Input should", "Input tag", "discriminator", "instance of", "pattern"):
            assert jargon not in message, message


def test_all_problems_are_reported_at_once_in_file_order() -> None:
    text = edit({3: "  port: abc", 11: "    kind: grpc"}) + "extras: 1\n"
    error = reject(text)
    assert [(p.line, p.key) for p in error.problems] == [
        (3, "server.port"),
        (11, "backends.up.kind"),
        (16, "extras"),
    ]
    assert str(error).count("p.yaml:") == 3


def test_every_unset_variable_and_duplicate_is_reported_together() -> None:
    text = edit(
        {
            3: "  port: 8080\n  port: 8081",
            12: "    base_url: ${UPSTREAM_URL}",
            15: "    backend: ${BACKEND_NAME}",
        }
    )
    error = reject(text)
    assert [(p.line, p.key) for p in error.problems] == [
        (4, "server.port"),
        (13, "backends.up.base_url"),
        (16, "models.m1.backend"),
    ]


def test_variables_are_expanded_before_validation() -> None:
    text = edit(
        {
            3: "  port: ${PORT:-8081}",
            12: "    base_url: http://${UPSTREAM_HOST}:${UPSTREAM_PORT:-9}/v1",
        }
    )
    policy = parse_policy(text, "p.yaml", {**ENV, "UPSTREAM_HOST": "10.0.0.7"})
    assert policy.server.port == 8081
    assert policy.backends["up"].base_url == "http://10.0.0.7:9/v1"


def test_a_set_variable_wins_over_its_default() -> None:
    text = edit({3: "  port: ${PORT:-8081}"})
    assert parse_policy(text, "p.yaml", {**ENV, "PORT": "9090"}).server.port == 9090


def test_an_empty_default_is_a_value() -> None:
    text = edit({12: "    base_url: http://127.0.0.1:9/v1${SUFFIX:-}"})
    assert parse_policy(text, "p.yaml", ENV).backends["up"].base_url == "http://127.0.0.1:9/v1"


def test_expanded_value_is_still_validated_at_its_line() -> None:
    text = edit({3: "  port: ${PORT:-8081}"})
    error = reject(text, {**ENV, "PORT": "http"})
    assert "p.yaml:3: server.port: expected a whole number, got 'http'" in str(error)


def test_anchors_and_aliases_are_allowed() -> None:
    text = edit(
        {
            11: "    kind: openai\n    timeouts: &quick {connect_s: 1, read_s: 2, total_s: 3}",
            12: "    base_url: http://127.0.0.1:9/v1\n  other:\n    kind: openai\n"
            "    base_url: http://127.0.0.1:10/v1\n    timeouts: *quick",
        }
    )
    policy = parse_policy(text, "p.yaml", ENV)
    assert policy.backends["other"].timeouts == policy.backends["up"].timeouts
    assert policy.backends["other"].timeouts.read_s == 2


def test_an_empty_env_value_counts_as_unset_for_key_env() -> None:
    error = reject(GOOD, {"ALICE_KEY": ""})
    assert "p.yaml:8: auth.keys[0].key_env: environment variable ALICE_KEY is not set" in str(error)


def _env_for(text: str) -> dict[str, str]:
    """A value for every variable a policy needs: key_env/api_key_env names and bare ${VAR}s."""
    names = re.findall(r"\b(?:api_)?key_env:\s*([A-Za-z_][A-Za-z0-9_]*)", text)
    names += re.findall(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}", text)
    return {name: f"value-of-{name}" for name in names}


SHIPPED = sorted((REPO / "policies").glob("*.yaml"))


def test_the_default_policy_ships() -> None:
    assert REPO / "policies" / "default.yaml" in SHIPPED


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.name)
def test_shipped_policies_are_valid(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    policy = parse_policy(text, path.name, _env_for(text))
    assert policy.models and policy.backends
    for route in policy.models.values():
        assert all(target.backend in policy.backends for target in route.targets())
