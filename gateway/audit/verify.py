"""Verification of an audit log on disk: the checks of docs/audit.md "Verification".

Reads the segments in name order one line at a time (constant memory) and stops at the first
problem, naming its file, line and `seq`; a directory with several chains (one per worker) gets
one report per chain. Formatting the result for people is commands.py's job.
"""

from __future__ import annotations

import hmac
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeGuard

import orjson

from gateway.audit.chain import GENESIS, digest, personal_ok, seal_mac
from gateway.audit.chains import ChainDir, chain_dirs
from gateway.audit.encryption import Keyring, RecordTampered, open_record
from gateway.audit.segment import SEGMENT_NAME

# A seal line is a few hundred bytes; a longer last line is not a seal.
_SEAL_TAIL_BYTES = 64 * 1024


@dataclass(frozen=True, slots=True)
class Failure:
    """Where verification stopped: a file, its 1-based line (None: the file as a whole), a seq."""

    file: str
    line: int | None
    seq: int | None
    what: str

    def __str__(self) -> str:
        where = self.file if self.line is None else f"{self.file} line {self.line}"
        seq = "" if self.seq is None else f" (seq {self.seq})"
        return f"{where}{seq}: {self.what}"


@dataclass(slots=True)
class Report:
    """The outcome; `last_seq` and `last_digest` are those of the last record that verified."""

    ok: bool
    problem: str | None
    failure: Failure | None
    records: int
    segments: int
    last_seq: int | None
    last_digest: str | None
    open_segment: str | None
    hmac_checked: bool
    notes: list[str] = field(default_factory=list)


class _Stop(Exception):
    def __init__(self, failure: Failure) -> None:
        super().__init__(str(failure))
        self.failure = failure


@dataclass(slots=True)
class _Segment:
    """What one segment has shown so far."""

    name: str
    name_seq: int
    line: int = 0
    records: int = 0
    first_seq: int | None = None
    first_prev: Any = None
    sealed: bool = False

    def fail(self, what: str, seq: int | None = None) -> _Stop:
        """A problem at the line read last (the file as a whole when it has no lines)."""
        return _Stop(Failure(self.name, self.line or None, seq, what))


def verify_log(directory: Path, key: bytes | None, keys: Keyring | None = None) -> Report:
    """Verify every segment in `directory`; with `key`, seals must carry a matching HMAC.

    Encrypted records are checked after decryption with `keys`; KeyProblem (not a Report)
    when a record needs a key that is not there.
    """
    names = sorted(p.name for p in directory.iterdir() if SEGMENT_NAME.fullmatch(p.name))
    verifier = _Verifier(key, keys)
    failure = None
    try:
        for index, name in enumerate(names):
            verifier.segment(directory / name, oldest=index == 0, newest=index == len(names) - 1)
    except _Stop as stop:
        failure = stop.failure
    if not names:
        verifier.notes.append(f"no audit segments in {directory}")
    return verifier.report(failure)


def verify_chains(
    root: Path, key: bytes | None, keys: Keyring | None = None
) -> list[tuple[ChainDir, Report]]:
    """Verify every chain in `root` (its own segments, each worker's subfolder) on its own:
    one chain's damage does not stop the others from being checked."""
    return [(chain, verify_log(chain.path, key, keys)) for chain in chain_dirs(root)]


