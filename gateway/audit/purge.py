"""Erasure: replacing the `personal` part of a tenant's or a user's records with a tombstone.

The chain covers every field but `personal` (which `personal_sha256` commits to), so a purged
log still verifies. Each affected segment is rewritten beside itself and swapped in atomically;
a directory with several chains (one per worker) is purged chain by chain.
"""

from __future__ import annotations

import os
import stat
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

import orjson

from gateway.audit.chain import PURGED, tombstone
from gateway.audit.chains import chain_dirs
from gateway.audit.encryption import Keyring, RecordTampered, is_envelope, open_record, record_aad
from gateway.audit.segment_files import is_seal, open_segment, segment_paths

Match = Callable[[dict[str, Any]], bool]
FEEDBACK = "feedback"  # the `kind` of a feedback record (gateway/feedback.py)
Entry = dict[str, Any]


@dataclass(frozen=True, slots=True)
class Purged:
    """What a purge did: records tombstoned, and the open segments it left alone (at most
    one per chain)."""

    records: int
    skipped: tuple[Path, ...] = ()

    @property
    def skipped_open(self) -> Path | None:
        """The first open segment left alone, if any (the only one, for one chain)."""
        return self.skipped[0] if self.skipped else None


def purge(
    directory: Path,
    tenant: str | None = None,
    user: str | None = None,
    now: datetime | None = None,
    include_open: bool = False,
    keys: Keyring | None = None,
) -> Purged:
    """Tombstone the records of `tenant` (the record's field) and/or `user` (`personal.user`;
    with both, a record must match both) in every chain of `directory`. A user's feedback
    records are found through the (tenant, request_id) of the user's request records, read
    first from every segment of every chain (feedback may reach another worker than the
    request it scores).

    Each chain's newest segment, while it has no seal, is left alone unless `include_open`: a
    running gateway appends to it, and what it appends during the rewrite would be lost.
    Encrypted records are decrypted with `keys` (KeyProblem without the right one) and
    re-encrypted under the key they had, with a fresh nonce.
    """
    if tenant is None and user is None:
        raise ValueError("purge needs a tenant or a user to erase")
    at = rfc3339(now or datetime.now(UTC))
    chains = [chain.path for chain in chain_dirs(directory)]
    scored = _request_ids(chains, _matcher(tenant, user), keys) if user is not None else None
    match = _matcher(tenant, user, scored)
    records = 0
    skipped: list[Path] = []
    for chain in chains:
        skip = None if include_open else open_segment(chain)
        if skip is not None:
            skipped.append(skip)
        for path in segment_paths(chain):
            if path != skip and _any_match(path, match, keys):
                records += _rewrite(path, match, at, keys)
    return Purged(records, tuple(skipped))


def rfc3339(moment: datetime) -> str:
    """The log's time format: UTC with milliseconds and a `Z`."""
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _matcher(
    tenant: str | None, user: str | None, scored: set[tuple[Any, Any]] | None = None
) -> Match:
    """With `scored`, feedback records match by the (tenant, request_id) they score."""

    def match(record: dict[str, Any]) -> bool:
        personal = record.get("personal")
        if not isinstance(personal, dict) or personal.get(PURGED) is True:
            return False  # nothing personal left (already purged: keep the first `at`)
        if tenant is not None and record.get("tenant") != tenant:
            return False
        if scored is not None and record.get("kind") == FEEDBACK:
            return (record.get("tenant"), record.get("request_id")) in scored
        return user is None or personal.get("user") == user

    return match


def _request_ids(
    chains: Sequence[Path], match: Match, keys: Keyring | None
) -> set[tuple[Any, Any]]:
    """(tenant, request_id) of every request record `match` selects, open segments' too."""
    found: set[tuple[Any, Any]] = set()
    for path in (path for chain in chains for path in segment_paths(chain)):
        with path.open("rb") as file:
            for raw in file:
                entry = _record(raw, path.name, keys)
                if entry is not None and entry[0].get("kind") != FEEDBACK and match(entry[0]):
                    found.add((entry[0].get("tenant"), entry[0].get("request_id")))
    return found


def _record(raw: bytes, segment: str, keys: Keyring | None) -> tuple[Entry, Entry | None] | None:
    """(the record on a complete line, the envelope it came in or None); None for seals, a
    partial last line or a damaged line, which purge copies as they are (verify is the tool
    that reports damage)."""
    if not raw.endswith(b"\n"):
        return None
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(value, dict) or is_seal(value):
        return None
    if not is_envelope(value):
        return value, None
    try:
        return open_record(value, keys, segment), value
    except RecordTampered:
        return None


def _any_match(path: Path, match: Match, keys: Keyring | None) -> bool:
    """Read-only first pass, so segments with nothing to purge are never rewritten."""
    with path.open("rb") as file:
        for raw in file:
            found = _record(raw, path.name, keys)
            if found is not None and match(found[0]):
                return True
    return False


def _rewrite(path: Path, match: Match, at: str, keys: Keyring | None) -> int:
    """Copy `path` line by line into a temporary file beside it, tombstoning matches, then swap
    it in; a crash at any point leaves either the old segment or the new one, never half."""
    fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".purge")
    temporary = Path(name)
    try:
        with os.fdopen(fd, "wb") as out, path.open("rb") as source:
            purged = _copy(source, out, match, at, path.name, keys)
            out.flush()
            os.fsync(out.fileno())
        os.chmod(temporary, stat.S_IMODE(path.stat().st_mode))
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)
    _fsync_directory(path.parent)
    return purged


def _copy(
    source: IO[bytes], out: IO[bytes], match: Match, at: str, segment: str, keys: Keyring | None
) -> int:
    purged = 0
    for raw in source:
        found = _record(raw, segment, keys)
        if found is None or not match(found[0]):
            out.write(raw)
            continue
        record, envelope = found
        record["personal"] = tombstone(at=at)  # same key, same place: other fields untouched
        line = orjson.dumps(record)
        if envelope is None or keys is None:
            out.write(line + b"\n")
        else:
            aad = record_aad(segment, record["seq"])
            out.write(keys.seal(line, aad, record["seq"], kid=envelope["kid"]))
        purged += 1
    return purged


def _fsync_directory(directory: Path) -> None:
    """Make the rename itself durable."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
