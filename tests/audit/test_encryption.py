"""Encryption at rest: records are AES-GCM envelopes, the chain and seals still verify, and
verify, export and purge read them with the key (and say so plainly without it)."""

from __future__ import annotations

import base64
from pathlib import Path

import orjson
import pytest

from gateway.audit.chain import PURGED, personal_part
from gateway.audit.encryption import KeyProblem, Keyring, key_id, parse_key
from gateway.audit.purge import purge
from gateway.audit.segment_files import read_records
from gateway.audit.verify import verify_log
from gateway.audit.writer import AuditWriter
from gateway.cli import main
from gateway.config.audit import AuditConfig
from tests.support.audit_logs import write_log

HMAC = b"audit-enc-hmac"
KEY_A = bytes(range(32))
KEY_B = bytes(range(100, 132))
ENV = "SLUICE_AUDIT_ENC_KEY"


def b64(key: bytes) -> str:
    return base64.b64encode(key).decode()


def lines_of(path: Path) -> list[dict]:
    return [orjson.loads(line) for line in path.read_bytes().splitlines()]


def segments(directory: Path) -> list[Path]:
    return sorted(p for p in directory.iterdir() if p.name.startswith("audit-"))


def writer(directory: Path, keys: Keyring) -> AuditWriter:
    config = AuditConfig.model_validate(
        {"dir": str(directory), "fsync": "none", "encryption": {"key_env": "K"}},
        context={"env": {"K": b64(KEY_A)}},
    )
    return AuditWriter(config, HMAC, keys)


def record(n: int, tenant: str = "acme") -> dict:
    personal, digest = personal_part({"user": f"user-{n}", "client_ip": None, "content": None})
    return {
        "v": 1,
        "request_id": f"r{n}",
        "tenant": tenant,
        "personal_sha256": digest,
        "personal": personal,
    }


@pytest.fixture(autouse=True)
def no_default_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ENV, raising=False)
    monkeypatch.delenv("SLUICE_AUDIT_HMAC_KEY", raising=False)


def test_keys_are_read_as_hex_or_base64_and_must_be_256_bits() -> None:
    assert parse_key(KEY_A.hex()) == KEY_A
    assert parse_key(b64(KEY_A)) == KEY_A
    assert parse_key(b64(KEY_A).rstrip("=")) == KEY_A
    with pytest.raises(ValueError, match="128-bit key; AES-256-GCM needs 256 bits"):
        parse_key(b64(bytes(16)))
    with pytest.raises(ValueError, match="neither hex nor base64"):
        parse_key("not a key!")


async def test_a_written_log_is_encrypted_and_verifies_with_the_key(tmp_path: Path) -> None:
    audit = writer(tmp_path, Keyring([KEY_A]))
    await audit.start()
    for n in range(20):
        audit.submit(record(n))
    await audit.aclose()
    (segment,) = segments(tmp_path)
    assert b"user-3" not in segment.read_bytes()  # '-' is not in the base64 alphabet
    *envelopes, seal = lines_of(segment)
    assert [e["seq"] for e in envelopes] == list(range(1, 21))
    assert {e["kid"] for e in envelopes} == {key_id(KEY_A)}
    assert len({e["nonce"] for e in envelopes}) == 20  # a fresh nonce per record
    assert seal["type"] == "seal" and seal["records"] == 20

    report = verify_log(tmp_path, HMAC, Keyring([KEY_A]))
    assert report.ok, report.problem
    assert report.records == 20 and report.hmac_checked
    decrypted = [line.value for line in read_records(tmp_path, Keyring([KEY_A]))]
    assert [r["request_id"] for r in decrypted] == [f"r{n}" for n in range(20)]


def test_a_flipped_ciphertext_byte_is_named_by_verify(tmp_path: Path) -> None:
    paths = write_log(tmp_path, [4, 4], key=HMAC, keys=Keyring([KEY_A]))
    entries = lines_of(paths[1])
    ct = bytearray(base64.b64decode(entries[2]["ct"]))
    ct[5] ^= 0x01
    entries[2]["ct"] = base64.b64encode(bytes(ct)).decode()
    paths[1].write_bytes(b"".join(orjson.dumps(e) + b"\n" for e in entries))

    report = verify_log(tmp_path, HMAC, Keyring([KEY_A]))
    assert not report.ok
    assert report.problem == (
        f"{paths[1].name} line 3 (seq 7): record 7 of segment {paths[1].name} does not decrypt "
        f"with its key (id {key_id(KEY_A)}): its ciphertext, nonce or place in the log was altered"
    )
    assert report.last_seq == 6


def test_a_record_moved_to_another_segment_does_not_decrypt(tmp_path: Path) -> None:
    paths = write_log(tmp_path, [3, 3], key=HMAC, seal_last=True, keys=Keyring([KEY_A]))
    first, second = paths[0].read_bytes().splitlines(True), paths[1].read_bytes().splitlines(True)
    # The envelope keeps its seq; only the file it sits in changes.
    paths[1].write_bytes(b"".join([*second[:3], first[2], second[3]]))
    report = verify_log(tmp_path, HMAC, Keyring([KEY_A]))
    assert report.failure is not None and report.failure.line == 4
    assert "record 3 of segment" in report.problem and "does not decrypt" in report.problem


