"""The `audit` policy keys for encryption and the Redis stream sink: defaults unchanged, and a
missing or malformed key refused at load, naming the file, line and key."""

from __future__ import annotations

import base64

import pytest

from gateway.config.audit import AuditConfig
from gateway.config.loader import PolicyError, parse_policy
from gateway.service import Gateway

ENV = {"ALICE_KEY": "sk-alice-0123456789"}
KEY = base64.b64encode(bytes(range(32))).decode()

BASE = """\
auth:
  keys:
    - {id: alice, tenant: acme, key_env: ALICE_KEY}
backends:
  up: {kind: openai, base_url: "http://127.0.0.1:9/v1"}
models:
  m1: {backend: up}
audit:
  dir: ./audit
"""


def policy(audit_lines: str) -> str:
    return BASE + audit_lines


def refused(text: str, env: dict[str, str] = ENV) -> str:
    with pytest.raises(PolicyError) as caught:
        parse_policy(text, "p.yaml", env)
    return str(caught.value)


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in ("SLUICE_AUDIT_ENC_KEY", "AUDIT_KEY", "OLD_AUDIT_KEY"):
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def test_the_defaults_keep_a_plain_file_log() -> None:
    config = AuditConfig()
    assert config.sink == "file" and config.encryption is None
    assert config.redis.stream == "sluice:audit" and config.redis.timeout_ms == 1000


def test_an_unset_encryption_key_variable_is_refused_at_its_line(
    clean_env: pytest.MonkeyPatch,
) -> None:
    message = refused(policy("  encryption:\n    key_env: AUDIT_KEY\n"))
    assert message.startswith(
        "p.yaml:11: audit.encryption.key_env: environment variable AUDIT_KEY is not set; "
        "put a 256-bit key in it"
    )


def test_a_key_of_the_wrong_size_is_refused() -> None:
    env = {**ENV, "AUDIT_KEY": base64.b64encode(bytes(16)).decode()}
    message = refused(policy("  encryption: {key_env: AUDIT_KEY}\n"), env)
    assert "audit.encryption.key_env: environment variable AUDIT_KEY holds a 128-bit key" in message


def test_an_unset_old_key_is_refused_at_its_entry() -> None:
    text = policy("  encryption:\n    key_env: AUDIT_KEY\n    old_key_envs: [OLD_AUDIT_KEY]\n")
    message = refused(text, {**ENV, "AUDIT_KEY": KEY})
    assert "audit.encryption.old_key_envs[0]: environment variable OLD_AUDIT_KEY" in message


def test_encryption_and_a_redis_sink_load_with_their_keys_set() -> None:
    env = {**ENV, "AUDIT_KEY": KEY, "OLD_AUDIT_KEY": bytes(range(1, 33)).hex()}
    text = policy(
        "  encryption: {key_env: AUDIT_KEY, old_key_envs: [OLD_AUDIT_KEY]}\n"
        "  sink: redis_stream\n"
        "  redis: {url: 'redis://127.0.0.1:6379/10', stream: 'a:b', maxlen: 0}\n"
    )
    audit = parse_policy(text, "p.yaml", env).audit
    assert audit is not None and audit.encryption is not None
    assert audit.sink == "redis_stream" and audit.redis.maxlen == 0


def test_a_redis_sink_needs_a_redis_url() -> None:
    message = refused(policy("  sink: redis_stream\n  redis: {url: 'http://localhost'}\n"))
    assert "audit.redis.url: must start with redis://, rediss:// or unix://" in message


def test_the_policy_is_checked_against_the_env_it_is_loaded_with(
    clean_env: pytest.MonkeyPatch,
) -> None:
    # The process has the key, the environment the policy is loaded for does not.
    clean_env.setenv("AUDIT_KEY", KEY)
    assert "AUDIT_KEY is not set" in refused(policy("  encryption: {key_env: AUDIT_KEY}\n"))


def test_the_gateway_reads_the_keys_from_its_own_environment() -> None:
    text = policy("  encryption: {key_env: AUDIT_KEY}\n")
    loaded = parse_policy(text, "p.yaml", {**ENV, "AUDIT_KEY": KEY})
    with pytest.raises(ValueError, match="environment variable AUDIT_KEY is not set"):
        Gateway(loaded, ENV)
    gateway = Gateway(loaded, {**ENV, "AUDIT_KEY": KEY})
    assert gateway.audit is not None and gateway.audit.files.keys is not None