class _Verifier:
    """The chain as verified so far: the seq and `prev` the next record must have."""

    def __init__(self, key: bytes | None, keys: Keyring | None) -> None:
        self.key = key
        self.keys = keys
        self.next_seq: int | None = None  # None until the oldest segment anchors the chain
        self.prev = GENESIS
        self.prev_is = "the genesis digest (64 zeros)"
        self.records = 0
        self.segments = 0
        self.open_segment: str | None = None
        self.anchor: dict[str, Any] | None = None
        self.hmac_checked = False
        self.hmac_unchecked = False
        self.seals_without_hmac = False
        self.notes: list[str] = []

    def report(self, failure: Failure | None) -> Report:
        if self.hmac_unchecked:
            self.notes.append("HMACs not checked (no key)")
        elif self.key is None and self.seals_without_hmac:
            self.notes.append("seals carry no HMAC: a recomputed chain would not be detected")
        elif self.key is not None and not self.hmac_checked and failure is None:
            self.notes.append("no sealed segment yet: the key had no HMAC to check")
        verified = self.records > 0
        return Report(
            ok=failure is None,
            problem=None if failure is None else str(failure),
            failure=failure,
            records=self.records,
            segments=self.segments,
            last_seq=(self.next_seq or 1) - 1 if verified else None,
            last_digest=self.prev if verified else None,
            open_segment=self.open_segment,
            hmac_checked=self.hmac_checked,
            notes=self.notes,
        )

    def segment(self, path: Path, oldest: bool, newest: bool) -> None:
        match = SEGMENT_NAME.fullmatch(path.name)
        assert match is not None  # verify_log lists only matching names
        seg = _Segment(path.name, int(match.group("seq")))
        self.segments += 1
        if oldest:
            self.anchor = _trailing_seal(path)
        with path.open("rb") as lines:
            for raw in lines:
                seg.line += 1
                if seg.sealed:
                    raise seg.fail("a line after the seal (the seal must be the last line)")
                if newest and not raw.endswith(b"\n"):
                    # The open segment of a running gateway: a batch being written right now.
                    # After a crash the gateway cuts such a line when it starts.
                    self.notes.append(
                        f"{seg.name} line {seg.line}: incomplete last line not checked"
                        " (a write in progress, or cut short by a crash)"
                    )
                    break
                self.entry(_parse(raw, seg), seg)
        if seg.records == 0 and self.next_seq is not None:  # empty: named for the next seq
            self.check_name(seg, self.next_seq)
        if not seg.sealed:
            if not newest:
                last = self.next_seq - 1 if seg.records and self.next_seq else None
                raise seg.fail("segment ends without a seal (only the newest may be open)", last)
            self.open_segment = seg.name

    def entry(self, entry: dict[str, Any], seg: _Segment) -> None:
        kind = entry.get("type")
        if kind == "seal":
            self.seal(entry, seg)
        elif "type" in entry:
            raise seg.fail(f"unknown line type {kind!r} (expected a record or a seal)")
        else:
            try:
                record = open_record(entry, self.keys, seg.name)
            except RecordTampered as exc:
                raise seg.fail(str(exc), entry.get("seq")) from None
            self.record(record, seg)

    def record(self, record: dict[str, Any], seg: _Segment) -> None:
        seq = record.get("seq")
        if not _is_int(seq):
            raise seg.fail("record has no integer seq")
        if self.next_seq is None:
            self.start(seq, seg)
        elif seq != self.next_seq:
            raise seg.fail(
                f"expected seq {self.next_seq} here: a record is missing, repeated or moved", seq
            )
        if seg.records == 0:
            self.check_name(seg, seq, seq)
            seg.first_seq, seg.first_prev = seq, record.get("prev")
        if record.get("prev") != self.prev:
            raise seg.fail(f"prev does not match {self.prev_is}", seq)
        if not personal_ok(record):
            raise seg.fail("personal_sha256 does not match personal", seq)
        self.prev, self.prev_is = digest(record), f"the digest of seq {seq}"
        self.next_seq = seq + 1
        seg.records += 1
        self.records += 1

    def start(self, first_seq: int, seg: _Segment) -> None:
        """Anchor the chain at the oldest segment: genesis, or the first_prev of its seal."""
        self.next_seq = first_seq
        if first_seq == 1:
            return
        if self.anchor is None:
            raise seg.fail(
                "the oldest record present follows earlier records, but its segment has no seal"
                " to anchor it (records were removed from the start of the log)",
                first_seq,
            )
        first_prev = self.anchor.get("first_prev")
        if not isinstance(first_prev, str):
            raise seg.fail("the seal that anchors the chain has no first_prev", first_seq)
        self.prev, self.prev_is = first_prev, "its seal's first_prev"
        self.notes.append(
            f"records before seq {first_seq} are not here (earlier segments removed, e.g. by"
            f" retention); the chain starts from the seal of {seg.name}"
        )

    def check_name(self, seg: _Segment, first_seq: int, seq: int | None = None) -> None:
        if seg.name_seq != first_seq:
            raise seg.fail(
                f"the file name says the segment starts at seq {seg.name_seq}, it starts at"
                f" seq {first_seq}",
                seq,
            )

    def seal(self, body: dict[str, Any], seg: _Segment) -> None:
        if self.next_seq is None:  # the oldest segment holds no records, only its seal
            first_seq = body.get("first_seq")
            if not _is_int(first_seq):
                raise seg.fail("seal has no integer first_seq")
            self.start(first_seq, seg)
        assert self.next_seq is not None
        expected = {
            "segment": seg.name,
            "first_seq": self.next_seq if seg.first_seq is None else seg.first_seq,
            "last_seq": self.next_seq - 1,
            "records": seg.records,
            "first_prev": self.prev if seg.records == 0 else seg.first_prev,
            "last_digest": self.prev,
        }
        for name, value in expected.items():
            if body.get(name) != value:
                raise seg.fail(
                    f"seal says {name} {_show(body.get(name))}, but the segment has {_show(value)}"
                )
        self.check_hmac(body, seg)
        seg.sealed = True

    def check_hmac(self, body: dict[str, Any], seg: _Segment) -> None:
        mac = body.get("hmac")
        if self.key is None:
            self.hmac_unchecked |= mac is not None
            self.seals_without_hmac |= mac is None
            return
        if mac is None:
            raise seg.fail("seal not authenticated (its hmac is null, but a key was given)")
        if not hmac.compare_digest(str(mac), seal_mac(body, self.key) or ""):
            raise seg.fail("seal's hmac does not match: the seal was forged or the key is wrong")
        self.hmac_checked = True


def _parse(raw: bytes, seg: _Segment) -> dict[str, Any]:
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError:
        if not raw.endswith(b"\n"):
            raise seg.fail("partial last line (no newline, not valid JSON): a cut write") from None
        raise seg.fail("line is not valid JSON") from None
    if not isinstance(value, dict):
        raise seg.fail("line is not a JSON object")
    return value


def _trailing_seal(path: Path) -> dict[str, Any] | None:
    """The seal on the last line of `path`, read without reading the rest, or None."""
    with path.open("rb") as file:
        size = file.seek(0, os.SEEK_END)
        file.seek(max(0, size - _SEAL_TAIL_BYTES))
        tail = file.read()
    last = tail.removesuffix(b"\n").rsplit(b"\n", 1)[-1]
    try:
        value = orjson.loads(last)
    except orjson.JSONDecodeError:
        return None
    return value if isinstance(value, dict) and value.get("type") == "seal" else None


def _is_int(value: Any) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


def _show(value: Any) -> str:
    """A value for a message; digests shortened so a problem stays on one line."""
    if isinstance(value, str) and len(value) == 64:
        return value[:12] + "…"
    return orjson.dumps(value).decode()