def test_verify_with_the_wrong_key_or_none_says_so_and_exits_2(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    paths = write_log(tmp_path, [3, 2], keys=Keyring([KEY_A]))
    assert main(["audit", "verify", "--dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert f"cannot decrypt record 1 of segment {paths[0].name}: the log is encrypted" in err

    monkeypatch.setenv(ENV, b64(KEY_B))
    assert main(["audit", "verify", "--dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert f"cannot decrypt record 1 of segment {paths[0].name}: wrong key?" in err
    assert key_id(KEY_A) in err and key_id(KEY_B) in err

    monkeypatch.setenv(ENV, b64(KEY_A))
    assert main(["audit", "verify", "--dir", str(tmp_path)]) == 0
    assert capsys.readouterr().out.startswith("OK: 5 records in 2 segments verified")


def test_verify_refuses_a_key_of_the_wrong_size(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    write_log(tmp_path, [2], keys=Keyring([KEY_A]))
    monkeypatch.setenv("SHORT_KEY", b64(bytes(24)))
    args = ["audit", "verify", "--dir", str(tmp_path), "--enc-key-env", "SHORT_KEY"]
    assert main(args) == 2
    assert "environment variable SHORT_KEY holds a 192-bit key" in capsys.readouterr().err


async def test_after_a_key_rotation_old_segments_read_with_the_old_key(tmp_path: Path) -> None:
    old = writer(tmp_path, Keyring([KEY_A]))
    await old.start()
    for n in range(3):
        old.submit(record(n))
    await old.aclose()
    rotated = writer(tmp_path, Keyring([KEY_B, KEY_A]))
    await rotated.start()
    for n in range(3, 6):
        rotated.submit(record(n))
    await rotated.aclose()

    first, second = segments(tmp_path)
    assert {e.get("kid") for e in lines_of(first)[:-1]} == {key_id(KEY_A)}
    assert {e.get("kid") for e in lines_of(second)[:-1]} == {key_id(KEY_B)}
    assert verify_log(tmp_path, HMAC, Keyring([KEY_B, KEY_A])).ok
    with pytest.raises(KeyProblem, match=rf"record 1 of segment {first.name}: wrong key\?"):
        verify_log(tmp_path, HMAC, Keyring([KEY_B]))


async def test_a_crash_in_an_encrypted_segment_is_recovered(tmp_path: Path) -> None:
    audit = writer(tmp_path, Keyring([KEY_A]))
    await audit.start()
    for n in range(4):
        audit.submit(record(n))
    await audit.written_out()
    (segment,) = segments(tmp_path)
    with open(segment, "ab") as handle:
        handle.write(b'{"v":1,"seq":5,"kid":"')  # the process died mid-write
    audit._task.cancel()  # type: ignore[union-attr]

    restarted = writer(tmp_path, Keyring([KEY_A]))
    await restarted.start()
    restarted.submit(record(5))
    await restarted.aclose()
    report = verify_log(tmp_path, HMAC, Keyring([KEY_A]))
    assert report.ok, report.problem
    assert report.records == 5 and report.segments == 2


def test_export_of_an_encrypted_log_writes_the_plaintext_records(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    directory = tmp_path / "audit"
    directory.mkdir()
    write_log(directory, [3, 2], keys=Keyring([KEY_A]))
    out = tmp_path / "out.jsonl"
    export = ["audit", "export", "--format", "jsonl", "--dir", str(directory), "--out", str(out)]
    assert main(export) == 2
    assert "cannot decrypt record 1 of segment" in capsys.readouterr().err
    assert not out.exists()

    monkeypatch.setenv(ENV, KEY_A.hex())
    assert main(export) == 0
    exported = [orjson.loads(line) for line in out.read_bytes().splitlines()]
    assert [r["seq"] for r in exported] == [1, 2, 3, 4, 5]
    assert all("ct" not in r and r["personal"]["user"].startswith("user-") for r in exported)

    csv_out = tmp_path / "out.csv"
    assert main([*export[:3], "csv", *export[4:-1], str(csv_out)]) == 0
    assert len(csv_out.read_text().splitlines()) == 6


def test_purge_of_an_encrypted_log_keeps_it_encrypted_and_verifying(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    paths = write_log(tmp_path, [3, 3], key=HMAC, seal_last=True, keys=Keyring([KEY_A]))
    before = lines_of(paths[0])
    with pytest.raises(KeyProblem, match="no key was given"):
        purge(tmp_path, user="user-2")

    monkeypatch.setenv(ENV, b64(KEY_A))
    assert main(["audit", "purge", "--user", "user-2", "--dir", str(tmp_path)]) == 0
    after = lines_of(paths[0])
    assert after[0] == before[0] and after[2] == before[2]  # other lines byte for byte
    assert after[1]["kid"] == before[1]["kid"] and after[1]["nonce"] != before[1]["nonce"]
    assert b"user-2" not in paths[0].read_bytes()
    report = verify_log(tmp_path, HMAC, Keyring([KEY_A]))
    assert report.ok, report.problem
    purged = [line.value for line in read_records(tmp_path, Keyring([KEY_A]))][1]
    assert purged["seq"] == 2 and purged["personal"][PURGED] is True
