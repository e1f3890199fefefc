"""`sluice audit export`: every format round-trips, filters select, memory stays flat."""

from __future__ import annotations

import csv
import io
import sys
import tracemalloc
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest

from gateway.audit import export_commands
from gateway.audit.export import (
    COLUMNS,
    RecordFilter,
    export,
    parse_time,
    select,
    write_parquet,
)
from gateway.audit.segment import Chain
from gateway.audit.segment_files import read_records
from gateway.cli import main
from tests.support.audit_export_logs import (
    make_record,
    minutes,
    record_lines,
    write_log,
    write_segment,
)

pa = pytest.importorskip("pyarrow")
pq = pytest.importorskip("pyarrow.parquet")


def sluice_audit(*argv: str) -> int:
    """`sluice audit ...` through the real command line."""
    return main(["audit", *argv])


@pytest.fixture
def log(tmp_path: Path) -> tuple[Path, list[dict[str, Any]]]:
    """Three segments, the last one open with a half-written line at its end."""
    segments = [
        [make_record(minutes(0)), make_record(minutes(1), tenant="beta", user="bob")],
        [
            make_record(minutes(60 * 24), model="gpt-long", stream=True, ttft_ms=7.5),
            make_record(
                minutes(60 * 24 + 1),
                tenant=None,
                model=None,
                status=401,
                outcome="error",
                error={"type": "authentication_error", "code": "invalid_api_key"},
                ratelimit=None,
                usage=None,
            ),
        ],
        [make_record(minutes(60 * 48), tenant="beta", model="gpt-long")],
    ]
    paths = write_log(tmp_path, segments, open_last=True)
    with paths[-1].open("ab") as file:
        file.write(b'{"v":1,"seq":6,"ts":"2026-11-2')
    return tmp_path, [record for segment in segments for record in segment]


def from_csv(cell: str, kind: str) -> Any:
    if cell == "":
        return None
    converters: dict[str, Any] = {
        "int": int,
        "float": float,
        "bool": lambda text: {"true": True, "false": False}[text],
        "json": orjson.loads,
    }
    return converters.get(kind, str)(cell)


def flat(record: dict[str, Any]) -> dict[str, Any]:
    """The record as the flat columns, computed independently of the exporter."""
    row: dict[str, Any] = {}
    for name, _ in COLUMNS:
        head, _, tail = name.partition(".")
        value = record.get(head)
        row[name] = (value or {}).get(tail) if tail else value
    return row


def test_jsonl_export_is_every_record_exactly_as_stored(log, tmp_path: Path) -> None:
    directory, records = log
    out = tmp_path / "out" / "all.jsonl"
    out.parent.mkdir()
    assert (
        sluice_audit("export", "--format", "jsonl", "--dir", str(directory), "--out", str(out)) == 0
    )
    exported = out.read_bytes()
    assert exported == b"".join(record_lines(directory))
    assert [orjson.loads(line) for line in exported.splitlines()] == records
    assert list(out.parent.iterdir()) == [out]  # no temporary file left behind


def test_jsonl_export_to_stdout(log, capsysbinary) -> None:
    directory, records = log
    assert sluice_audit("export", "--format", "jsonl", "--dir", str(directory)) == 0
    captured = capsysbinary.readouterr()
    assert [orjson.loads(line) for line in captured.out.splitlines()] == records
    assert b"5 records exported" in captured.err


def test_csv_export_parses_back_to_the_flat_values(log, tmp_path: Path) -> None:
    directory, records = log
    out = tmp_path / "all.csv"
    assert (
        sluice_audit("export", "--format", "csv", "--dir", str(directory), "--out", str(out)) == 0
    )
    with out.open(newline="", encoding="utf-8") as file:
        rows = list(csv.DictReader(file))
    assert list(rows[0]) == [name for name, _ in COLUMNS]
    parsed = [{name: from_csv(row[name], kind) for name, kind in COLUMNS} for row in rows]
    assert parsed == [flat(record) for record in records]


def test_csv_export_to_stdout(log, capsys) -> None:
    directory, _ = log
    assert (
        sluice_audit("export", "--format", "csv", "--dir", str(directory), "--tenant", "beta") == 0
    )
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert [int(row["seq"]) for row in rows] == [2, 5]


def test_parquet_export_reads_back_equal(log, tmp_path: Path) -> None:
    directory, records = log
    out = tmp_path / "all.parquet"
    assert (
        sluice_audit("export", "--format", "parquet", "--dir", str(directory), "--out", str(out))
        == 0
    )
    table = pq.read_table(out)
    assert table.column_names == [name for name, _ in COLUMNS]
    assert table.schema.field("ts").type == pa.timestamp("ms", tz="UTC")
    expected = []
    for record in records:
        row = flat(record)
        row["ts"] = datetime.fromisoformat(record["ts"])
        row["personal"] = orjson.dumps(record["personal"]).decode()
        expected.append(row)
    assert table.to_pylist() == expected


def test_parquet_is_written_in_row_groups_of_the_batch_size(log, tmp_path: Path) -> None:
    directory, _ = log
    out = tmp_path / "small-groups.parquet"
    assert write_parquet(read_records(directory), out, batch_rows=2) == 5
    assert pq.ParquetFile(out).metadata.num_row_groups == 3


def test_parquet_export_of_nothing_is_an_empty_table(log, tmp_path: Path) -> None:
    directory, _ = log
    out = tmp_path / "none.parquet"
    argv = ["--format", "parquet", "--dir", str(directory), "--out", str(out), "--tenant", "nobody"]
    assert sluice_audit("export", *argv) == 0
    assert pq.read_table(out).num_rows == 0


