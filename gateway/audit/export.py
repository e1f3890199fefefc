"""Exporting audit records: selecting them by time, tenant and model, and writing jsonl, csv or
parquet one record (or one bounded batch) at a time, so memory stays flat however long the log.
"""

from __future__ import annotations

import csv
import importlib.util
import os
import sys
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import IO, Any, Literal

import orjson

from gateway.audit.segment_files import Line

Format = Literal["jsonl", "csv", "parquet"]
FORMATS: tuple[Format, ...] = ("jsonl", "csv", "parquet")
Kind = Literal["int", "float", "bool", "str", "time", "json"]
PARQUET_BATCH_ROWS = 10_000
PARQUET_MISSING = "parquet export needs pyarrow: pip install 'sluicegate[parquet]'"

# The flat columns of csv and parquet, in order: a dotted name reads a nested field.
COLUMNS: tuple[tuple[str, Kind], ...] = (
    ("seq", "int"),
    ("ts", "time"),
    ("kind", "str"),
    ("request_id", "str"),
    ("method", "str"),
    ("path", "str"),
    ("tenant", "str"),
    ("key_id", "str"),
    ("model", "str"),
    ("route.backend", "str"),
    ("route.upstream_model", "str"),
    ("arm", "str"),
    ("experiment", "str"),
    ("stream", "bool"),
    ("status", "int"),
    ("outcome", "str"),
    ("error.type", "str"),
    ("error.code", "str"),
    ("ratelimit", "str"),
    ("usage.prompt_tokens", "int"),
    ("usage.completion_tokens", "int"),
    ("usage.total_tokens", "int"),
    ("latency_ms", "float"),
    ("ttft_ms", "float"),
    ("score", "float"),
    ("label", "str"),
    ("personal_sha256", "str"),
    ("personal", "json"),
)
COLUMN_NAMES = [name for name, _ in COLUMNS]
_PATHS = tuple((tuple(name.split(".")), kind) for name, kind in COLUMNS)


class ExportError(Exception):
    """The export cannot go on; the message says which record and why."""


def parse_time(text: str) -> datetime:
    """An RFC 3339 time or a `YYYY-MM-DD` date (midnight at its start), as an aware UTC time.

    A time without an offset is taken as UTC, like everything else in the log.
    """
    try:
        if len(text) == 10:
            return datetime.combine(date.fromisoformat(text), datetime.min.time(), UTC)
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"{text!r} is neither an RFC 3339 time nor a YYYY-MM-DD date") from None
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


@dataclass(frozen=True, slots=True)
class RecordFilter:
    """Which records to export: `since <= ts < until` (a half-open interval), tenant, model."""

    since: datetime | None = None
    until: datetime | None = None
    tenant: str | None = None
    model: str | None = None

    def matches(self, record: dict[str, Any]) -> bool:
        if self.tenant is not None and record.get("tenant") != self.tenant:
            return False
        if self.model is not None and record.get("model") != self.model:
            return False
        if self.since is None and self.until is None:
            return True
        at = record_time(record)
        return (self.since is None or at >= self.since) and (self.until is None or at < self.until)


def record_time(record: dict[str, Any]) -> datetime:
    ts = record.get("ts")
    if isinstance(ts, str):
        try:
            return parse_time(ts)
        except ValueError:
            pass
    raise ExportError(f"record seq {record.get('seq')}: ts {ts!r} is not an RFC 3339 time")


def select(lines: Iterable[Line], where: RecordFilter) -> Iterator[Line]:
    return (line for line in lines if where.matches(line.value))


def field(record: dict[str, Any], path: tuple[str, ...]) -> Any:
    """A nested value (`("usage", "total_tokens")`); None where any part is missing or null."""
    value: Any = record
    for part in path:
        value = value.get(part) if isinstance(value, dict) else None
    return value


def csv_cell(value: Any, kind: Kind) -> str:
    """Null is an empty cell; booleans are `true`/`false`; `personal` is its JSON text."""
    if value is None:
        return ""
    if kind == "bool":
        return "true" if value else "false"
    if kind == "json" or not isinstance(value, str | int | float):
        return orjson.dumps(value).decode()
    return str(value)


