"""API keys to tenants: who is calling, and which models they may use.

Keys come from env vars or sha256 digests in the policy and are never held in clear beyond start-up.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from dataclasses import dataclass

from gateway.config.schema import AuthConfig
from gateway.errors import AuthenticationFailed, PermissionDenied


@dataclass(frozen=True, slots=True)
class Principal:
    key_id: str
    tenant: str
    models: frozenset[str]
    all_models: bool
    # May use the admin endpoints (experiment weights).
    admin: bool = False

    def check_model(self, model: str) -> None:
        if not self.all_models and model not in self.models:
            raise PermissionDenied(
                f"The API key '{self.key_id}' may not use the model '{model}'.", param="model"
            )


ANONYMOUS = Principal(key_id="anonymous", tenant="default", models=frozenset(), all_models=True)


class KeyRing:
    """Looks up the bearer token of a request; `authenticate` is on the hot path."""

    def __init__(self, config: AuthConfig, env: Mapping[str, str]) -> None:
        self.enabled = config.mode == "keys"
        self._by_digest: dict[bytes, tuple[bytes, Principal]] = {}
        for key in config.keys:
            if key.key_env is not None:
                digest = hashlib.sha256(env[key.key_env].encode()).digest()
            else:
                digest = bytes.fromhex(key.sha256 or "")
            self._by_digest[digest] = (
                digest,
                Principal(
                    key_id=key.id,
                    tenant=key.tenant,
                    models=frozenset(m for m in key.models if m != "*"),
                    all_models="*" in key.models,
                    admin=key.admin,
                ),
            )

    def authenticate(self, authorization: bytes | None) -> Principal:
        if not self.enabled:
            return ANONYMOUS
        if not authorization:
            raise AuthenticationFailed(
                "Missing API key: send it as 'Authorization: Bearer <key>'.", code="missing_api_key"
            )
        scheme, _, token = authorization.partition(b" ")
        if scheme.lower() != b"bearer" or not token.strip():
            raise AuthenticationFailed("The Authorization header must be 'Bearer <key>'.")
        digest = hashlib.sha256(token.strip()).digest()
        # The lookup is keyed by a digest the caller cannot steer, so its timing reveals nothing
        # usable; the final comparison is constant time all the same.
        found = self._by_digest.get(digest)
        if found is None or not hmac.compare_digest(found[0], digest):
            raise AuthenticationFailed("Incorrect API key provided.")
        return found[1]
