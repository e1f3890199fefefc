"""The audit log's tamper evidence, as pure functions: record digests, the hash chain, seals.

A record's digest covers every field except `personal`, which is committed by
`personal_sha256` instead, so erasing personal data (a tombstone) leaves the chain intact.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from typing import Any

import orjson

GENESIS = "0" * 64
FORMAT_VERSION = 1
PURGED = "purged"


def canonical(value: Any) -> bytes:
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS)


def digest(record: dict[str, Any]) -> str:
    """sha256 of the record without its `personal` part; `prev` is included, so digests chain."""
    committed = {k: v for k, v in record.items() if k != "personal"}
    return hashlib.sha256(canonical(committed)).hexdigest()


def personal_part(fields: dict[str, Any]) -> tuple[dict[str, Any], str]:
    """(personal, its sha256): a random salt keeps low-entropy data (a user id) unguessable
    from the digest once the data itself is erased."""
    personal = {"salt": secrets.token_hex(16), **fields}
    return personal, hashlib.sha256(canonical(personal)).hexdigest()


def personal_ok(record: dict[str, Any]) -> bool:
    personal = record.get("personal")
    if isinstance(personal, dict) and personal.get(PURGED) is True:
        # A tombstone: the data is gone, the commitment stays. Nothing else may ride along.
        return set(personal) == {PURGED, "at"}
    return bool(hashlib.sha256(canonical(personal)).hexdigest() == record.get("personal_sha256"))


def tombstone(at: str) -> dict[str, Any]:
    return {PURGED: True, "at": at}


def seal(
    segment: str,
    first_seq: int,
    last_seq: int,
    first_prev: str,
    last_digest: str,
    key: bytes | None,
) -> dict[str, Any]:
    """The last line of a finished segment; with a key, an HMAC nobody without it can forge."""
    body: dict[str, Any] = {
        "type": "seal",
        "v": FORMAT_VERSION,
        "segment": segment,
        "first_seq": first_seq,
        "last_seq": last_seq,
        "records": last_seq - first_seq + 1 if last_seq >= first_seq else 0,
        "first_prev": first_prev,
        "last_digest": last_digest,
    }
    body["hmac"] = seal_mac(body, key)
    return body


def seal_mac(body: dict[str, Any], key: bytes | None) -> str | None:
    if key is None:
        return None
    unsigned = {k: v for k, v in body.items() if k != "hmac"}
    return hmac.new(key, canonical(unsigned), hashlib.sha256).hexdigest()