def parquet_cell(value: Any, kind: Kind) -> Any:
    if value is None:
        return None
    if kind == "time":
        return record_time({"ts": value})
    if kind == "json" or (kind == "str" and not isinstance(value, str)):
        return orjson.dumps(value).decode()
    return value


def write_jsonl(lines: Iterable[Line], out: IO[bytes]) -> int:
    """Each record exactly as stored, one per line."""
    count = 0
    for line in lines:
        out.write(line.raw)
        count += 1
    return count


def write_csv(lines: Iterable[Line], out: IO[str]) -> int:
    writer = csv.writer(out)
    writer.writerow(COLUMN_NAMES)
    count = 0
    for line in lines:
        writer.writerow([csv_cell(field(line.value, path), kind) for path, kind in _PATHS])
        count += 1
    return count


def parquet_available() -> bool:
    return importlib.util.find_spec("pyarrow") is not None


def parquet_schema() -> Any:
    import pyarrow as pa

    types = {
        "int": pa.int64(),
        "float": pa.float64(),
        "bool": pa.bool_(),
        "str": pa.string(),
        "time": pa.timestamp("ms", tz="UTC"),
        "json": pa.string(),
    }
    return pa.schema([(name, types[kind]) for name, kind in COLUMNS])


def write_parquet(lines: Iterable[Line], path: Path, batch_rows: int = PARQUET_BATCH_ROWS) -> int:
    """Row groups of `batch_rows` records; a batch is held as columns of plain values, so memory
    is bounded by one batch, not by the log."""
    import pyarrow.parquet as pq

    schema = parquet_schema()
    count = 0
    with pq.ParquetWriter(path, schema) as writer:
        columns = _empty_columns()
        for line in lines:
            for column, (path_in_record, kind) in zip(columns, _PATHS, strict=True):
                column.append(parquet_cell(field(line.value, path_in_record), kind))
            count += 1
            if count % batch_rows == 0:
                writer.write_batch(_record_batch(columns, schema), row_group_size=batch_rows)
                columns = _empty_columns()
        if columns[0]:
            writer.write_batch(_record_batch(columns, schema), row_group_size=batch_rows)
    return count


def _empty_columns() -> list[list[Any]]:
    return [[] for _ in COLUMNS]


def _record_batch(columns: list[list[Any]], schema: Any) -> Any:
    import pyarrow as pa

    try:
        return pa.RecordBatch.from_pydict(dict(zip(COLUMN_NAMES, columns, strict=True)), schema)
    except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
        seqs = columns[0]
        raise ExportError(
            f"records seq {seqs[0]}..{seqs[-1]} do not fit the columns: {exc}"
        ) from None


@contextmanager
def replacing(out: Path) -> Iterator[Path]:
    """A temporary path beside `out` that becomes `out` only if the block succeeds, so a failed
    export never leaves a file that looks complete."""
    fd, name = tempfile.mkstemp(dir=out.parent, prefix=f".{out.name}.", suffix=".part")
    os.close(fd)
    temporary = Path(name)
    try:
        yield temporary
        os.replace(temporary, out)
    finally:
        temporary.unlink(missing_ok=True)


def export(lines: Iterable[Line], fmt: Format, out: Path | None) -> int:
    """Write `lines` as `fmt` to the file `out` (replaced when done) or, for jsonl and csv, to
    stdout; returns how many records were written."""
    if out is None:
        return _write_stream(lines, fmt)
    with replacing(out) as temporary:
        return _write_file(lines, fmt, temporary)


def _write_file(lines: Iterable[Line], fmt: Format, path: Path) -> int:
    if fmt == "parquet":
        return write_parquet(lines, path)
    if fmt == "csv":
        with path.open("w", newline="", encoding="utf-8") as text:
            return write_csv(lines, text)
    with path.open("wb") as binary:
        return write_jsonl(lines, binary)


def _write_stream(lines: Iterable[Line], fmt: Format) -> int:
    if fmt == "jsonl":
        count = write_jsonl(lines, sys.stdout.buffer)
        sys.stdout.buffer.flush()
    elif fmt == "csv":
        count = write_csv(lines, sys.stdout)
        sys.stdout.flush()
    else:
        raise ExportError(f"{fmt} export needs a file: pass --out")
    return count
