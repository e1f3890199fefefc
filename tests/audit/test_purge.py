"""`sluice audit purge`: personal data erased in place, everything else kept, the chain intact."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest

from gateway.audit.purge import purge
from gateway.cli import main
from tests.support.audit_export_logs import chain_problems, make_record, minutes, write_log

NOW = datetime(2026, 12, 1, 9, 30, 15, 250000, tzinfo=UTC)
TOMBSTONE = {"purged": True, "at": "2026-12-01T09:30:15.250Z"}


def sluice_audit(*argv: str) -> int:
    """`sluice audit ...` through the real command line."""
    return main(["audit", *argv])


@pytest.fixture
def log(tmp_path: Path) -> list[Path]:
    """Two sealed segments and the open one a running gateway would be appending to."""
    segments = [
        [
            make_record(minutes(0), tenant="acme", user="alice"),
            make_record(minutes(1), tenant="beta", user="bob"),
        ],
        [
            make_record(minutes(2), tenant="beta", user="alice"),
            make_record(minutes(3), tenant=None, user=None, status=401, outcome="error"),
        ],
        [make_record(minutes(4), tenant="acme", user="carol")],
    ]
    paths = write_log(tmp_path, segments, open_last=True)
    assert chain_problems(tmp_path) == []
    return paths


def lines_of(paths: list[Path]) -> list[list[bytes]]:
    return [path.read_bytes().splitlines(keepends=True) for path in paths]


def without_personal(line: bytes) -> dict[str, Any]:
    record = orjson.loads(line)
    record.pop("personal", None)
    return record


def assert_only_these_purged(before: list[list[bytes]], after: list[list[bytes]], seqs: set[int]):
    """Purged records: a tombstone, every other field as it was; all other lines byte for byte."""
    assert [len(segment) for segment in after] == [len(segment) for segment in before]
    for old_segment, new_segment in zip(before, after, strict=True):
        for old, new in zip(old_segment, new_segment, strict=True):
            seq = orjson.loads(old).get("seq")
            if seq not in seqs:
                assert new == old
                continue
            assert orjson.loads(new)["personal"] == TOMBSTONE
            assert without_personal(new) == without_personal(old)
            assert list(orjson.loads(new)) == list(orjson.loads(old))  # field order kept too


def test_purging_a_tenant_tombstones_its_records_and_keeps_the_chain(log) -> None:
    before = lines_of(log)
    done = purge(log[0].parent, tenant="acme", now=NOW)
    assert done.records == 1
    assert_only_these_purged(before, lines_of(log), {1})
    assert chain_problems(log[0].parent) == []


def test_purging_a_user_matches_personal_user_across_tenants(log) -> None:
    before = lines_of(log)
    assert purge(log[0].parent, user="alice", now=NOW).records == 2
    assert_only_these_purged(before, lines_of(log), {1, 3})
    assert chain_problems(log[0].parent) == []


def test_the_open_segment_is_skipped_unless_asked_for(log) -> None:
    open_segment = log[-1]
    before = open_segment.read_bytes()
    done = purge(log[0].parent, user="carol", now=NOW)
    assert (done.records, done.skipped_open) == (0, open_segment)
    assert open_segment.read_bytes() == before

    done = purge(log[0].parent, user="carol", now=NOW, include_open=True)
    assert (done.records, done.skipped_open) == (1, None)
    assert orjson.loads(open_segment.read_bytes())["personal"] == TOMBSTONE
    assert chain_problems(log[0].parent) == []


def test_a_half_written_last_line_survives_a_purge_of_the_open_segment(log) -> None:
    with log[-1].open("ab") as file:
        file.write(b'{"v":1,"seq":6,"ts":"2026-11-2')
    purge(log[0].parent, tenant="acme", now=NOW, include_open=True)
    assert log[-1].read_bytes().endswith(b'\n{"v":1,"seq":6,"ts":"2026-11-2')


def test_only_segments_with_a_match_are_rewritten_and_no_temporary_file_stays(log) -> None:
    inodes = [path.stat().st_ino for path in log]
    purge(log[0].parent, tenant="acme", now=NOW)
    after = [path.stat().st_ino for path in log]
    assert after[0] != inodes[0]  # replaced: same name, a new file
    assert after[1:] == inodes[1:]  # no match, and the open one is skipped
    assert sorted(p.name for p in log[0].parent.iterdir()) == sorted(p.name for p in log)


def test_a_rewritten_segment_keeps_its_permissions(log) -> None:
    log[0].chmod(0o640)
    purge(log[0].parent, tenant="acme", now=NOW)
    assert log[0].stat().st_mode & 0o777 == 0o640


def test_purging_again_changes_nothing(log) -> None:
    purge(log[0].parent, tenant="acme", now=NOW)
    before = lines_of(log)
    later = datetime(2027, 1, 1, tzinfo=UTC)
    assert purge(log[0].parent, tenant="acme", now=later).records == 0
    assert lines_of(log) == before  # the first erasure's time stays


def test_purge_refuses_to_run_without_a_tenant_or_a_user(log) -> None:
    with pytest.raises(ValueError, match="a tenant or a user"):
        purge(log[0].parent)
    with pytest.raises(SystemExit) as exited:
        sluice_audit("purge", "--dir", str(log[0].parent))
    assert exited.value.code == 2


def test_purge_command_says_what_it_did_and_what_it_skipped(log, capsys) -> None:
    assert sluice_audit("purge", "--tenant", "acme", "--dir", str(log[0].parent)) == 0
    out = capsys.readouterr().out
    assert "1 record of tenant acme purged" in out
    assert f"skipped the open segment {log[-1].name}" in out

    argv = ["purge", "--user", "carol", "--dir", str(log[0].parent), "--include-open"]
    assert sluice_audit(*argv) == 0
    out = capsys.readouterr().out
    assert "1 record of user carol purged" in out and "skipped" not in out
