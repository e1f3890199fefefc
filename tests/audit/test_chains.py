"""An audit directory written by `sluice serve --workers N`: one chain per worker subfolder.
verify checks and names each chain, export merges them by arrival time, purge and experiment
reports reach every chain, and one process at a time writes a folder."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import orjson
import pytest

from gateway.audit.chain import digest
from gateway.audit.chains import chain_dirs, read_log
from gateway.audit.export import RecordFilter
from gateway.audit.purge import purge
from gateway.audit.segment_log import SegmentLog
from gateway.audit.verify import verify_chains
from gateway.audit.writer import AuditWriter
from gateway.cli import main
from gateway.config.audit import AuditConfig
from gateway.experiments.records import read_experiment
from tests.experiments.synthetic import feedback_record, request_record
from tests.experiments.synthetic import write_log as write_experiment_log
from tests.support import audit_export_logs as export_logs
from tests.support.audit_logs import edit_line, read_lines, write_log
from tests.support.processes import REPO
from tests.support.servers import free_port

KEY = "audit-chains-key"


def sluice_audit(*argv: str) -> int:
    """`sluice audit ...` through the real command line."""
    return main(["audit", *argv])


@pytest.fixture
def workers_log(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, list[Path]]:
    """The audit dir of two workers: w0 with 5 records in 2 segments, w1 with 7 in 2."""
    monkeypatch.setenv("SLUICE_AUDIT_HMAC_KEY", KEY)
    chains = {"w0": [3, 2], "w1": [4, 3]}
    log = {}
    for name, segments in chains.items():
        (tmp_path / name).mkdir()
        log[name] = write_log(tmp_path / name, segments, key=KEY.encode())
    return log


def test_chains_are_the_own_segments_then_the_worker_folders_by_index(tmp_path: Path) -> None:
    assert [chain.name for chain in chain_dirs(tmp_path)] == ["."]  # empty: one empty chain
    for name in ("w10", "w2", "w0", "wx", "logs"):
        (tmp_path / name).mkdir()
    (tmp_path / "w3").write_text("a file, not a worker's folder")
    assert [chain.name for chain in chain_dirs(tmp_path)] == ["w0", "w2", "w10"]
    # Segments of a single process that ran before the workers: a chain of their own.
    write_log(tmp_path, [2])
    assert [chain.name for chain in chain_dirs(tmp_path)] == [".", "w0", "w2", "w10"]


def test_verify_checks_every_workers_chain_and_prints_each(
    workers_log: dict[str, list[Path]], capsys: pytest.CaptureFixture[str]
) -> None:
    root = workers_log["w0"][0].parent.parent
    assert sluice_audit("verify", "--dir", str(root)) == 0
    last = {name: digest(read_lines(paths[-1])[-1]) for name, paths in workers_log.items()}
    assert capsys.readouterr().out.splitlines() == [
        "OK: 2 chains, 12 records verified",
        f"w0: OK: 5 records in 2 segments verified, last seq 5, last digest {last['w0']}, "
        "HMAC checked",
        f"  open segment (not sealed yet): {workers_log['w0'][1].name}",
        f"w1: OK: 7 records in 2 segments verified, last seq 7, last digest {last['w1']}, "
        "HMAC checked",
        f"  open segment (not sealed yet): {workers_log['w1'][1].name}",
    ]


def test_verify_names_the_tampered_chain_and_record_and_still_checks_the_others(
    workers_log: dict[str, list[Path]], capsys: pytest.CaptureFixture[str]
) -> None:
    root = workers_log["w0"][0].parent.parent
    tampered = workers_log["w1"][0]
    edit_line(tampered, 2, lambda record: record.update(status=500))

    assert sluice_audit("verify", "--dir", str(root)) == 1
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "TAMPERED: 1 of 2 chains (w1)"
    assert out[1].startswith("w0: OK: 5 records in 2 segments verified")
    assert (
        f"w1: TAMPERED: {tampered.name} line 3 (seq 3): prev does not match the digest of seq 2"
        in out
    )
    assert any(line.startswith("  chain consistent up to seq 2, digest ") for line in out)

    reports = {chain.name: report for chain, report in verify_chains(root, KEY.encode())}
    assert reports["w0"].ok and reports["w0"].records == 5
    assert not reports["w1"].ok and reports["w1"].failure is not None
    assert (reports["w1"].failure.file, reports["w1"].failure.seq) == (tampered.name, 3)


def test_export_merges_the_chains_by_arrival_time_and_keeps_each_line_as_stored(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Worker 0 served the requests of even minutes, worker 1 the odd ones.
    for worker in (0, 1):
        (tmp_path / f"w{worker}").mkdir()
        records = [
            export_logs.make_record(export_logs.minutes(n), tenant="acme" if n < 4 else "beta")
            for n in range(worker, 8, 2)
        ]
        export_logs.write_log(tmp_path / f"w{worker}", [records[:2], records[2:]], open_last=True)
    stored = {line for w in (0, 1) for line in export_logs.record_lines(tmp_path / f"w{w}")}

    assert sluice_audit("export", "--format", "jsonl", "--dir", str(tmp_path)) == 0
    lines = capsys.readouterr().out.encode().splitlines(keepends=True)
    assert [orjson.loads(line)["ts"] for line in lines] == [
        export_logs.rfc3339(export_logs.minutes(n)) for n in range(8)
    ]
    assert set(lines) == stored  # byte for byte, each still verifiable against its chain
    # Each chain's own seq numbers: which chain a line came from shows in its seq and prev.
    assert [orjson.loads(line)["seq"] for line in lines] == [1, 1, 2, 2, 3, 3, 4, 4]

    argv = ["export", "--format", "csv", "--dir", str(tmp_path), "--tenant", "beta"]
    assert sluice_audit(*argv, "--since", export_logs.rfc3339(export_logs.minutes(5))) == 0
    rows = capsys.readouterr().out.splitlines()
    assert len(rows) == 1 + 3  # header, minutes 5, 6 and 7


def test_a_merged_export_names_a_record_whose_time_cannot_be_ordered(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for worker in (0, 1):
        (tmp_path / f"w{worker}").mkdir()
        records = [export_logs.make_record(export_logs.minutes(n)) for n in (worker, worker + 2)]
        if worker == 1:
            records[1]["ts"] = "yesterday"
        export_logs.write_log(tmp_path / f"w{worker}", [records])
    assert sluice_audit("export", "--format", "jsonl", "--dir", str(tmp_path)) == 1
    err = capsys.readouterr().err
    assert f"{tmp_path / 'w1'}/audit-" in err
    assert ".jsonl:2: ts 'yesterday' is not an RFC 3339 time" in err


def test_purging_a_user_reaches_feedback_another_worker_recorded(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    at, record = export_logs.minutes, export_logs.make_record
    request = record(at(0), user="alice", request_id="req-1")
    feedback = record(at(2), user=None, kind="feedback", request_id="req-1", score=1)
    chains = {
        "w0": [[request, record(at(1), user="bob")], [record(at(3), user="carol")]],
        "w1": [[feedback], [record(at(4), user="dave")]],
    }
    for name, segments in chains.items():
        (tmp_path / name).mkdir()
        export_logs.write_log(tmp_path / name, segments, open_last=True)

    assert sluice_audit("purge", "--user", "alice", "--dir", str(tmp_path)) == 0
    out = capsys.readouterr().out
    assert "2 records of user alice purged" in out
    for worker in ("w0", "w1"):
        assert export_logs.chain_problems(tmp_path / worker) == []
        assert f"skipped the open segment {worker}/audit-" in out
    purged = [
        orjson.loads(line)
        for w in ("w0", "w1")
        for line in export_logs.record_lines(tmp_path / w)
        if orjson.loads(line)["personal"].get("purged")
    ]
    assert sorted((r.get("kind", "request"), r["request_id"]) for r in purged) == [
        ("feedback", "req-1"),
        ("request", "req-1"),
    ]
    done = purge(tmp_path, tenant="acme", include_open=True)
    assert done.records == 3 and done.skipped == ()


def test_an_experiment_report_reads_every_chain(tmp_path: Path) -> None:
    """Requests on both workers, and feedback that reached the other worker."""
    (tmp_path / "w0").mkdir()
    (tmp_path / "w1").mkdir()
    w0 = [
        request_record(n, "control" if n % 2 else "treatment", 100.0 + n) for n in range(0, 20, 2)
    ]
    w1 = [
        request_record(n, "control" if n % 2 else "treatment", 100.0 + n) for n in range(1, 20, 2)
    ]
    w1 += [feedback_record(20 + n, f"req-{n:07d}", 0.5) for n in range(0, 20, 2)]
    write_experiment_log(tmp_path / "w0", w0)
    write_experiment_log(tmp_path / "w1", w1)

    samples = read_experiment(tmp_path, "checkout", RecordFilter())
    assert samples.requests == 20
    assert {name: arm.requests for name, arm in samples.arms.items()} == {
        "treatment": 10,
        "control": 10,
    }
    assert samples.feedback_read == samples.feedback_matched == 10
    assert len(samples.arms["treatment"].feedback) == 10


async def test_each_worker_writes_and_spills_to_its_own_folder(tmp_path: Path) -> None:
    """With the Redis sink down, every worker's records spill to its own chain."""
    config = AuditConfig.model_validate(
        {
            "dir": str(tmp_path),
            "fsync": "none",
            "flush_interval_ms": 1,
            "sink": "redis_stream",
            "redis": {"url": f"redis://127.0.0.1:{free_port()}/0", "timeout_ms": 200},
        }
    )
    writers = [AuditWriter(config, KEY.encode()) for _ in range(2)]
    for index, writer in enumerate(writers):
        writer.write_as_worker(index)
        await writer.start()
    for n in range(30):
        writers[n % 2].submit(export_logs.make_record(export_logs.minutes(n)))
    for writer in writers:
        await writer.aclose()

    assert [writer.spilled for writer in writers] == [15, 15]
    assert sorted(path.name for path in tmp_path.iterdir()) == ["w0", "w1"]
    reports = verify_chains(tmp_path, KEY.encode())
    assert [(chain.name, report.ok, report.records) for chain, report in reports] == [
        ("w0", True, 15),
        ("w1", True, 15),
    ]
    merged = [line.value["ts"] for line in read_log(tmp_path)]
    assert merged == [export_logs.rfc3339(export_logs.minutes(n)) for n in range(30)]


