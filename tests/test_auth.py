"""API keys: env-var and sha256 keys map to tenants and model allow-lists."""

from __future__ import annotations

import hashlib

import httpx
import pytest

from gateway.auth import KeyRing
from gateway.config.schema import AuthConfig
from gateway.errors import AuthenticationFailed, PermissionDenied
from tests.conftest import ALICE_KEY, BOB_KEY, GatewayFactory, policy_yaml
from tests.support.mock_upstream import MockUpstream
from tests.support.servers import ServerThread

CAROL_KEY = "sk-carol-from-a-digest"


def keyring() -> KeyRing:
    config = AuthConfig.model_validate(
        {
            "keys": [
                {"id": "alice", "tenant": "acme", "key_env": "ALICE"},
                {
                    "id": "carol",
                    "tenant": "gamma",
                    "sha256": hashlib.sha256(CAROL_KEY.encode()).hexdigest(),
                    "models": ["small"],
                },
            ]
        }
    )
    return KeyRing(config, {"ALICE": ALICE_KEY})


def test_env_and_digest_keys_resolve_to_their_tenants() -> None:
    ring = keyring()
    assert ring.authenticate(f"Bearer {ALICE_KEY}".encode()).tenant == "acme"
    carol = ring.authenticate(f"bearer {CAROL_KEY}".encode())
    assert (carol.key_id, carol.tenant) == ("carol", "gamma")


@pytest.mark.parametrize(
    "header",
    [
        None,
        b"",
        b"Bearer",
        b"Bearer ",
        b"Basic abc",
        f"Token {ALICE_KEY}".encode(),
        b"Bearer nope",
        f"Bearer {ALICE_KEY}x".encode(),
    ],
)
def test_missing_malformed_or_unknown_keys_are_401(header: bytes | None) -> None:
    with pytest.raises(AuthenticationFailed) as caught:
        keyring().authenticate(header)
    assert caught.value.status_code == 401


def test_allow_list_is_enforced() -> None:
    carol = keyring().authenticate(f"Bearer {CAROL_KEY}".encode())
    carol.check_model("small")
    with pytest.raises(PermissionDenied) as caught:
        carol.check_model("large")
    assert caught.value.status_code == 403 and caught.value.param == "model"


def test_auth_none_lets_anyone_in() -> None:
    ring = KeyRing(AuthConfig.model_validate("none"), {})
    assert ring.authenticate(None).key_id == "anonymous"


def post(gateway: ServerThread, headers: dict[str, str], model: str = "gpt-echo") -> httpx.Response:
    return httpx.post(
        f"{gateway.url}/v1/chat/completions",
        headers=headers,
        timeout=10,
        json={"model": model, "messages": [{"role": "user", "content": "x"}]},
    )


def test_http_statuses_for_auth(gateway: ServerThread) -> None:
    assert post(gateway, {}).status_code == 401
    assert (
        post(gateway, {"authorization": "Bearer wrong"}).json()["error"]["code"]
        == "invalid_api_key"
    )
    assert post(gateway, {"authorization": f"Bearer {BOB_KEY}"}, "gpt-hold").status_code == 403
    assert post(gateway, {"authorization": f"Bearer {BOB_KEY}"}).status_code == 200
    models = httpx.get(f"{gateway.url}/v1/models", timeout=10)
    assert models.status_code == 401


def test_auth_none_serves_without_a_key_on_loopback(
    upstream: MockUpstream, start_gateway: GatewayFactory
) -> None:
    text = policy_yaml(upstream.base_url)
    start = text.index("auth:")
    text = text[:start] + "auth: none\n" + text[text.index("backends:") :]
    gateway = start_gateway(text)
    assert post(gateway, {}).status_code == 200
