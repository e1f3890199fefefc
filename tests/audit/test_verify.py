"""verify_log against logs built by hand: valid ones verify, and each kind of tampering or
damage is named by file, line and seq (docs/audit.md, "Verification")."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from gateway.audit.chain import digest, tombstone
from gateway.audit.segment import segment_name
from gateway.audit.verify import Report, verify_log
from tests.support.audit_logs import (
    STARTED,
    Entry,
    continuing_record,
    edit_line,
    read_lines,
    rechain,
    write_lines,
    write_log,
)

KEY = b"audit-test-key"


@pytest.fixture
def log(tmp_path: Path) -> list[Path]:
    """Segments A (seq 1-5, sealed), B (6-10, sealed) and C (11-13, open)."""
    return write_log(tmp_path, [5, 5, 3], key=KEY)


def assert_failed(report: Report, file: Path, line: int | None, seq: int | None, what: str) -> None:
    assert not report.ok
    assert report.failure is not None, report
    assert (report.failure.file, report.failure.line, report.failure.seq) == (
        file.name,
        line,
        seq,
    ), report.problem
    assert what in report.failure.what, report.problem
    assert report.problem == str(report.failure)


def set_field(name: str, value: Any) -> Any:
    def change(entry: Entry) -> None:
        entry[name] = value

    return change


# Valid logs


def test_a_valid_log_verifies_with_the_key(log: list[Path]) -> None:
    report = verify_log(log[0].parent, KEY)
    last = read_lines(log[2])[-1]
    assert report.ok, report.problem
    assert (report.records, report.segments, report.last_seq) == (13, 3, 13)
    assert report.last_digest == digest(last)
    assert report.open_segment == log[2].name
    assert report.hmac_checked
    assert report.notes == []


def test_a_valid_log_verifies_without_the_key_and_says_hmacs_were_not_checked(
    log: list[Path],
) -> None:
    report = verify_log(log[0].parent, None)
    assert report.ok, report.problem
    assert report.records == 13
    assert not report.hmac_checked
    assert report.notes == ["HMACs not checked (no key)"]


def test_a_log_sealed_at_shutdown_has_no_open_segment(tmp_path: Path) -> None:
    write_log(tmp_path, [5, 5, 3], key=KEY, seal_last=True)
    report = verify_log(tmp_path, KEY)
    assert report.ok, report.problem
    assert report.open_segment is None
    assert report.last_seq == 13


def test_an_empty_sealed_segment_continues_the_chain(tmp_path: Path) -> None:
    # A gateway that crashed right after rotating seals an empty segment at its next start.
    write_log(tmp_path, [5, 0, 3], key=KEY)
    report = verify_log(tmp_path, KEY)
    assert report.ok, report.problem
    assert (report.records, report.segments) == (8, 3)


def test_files_not_named_like_segments_are_ignored(log: list[Path]) -> None:
    directory = log[0].parent
    (directory / "notes.txt").write_text("not a segment\n")
    (directory / "audit-1-20261125T195000Z.jsonl").write_text("not a segment either\n")
    (directory / (log[1].name + ".bak")).write_bytes(log[1].read_bytes())
    report = verify_log(directory, KEY)
    assert report.ok, report.problem
    assert report.segments == 3


def test_a_tombstoned_personal_still_verifies(log: list[Path]) -> None:
    edit_line(log[1], 2, set_field("personal", tombstone("2026-12-01T00:00:00.000Z")))
    report = verify_log(log[0].parent, KEY)
    assert report.ok, report.problem


def test_seals_without_an_hmac_fail_when_a_key_is_given(tmp_path: Path) -> None:
    paths = write_log(tmp_path, [5, 5, 3], key=None)
    assert verify_log(tmp_path, None).ok
    assert_failed(verify_log(tmp_path, KEY), paths[0], 6, None, "seal not authenticated")


# Edited records


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("status", 500),
        ("tenant", "someone-else"),
        ("usage", {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}),
    ],
)
def test_an_edited_committed_field_breaks_the_next_records_prev(
    log: list[Path], name: str, value: Any
) -> None:
    edit_line(log[1], 2, set_field(name, value))  # seq 7
    report = verify_log(log[0].parent, KEY)
    assert_failed(report, log[1], 3, 8, "prev does not match the digest of seq 7")
    assert report.last_seq == 7


def test_an_edited_last_record_of_a_sealed_segment_fails_its_seals_last_digest(
    log: list[Path],
) -> None:
    edit_line(log[0], 5, set_field("status", 429))  # seq 5, the last before A's seal
    assert_failed(verify_log(log[0].parent, KEY), log[0], 6, None, "seal says last_digest")


def test_edited_personal_content_fails_its_commitment(log: list[Path]) -> None:
    def change(entry: Entry) -> None:
        entry["personal"]["user"] = "someone-else"

    edit_line(log[0], 3, change)
    assert_failed(verify_log(log[0].parent, KEY), log[0], 3, 3, "personal_sha256 does not match")


# Deleted, reordered and appended records


def test_a_deleted_record_breaks_seq(log: list[Path]) -> None:
    entries = read_lines(log[1])
    write_lines(log[1], entries[:1] + entries[2:])  # seq 7 gone
    assert_failed(verify_log(log[0].parent, KEY), log[1], 2, 8, "expected seq 7 here")


def test_reordered_records_break_seq(log: list[Path]) -> None:
    entries = read_lines(log[1])
    entries[1], entries[2] = entries[2], entries[1]  # seq 8 before seq 7
    write_lines(log[1], entries)
    assert_failed(verify_log(log[0].parent, KEY), log[1], 2, 8, "expected seq 7 here")


def test_a_record_appended_after_a_seal_is_detected(log: list[Path]) -> None:
    last_record = read_lines(log[0])[4]
    with log[0].open("ab") as segment:
        segment.write(continuing_record(last_record))
    assert_failed(verify_log(log[0].parent, KEY), log[0], 7, None, "a line after the seal")


# Truncated segments


def test_a_sealed_segment_truncated_under_its_seal_fails_the_seals_counts(
    log: list[Path],
) -> None:
    entries = read_lines(log[0])
    write_lines(log[0], entries[:3] + entries[-1:])  # seq 4 and 5 gone, the seal kept
    assert_failed(verify_log(log[0].parent, KEY), log[0], 4, None, "seal says last_seq 5")


def test_a_sealed_segment_truncated_with_its_seal_is_unsealed(log: list[Path]) -> None:
    write_lines(log[0], read_lines(log[0])[:-1])
    assert_failed(verify_log(log[0].parent, KEY), log[0], 5, 5, "ends without a seal")


def test_a_partial_last_line_of_the_open_segment_is_a_write_in_progress(
    log: list[Path],
) -> None:
    with log[2].open("ab") as segment:
        segment.write(b'{"v":1,"ts":"2026-11-25T19:5')  # a batch half written, or a crash
    report = verify_log(log[0].parent, KEY)
    assert report.ok and report.last_seq == 13
    assert any("incomplete last line" in note for note in report.notes)


def test_a_cut_line_inside_a_sealed_segment_is_damage(log: list[Path]) -> None:
    raw = log[0].read_bytes().splitlines(keepends=True)
    log[0].write_bytes(b"".join([*raw[:2], raw[2][:20] + b"\n", *raw[3:]]))
    assert_failed(verify_log(log[0].parent, KEY), log[0], 3, None, "not valid JSON")


@pytest.mark.parametrize(
    ("line", "what"), [(b"not json\n", "not valid JSON"), (b"[1, 2]\n", "not a JSON object")]
)
def test_a_line_that_is_not_a_json_object_is_damage(
    log: list[Path], line: bytes, what: str
) -> None:
    lines = log[1].read_bytes().splitlines(keepends=True)
    lines[2] = line
    log[1].write_bytes(b"".join(lines))
    assert_failed(verify_log(log[0].parent, KEY), log[1], 3, None, what)


# Whole segments swapped, deleted or forged


@pytest.mark.parametrize(
    ("first", "second", "line", "seq", "what"),
    [
        (0, 1, 1, 6, "the file name says the segment starts at seq 1"),
        (1, 2, 1, 11, "expected seq 6 here"),
    ],
)
def test_swapped_segments_break_the_chain_at_the_boundary(
    log: list[Path], first: int, second: int, line: int, seq: int, what: str
) -> None:
    contents = log[first].read_bytes(), log[second].read_bytes()
    log[first].write_bytes(contents[1])
    log[second].write_bytes(contents[0])
    assert_failed(verify_log(log[0].parent, KEY), log[first], line, seq, what)


def test_a_deleted_middle_segment_leaves_a_gap(log: list[Path]) -> None:
    log[1].unlink()
    assert_failed(verify_log(log[0].parent, KEY), log[2], 1, 11, "expected seq 6 here")


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("segment", segment_name(STARTED, 1)),
        ("first_seq", 7),
        ("last_seq", 9),
        ("records", 4),
        ("first_prev", "1" * 64),
        ("last_digest", "2" * 64),
    ],
)
def test_an_edited_seal_field_is_detected_without_the_key(
    tmp_path: Path, name: str, value: Any
) -> None:
    paths = write_log(tmp_path, [5, 5, 3], key=None)
    edit_line(paths[1], 6, set_field(name, value))
    assert_failed(verify_log(tmp_path, None), paths[1], 6, None, f"seal says {name}")


def test_a_recomputed_chain_is_caught_only_by_the_seals_hmac(log: list[Path]) -> None:
    edit_line(log[0], 3, set_field("status", 500))
    rechain(log, key=b"the forger's guess")
    assert verify_log(log[0].parent, None).ok  # consistent: only the key can tell
    assert verify_log(log[0].parent, b"the forger's guess").ok
    assert_failed(verify_log(log[0].parent, KEY), log[0], 6, None, "hmac does not match")


# Retention: segments removed from the start


def test_oldest_segments_removed_still_verify_with_a_note(log: list[Path]) -> None:
    log[0].unlink()
    report = verify_log(log[1].parent, KEY)
    assert report.ok, report.problem
    assert (report.records, report.segments, report.last_seq) == (8, 2, 13)
    assert len(report.notes) == 1
    assert "records before seq 6 are not here" in report.notes[0]


def test_records_cut_from_the_start_of_the_oldest_segment_fail_its_seals_first_prev(
    log: list[Path],
) -> None:
    entries = read_lines(log[0])
    log[0].unlink()
    renamed = log[0].with_name(segment_name(STARTED, 3))  # as if it had started at seq 3
    write_lines(renamed, entries[2:])
    assert_failed(verify_log(renamed.parent, KEY), renamed, 1, 3, "its seal's first_prev")


def test_an_open_oldest_segment_cannot_start_after_seq_1(log: list[Path]) -> None:
    log[0].unlink()
    log[1].unlink()
    assert_failed(verify_log(log[2].parent, KEY), log[2], 1, 11, "no seal to anchor it")


# Lines that are neither records nor seals, and names that disagree with their contents


@pytest.mark.parametrize(
    ("name", "value", "what"),
    [("type", "heartbeat", "unknown line type"), ("seq", "7", "no integer seq")],
)
def test_a_line_that_is_no_record_is_detected(
    log: list[Path], name: str, value: Any, what: str
) -> None:
    edit_line(log[1], 2, set_field(name, value))
    assert_failed(verify_log(log[0].parent, KEY), log[1], 2, None, what)


def test_an_empty_open_segment_must_be_named_for_the_next_seq(tmp_path: Path) -> None:
    write_log(tmp_path, [5, 5], key=KEY, seal_last=True)
    misnamed = tmp_path / segment_name(STARTED.replace(hour=23), 99)
    misnamed.touch()
    assert_failed(verify_log(tmp_path, KEY), misnamed, None, None, "starts at seq 99")


def test_an_empty_sealed_segment_must_be_named_for_the_next_seq(tmp_path: Path) -> None:
    paths = write_log(tmp_path, [5, 0, 3], key=None)
    misnamed = paths[1].with_name(segment_name(STARTED.replace(minute=51), 5))
    paths[1].rename(misnamed)
    edit_line(misnamed, 1, set_field("segment", misnamed.name))
    assert_failed(verify_log(tmp_path, None), misnamed, 1, None, "starts at seq 5")