SECOND_WRITER = textwrap.dedent(
    """
    import sys
    from gateway.audit.folder_lock import FolderBusy
    from gateway.audit.segment_log import SegmentLog
    from gateway.config.audit import AuditConfig

    log = SegmentLog(AuditConfig(dir=sys.argv[1]), None, None)
    try:
        log.start()
    except FolderBusy as exc:
        print(exc)
        sys.exit(3)
    log.close()
    print("started")
    """
)


def second_writer(directory: Path) -> subprocess.CompletedProcess[str]:
    """Another process opening the same folder for writing."""
    return subprocess.run(
        [sys.executable, "-c", SECOND_WRITER, str(directory)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=30,
    )


def test_a_second_process_cannot_write_a_folder_that_is_being_written(tmp_path: Path) -> None:
    first = SegmentLog(AuditConfig(dir=str(tmp_path), fsync="none"), None, None)
    first.start()
    first.append([export_logs.make_record(export_logs.minutes(0))])
    try:
        refused = second_writer(tmp_path)
    finally:
        first.close()
    assert refused.returncode == 3, refused.stderr
    assert refused.stdout.startswith(
        f"another process is writing the audit log in {tmp_path}: one folder takes one writer"
    )
    # The first writer's segment was neither sealed nor touched by the refused one.
    assert export_logs.chain_problems(tmp_path) == []
    assert [path.name for path in tmp_path.iterdir() if path.name.startswith("audit-")]

    started = second_writer(tmp_path)  # the folder is free again: nothing left behind
    assert (started.returncode, started.stdout.strip()) == (0, "started")
    assert verify_chains(tmp_path, None)[0][1].ok
