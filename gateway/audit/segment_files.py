"""Reading segment files from disk: which segments there are, in log order, and their lines.

Export and purge share this; the format itself (names, seals) is defined in segment.py.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NamedTuple

import orjson

from gateway.audit.encryption import Keyring, RecordTampered, is_envelope, open_record
from gateway.audit.segment import SEGMENT_NAME

# A seal is a few hundred bytes; a tail this long always holds one whole.
_SEAL_TAIL_BYTES = 4096


class AuditFileError(Exception):
    """A line of a segment is not a JSON object: the log is damaged (run `sluice audit verify`)."""


class Line(NamedTuple):
    """One complete line of a segment: where it is, its bytes as stored, and its parsed value."""

    path: Path
    number: int
    raw: bytes
    value: dict[str, Any]


def segment_paths(directory: Path) -> list[Path]:
    """The segments in `directory`, in name order, which is write order."""
    names = sorted(name for name in os.listdir(directory) if SEGMENT_NAME.match(name))
    return [directory / name for name in names]


def is_seal(value: dict[str, Any]) -> bool:
    return value.get("type") == "seal"


def parse_line(path: Path, number: int, raw: bytes) -> dict[str, Any]:
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise AuditFileError(f"{path}:{number}: not JSON ({exc})") from None
    if not isinstance(value, dict):
        raise AuditFileError(f"{path}:{number}: not a JSON object")
    return value


def read_lines(path: Path, keys: Keyring | None = None) -> Iterator[Line]:
    """Every complete line of a segment, one at a time; an encrypted record comes decrypted,
    its `raw` the plaintext line (KeyProblem when `keys` cannot open it).

    A last line without its newline is a write in progress (or cut short by a crash) and is
    not yet part of the log, so it is left out.
    """
    with path.open("rb") as file:
        for number, raw in enumerate(file, start=1):
            if not raw.endswith(b"\n"):
                return
            value = parse_line(path, number, raw)
            if is_envelope(value):
                try:
                    value = open_record(value, keys, path.name)
                except RecordTampered as exc:
                    raise AuditFileError(f"{path}:{number}: {exc}") from None
                raw = orjson.dumps(value) + b"\n"
            yield Line(path, number, raw, value)


def read_records(directory: Path, keys: Keyring | None = None) -> Iterator[Line]:
    """Every record line of the log, oldest first, seal lines left out."""
    for path in segment_paths(directory):
        for line in read_lines(path, keys):
            if not is_seal(line.value):
                yield line


def is_sealed(path: Path) -> bool:
    """Whether the segment ends with a seal (reading its tail, not the whole file)."""
    with path.open("rb") as file:
        size = file.seek(0, os.SEEK_END)
        start = max(0, size - _SEAL_TAIL_BYTES)
        file.seek(start)
        tail = file.read()
    complete = tail[: tail.rfind(b"\n") + 1]
    lines = complete.splitlines()
    if not lines or (len(lines) == 1 and start > 0):
        return False  # no complete line in the tail: the last one is longer than any seal
    try:
        value = orjson.loads(lines[-1])
    except orjson.JSONDecodeError:
        return False
    return isinstance(value, dict) and is_seal(value)


def open_segment(directory: Path) -> Path | None:
    """The newest segment if it has no seal yet: a running gateway may be appending to it."""
    paths = segment_paths(directory)
    if paths and not is_sealed(paths[-1]):
        return paths[-1]
    return None
