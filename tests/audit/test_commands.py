"""`sluice audit verify` through its argparse registration: the summary, the key's source and
the exit codes (0 verified, 1 tampered or damaged, 2 usage)."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.audit.chain import digest
from gateway.cli import main
from tests.support.audit_logs import edit_line, read_lines, write_log

KEY = "audit-cli-key"


def sluice(*argv: str) -> int:
    """`sluice ...` through the real command line."""
    return main(list(argv))


@pytest.fixture
def log(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    monkeypatch.delenv("SLUICE_AUDIT_HMAC_KEY", raising=False)
    directory = tmp_path / "audit"
    directory.mkdir()
    return write_log(directory, [5, 5, 3], key=KEY.encode())


def test_verify_prints_ok_with_the_anchor_and_exits_0(
    log: list[Path], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("SLUICE_AUDIT_HMAC_KEY", KEY)
    assert sluice("audit", "verify", "--dir", str(log[0].parent)) == 0
    last = digest(read_lines(log[2])[-1])
    assert capsys.readouterr().out.splitlines() == [
        f"OK: 13 records in 3 segments verified, last seq 13, last digest {last}, HMAC checked",
        f"open segment (not sealed yet): {log[2].name}",
    ]


def test_verify_reads_the_key_from_the_env_var_named_by_key_env(
    log: list[Path], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("OTHER_AUDIT_KEY", KEY)
    monkeypatch.setenv("SLUICE_AUDIT_HMAC_KEY", "not the key")
    code = sluice("audit", "verify", "--dir", str(log[0].parent), "--key-env", "OTHER_AUDIT_KEY")
    assert code == 0
    assert "HMAC checked" in capsys.readouterr().out


def test_verify_without_a_key_says_hmacs_were_not_checked(
    log: list[Path], capsys: pytest.CaptureFixture[str]
) -> None:
    assert sluice("audit", "verify", "--dir", str(log[0].parent)) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].endswith("HMAC not checked")
    assert out[-1] == "note: HMACs not checked (no key)"


def test_verify_defaults_to_the_audit_directory_here(
    log: list[Path], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(log[0].parent.parent)
    assert sluice("audit", "verify") == 0
    assert capsys.readouterr().out.startswith("OK: 13 records in 3 segments verified")


def test_verify_names_the_tampered_line_and_exits_1(
    log: list[Path], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("SLUICE_AUDIT_HMAC_KEY", KEY)

    def change(entry: dict[str, object]) -> None:
        entry["status"] = 500

    edit_line(log[1], 2, change)  # seq 7
    assert sluice("audit", "verify", "--dir", str(log[0].parent)) == 1
    assert capsys.readouterr().out.splitlines() == [
        f"TAMPERED: {log[1].name} line 3 (seq 8): prev does not match the digest of seq 7",
        f"chain consistent up to seq 7, digest {digest(read_lines(log[1])[1])}",
    ]


def test_verify_with_the_wrong_key_exits_1(
    log: list[Path], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("SLUICE_AUDIT_HMAC_KEY", "the wrong key")
    assert sluice("audit", "verify", "--dir", str(log[0].parent)) == 1
    out = capsys.readouterr().out
    assert out.startswith(f"TAMPERED: {log[0].name} line 6: seal's hmac does not match")


def test_verify_of_a_missing_directory_is_a_usage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert sluice("audit", "verify", "--dir", str(tmp_path / "nowhere")) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "nowhere is not a directory" in captured.err


def test_verify_with_key_env_naming_an_unset_variable_is_a_usage_error(
    log: list[Path], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("UNSET_AUDIT_KEY", raising=False)
    code = sluice("audit", "verify", "--dir", str(log[0].parent), "--key-env", "UNSET_AUDIT_KEY")
    assert code == 2
    assert "UNSET_AUDIT_KEY" in capsys.readouterr().err
