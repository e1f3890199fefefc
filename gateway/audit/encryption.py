"""Encryption at rest of audit records: AES-256-GCM per record, keys named by a key id.

Each record line becomes an envelope; the hash chain and the seals are computed over the
plaintext record, so they are the same whether the log is encrypted or not (docs/audit.md).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
from collections.abc import Mapping, Sequence
from typing import Any

import orjson
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

KEY_BYTES = 32
NONCE_BYTES = 12
DEFAULT_ENC_KEY_ENV = "SLUICE_AUDIT_ENC_KEY"
KEY_FORMAT = "64 hex digits, or the base64 of 32 random bytes"
KEY_HINT = (
    "make one with: python -c 'import base64, os; print(base64.b64encode(os.urandom(32)).decode())'"
)


class KeyProblem(Exception):
    """The keys at hand cannot open a record (none given, or not the one it was written with):
    a problem with how the tool was run, not damage to the log."""


class RecordTampered(Exception):
    """A record's ciphertext does not authenticate under its own key: it, its nonce or its
    place in the log was changed."""


def parse_key(text: str) -> bytes:
    """A 256-bit key written as hex or base64 (either alphabet, padding optional)."""
    text = text.strip()
    raw: bytes | None = None
    if len(text) == 2 * KEY_BYTES:
        try:
            raw = bytes.fromhex(text)
        except ValueError:
            raw = None
    if raw is None:
        try:
            padded = text + "=" * (-len(text) % 4)
            raw = base64.b64decode(padded.replace("-", "+").replace("_", "/"), validate=True)
        except (binascii.Error, ValueError):
            raise ValueError(f"is neither hex nor base64; write {KEY_FORMAT}") from None
    if len(raw) != KEY_BYTES:
        raise ValueError(
            f"holds a {len(raw) * 8}-bit key; AES-256-GCM needs 256 bits ({KEY_FORMAT})"
        )
    return raw


def env_key(name: str, env: Mapping[str, str]) -> bytes:
    """The key in environment variable `name`; ValueError says what is wrong and what to do."""
    text = env.get(name)
    if not text:
        raise ValueError(
            f"environment variable {name} is not set; put a 256-bit key in it ({KEY_FORMAT}); "
            f"{KEY_HINT}"
        )
    try:
        return parse_key(text)
    except ValueError as exc:
        raise ValueError(f"environment variable {name} {exc}") from None


def key_id(key: bytes) -> str:
    """A short public name for a key: which key a record needs, without revealing the key."""
    return hashlib.sha256(b"sluice-audit-key-id\0" + key).hexdigest()[:16]


def record_aad(segment: str, seq: int) -> bytes:
    """Binds a record to its segment and position: moved or renumbered, it fails to decrypt."""
    return f"sluice-audit:v1:{segment}:{seq}".encode()


def stream_aad(stream: str) -> bytes:
    return f"sluice-audit:v1:stream:{stream}".encode()


def is_envelope(value: dict[str, Any]) -> bool:
    return "ct" in value and "type" not in value


class Keyring:
    """Keys by id: the first one encrypts, every one decrypts (old keys after a rotation)."""

    def __init__(self, keys: Sequence[bytes]) -> None:
        if not keys:
            raise ValueError("a keyring needs at least one key")
        self._ciphers = {key_id(key): AESGCM(key) for key in keys}
        self.current = key_id(keys[0])

    @classmethod
    def from_env(cls, names: Sequence[str], env: Mapping[str, str]) -> Keyring:
        return cls([env_key(name, env) for name in names])

    @property
    def ids(self) -> list[str]:
        return list(self._ciphers)

    def seal(
        self, plain: bytes, aad: bytes, seq: int | None = None, kid: str | None = None
    ) -> bytes:
        """The envelope line (newline included) of `plain`, under a fresh random nonce."""
        kid = kid or self.current
        nonce = os.urandom(NONCE_BYTES)
        ct = self._ciphers[kid].encrypt(nonce, plain, aad)
        envelope: dict[str, Any] = {"v": 1}
        if seq is not None:
            envelope["seq"] = seq
        envelope.update(kid=kid, nonce=_b64(nonce), ct=_b64(ct))
        return orjson.dumps(envelope) + b"\n"

    def open(self, envelope: dict[str, Any], aad: bytes, what: str) -> bytes:
        """The plaintext of `envelope`; `what` names it in errors ("record 7 of segment X")."""
        kid = envelope.get("kid")
        cipher = self._ciphers.get(kid) if isinstance(kid, str) else None
        if cipher is None:
            raise KeyProblem(
                f"cannot decrypt {what}: wrong key? it was encrypted with key id {kid}, the keys "
                f"given have id {', '.join(self._ciphers)} (give the old key too: "
                "encryption.old_key_envs, or another --enc-key-env)"
            )
        try:
            return cipher.decrypt(_unb64(envelope.get("nonce")), _unb64(envelope.get("ct")), aad)
        except (InvalidTag, ValueError):
            raise RecordTampered(
                f"{what} does not decrypt with its key (id {kid}): its ciphertext, nonce or "
                "place in the log was altered"
            ) from None


def open_record(value: dict[str, Any], keys: Keyring | None, segment: str) -> dict[str, Any]:
    """The record on a segment line: `value` itself, or the decrypted envelope it is."""
    if not is_envelope(value):
        return value
    seq = value.get("seq")
    what = f"record {seq} of segment {segment}"
    if keys is None:
        raise KeyProblem(
            f"cannot decrypt {what}: the log is encrypted and no key was given (set "
            f"{DEFAULT_ENC_KEY_ENV}, or pass --enc-key-env NAME)"
        )
    if not isinstance(seq, int) or isinstance(seq, bool):
        raise RecordTampered(f"encrypted {what} has no integer seq")
    record = _object(keys.open(value, record_aad(segment, seq), what), what)
    if record.get("seq") != seq:
        raise RecordTampered(f"{what} holds seq {record.get('seq')}")
    return record


def open_stream_entry(payload: bytes, keys: Keyring | None, stream: str, entry_id: str) -> Any:
    """A record as a writer put it into the stream (an envelope when encryption is on)."""
    what = f"stream entry {entry_id} of {stream}"
    try:
        value = orjson.loads(payload)
    except orjson.JSONDecodeError:
        raise RecordTampered(f"{what} is not JSON") from None
    if not isinstance(value, dict) or not is_envelope(value):
        return value
    if keys is None:
        raise KeyProblem(
            f"cannot decrypt {what}: the gateways encrypt it and no key was given (set "
            f"{DEFAULT_ENC_KEY_ENV}, or pass --enc-key-env NAME)"
        )
    return _object(keys.open(value, stream_aad(stream), what), what)


def _object(plain: bytes, what: str) -> dict[str, Any]:
    try:
        value = orjson.loads(plain)
    except orjson.JSONDecodeError:
        value = None
    if not isinstance(value, dict):
        raise RecordTampered(f"{what} does not hold a JSON object")
    return value


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _unb64(value: Any) -> bytes:
    if not isinstance(value, str):
        raise ValueError("not base64 text")
    return base64.b64decode(value, validate=True)