def test_parquet_without_pyarrow_says_how_to_install_it(log, tmp_path, monkeypatch, capsys) -> None:
    directory, _ = log
    monkeypatch.setitem(sys.modules, "pyarrow", None)  # what an environment without it imports
    out = tmp_path / "all.parquet"
    assert (
        sluice_audit("export", "--format", "parquet", "--dir", str(directory), "--out", str(out))
        == 2
    )
    assert (
        "parquet export needs pyarrow: pip install 'sluicegate[parquet]'" in capsys.readouterr().err
    )
    assert not out.exists()


def test_parquet_needs_an_output_file(log, capsys) -> None:
    directory, _ = log
    assert sluice_audit("export", "--format", "parquet", "--dir", str(directory)) == 2
    assert "--out" in capsys.readouterr().err


def exported_seqs(directory: Path, *argv: str, capsys: Any) -> list[int]:
    assert sluice_audit("export", "--format", "jsonl", "--dir", str(directory), *argv) == 0
    return [orjson.loads(line)["seq"] for line in capsys.readouterr().out.splitlines()]


def test_since_is_inclusive_and_until_exclusive(log, capsys) -> None:
    directory, _ = log
    window = ["--since", "2026-11-25T19:51:00.000Z", "--until", "2026-11-26T19:51:00Z"]
    assert exported_seqs(directory, *window, capsys=capsys) == [2, 3]


def test_dates_mean_midnight_utc_so_a_day_is_since_it_until_the_next(log, capsys) -> None:
    directory, _ = log
    assert exported_seqs(
        directory, "--since", "2026-11-26", "--until", "2026-11-27", capsys=capsys
    ) == [3, 4]
    assert exported_seqs(directory, "--until", "2026-11-26", capsys=capsys) == [1, 2]


def test_times_with_an_offset_are_compared_in_utc(log, capsys) -> None:
    directory, _ = log
    assert exported_seqs(directory, "--since", "2026-11-27T20:50:00+01:00", capsys=capsys) == [5]
    assert parse_time("2026-11-27T19:50:00") == datetime(2026, 11, 27, 19, 50, tzinfo=UTC)


def test_tenant_and_model_filters_combine(log, capsys) -> None:
    directory, _ = log
    assert exported_seqs(directory, "--tenant", "acme", capsys=capsys) == [1, 3]
    assert exported_seqs(directory, "--model", "gpt-long", capsys=capsys) == [3, 5]
    assert exported_seqs(directory, "--tenant", "beta", "--model", "gpt-long", capsys=capsys) == [5]


def test_a_time_that_is_not_one_is_a_usage_error(log, capsys) -> None:
    directory, _ = log
    assert (
        sluice_audit("export", "--format", "csv", "--dir", str(directory), "--since", "yesterday")
        == 2
    )
    assert (
        "'yesterday' is neither an RFC 3339 time nor a YYYY-MM-DD date" in capsys.readouterr().err
    )


def test_a_missing_directory_is_a_usage_error(tmp_path: Path, capsys) -> None:
    assert sluice_audit("export", "--format", "jsonl", "--dir", str(tmp_path / "nope")) == 2
    assert "no audit directory" in capsys.readouterr().err


def test_a_damaged_line_stops_the_export_and_names_it(log, tmp_path: Path, capsys) -> None:
    directory, _ = log
    first = sorted(directory.glob("audit-*.jsonl"))[0]
    first.write_bytes(first.read_bytes().replace(b'"v":1', b"garbage", 1))
    out = tmp_path / "x.jsonl"
    assert (
        sluice_audit("export", "--format", "jsonl", "--dir", str(directory), "--out", str(out)) == 1
    )
    assert f"{first}:1: not JSON" in capsys.readouterr().err
    assert not out.exists()


def test_progress_is_reported_on_stderr(log, monkeypatch, capsys) -> None:
    directory, _ = log
    monkeypatch.setattr(export_commands, "PROGRESS_EVERY", 2)
    assert sluice_audit("export", "--format", "jsonl", "--dir", str(directory)) == 0
    err = capsys.readouterr().err
    assert "2 records read" in err and "4 records read" in err


RECORDS_FOR_MEMORY = 200_000


@pytest.fixture(scope="module")
def long_log(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("long-log")
    chain = Chain()
    per_segment = RECORDS_FOR_MEMORY // 4
    for segment in range(4):
        start = segment * per_segment
        records = (make_record(minutes(i)) for i in range(start, start + per_segment))
        write_segment(directory, chain, records)
    return directory


def peak_traced_bytes(directory: Path, fmt: Any, out: Path) -> tuple[int, int]:
    where = RecordFilter(since=parse_time("2026-11-25"), tenant="acme")
    tracemalloc.start()
    try:
        count = export(select(read_records(directory), where), fmt, out)
        return count, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


@pytest.mark.parametrize("fmt", ["jsonl", "csv"])
def test_export_memory_stays_flat_however_long_the_log(long_log, tmp_path, fmt) -> None:
    log_bytes = sum(path.stat().st_size for path in long_log.iterdir())
    count, peak = peak_traced_bytes(long_log, fmt, tmp_path / f"all.{fmt}")
    assert count == RECORDS_FOR_MEMORY
    assert log_bytes > 50 * 2**20
    # Measured: about 30 KB (jsonl) and 170 KB (csv), the same for 20,000 records as 200,000.
    assert peak < 2**20, f"peak {peak} bytes while exporting {log_bytes} bytes"


def test_parquet_export_memory_is_one_batch_not_the_log(long_log, tmp_path) -> None:
    count, peak = peak_traced_bytes(long_log, "parquet", tmp_path / "all.parquet")
    assert count == RECORDS_FOR_MEMORY
    # One 10,000-row batch of plain values: about 11.5 MB traced, for 20,000 records as for
    # 200,000 (the log itself is over 100 MB).
    assert peak < 16 * 2**20, f"peak {peak} bytes"
