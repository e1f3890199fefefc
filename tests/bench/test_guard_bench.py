"""The guard benchmark (bench/guards.py): its labeled data, its scoring, and a tiny run.

The tiny run (a few messages per size, one chat, a small labeled set, the PII guard on secrets
only so spaCy is not loaded) checks the results file has every figure the README quotes; it is
a smoke test, not a timing.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
BENCH_DIR = REPO / "bench"
if str(BENCH_DIR) not in sys.path:
    sys.path.insert(0, str(BENCH_DIR))

from guardbench.cli import main  # noqa: E402
from guardbench.corpus import Prose, conversation  # noqa: E402
from guardbench.labeled import (  # noqa: E402
    NAMES_AND_PLACES,
    PII_TEMPLATES,
    SECRETS,
    STRUCTURED,
    Gold,
    labeled_set,
)
from guardbench.scoring import (  # noqa: E402
    Binary,
    Found,
    leaked,
    match_spans,
    outside_gold,
    percentiles,
)

# What each kind of gold value must look like: the spans point at the values themselves.
SHAPES = {
    "EMAIL_ADDRESS": r"[^@\s]+@[^@\s]+\.[a-z]+",
    "US_SSN": r"\d{3}-\d{2}-\d{4}",
    "IP_ADDRESS": r"[0-9a-f.:]+",
    "CREDIT_CARD": r"[\d ]{13,19}",
    "IBAN_CODE": r"[A-Z]{2}\d{2}[A-Z0-9 ]+",
    "AWS_ACCESS_KEY_ID": r"AKIA[A-Z2-7]{16}",
    "GITHUB_TOKEN": r"ghp_[A-Za-z0-9]{36}",
    "PRIVATE_KEY": r"-----BEGIN [A-Z ]*PRIVATE KEY-----\n[\s\S]+-----END [A-Z ]*PRIVATE KEY-----",
    "PERSON": r"[A-Z][a-z]+(?: [A-Z][a-z'-]+)?",
}


def test_labeled_set_is_seeded_and_its_gold_spans_hold_the_values() -> None:
    samples = labeled_set(3, 60, 20)
    assert samples == labeled_set(3, 60, 20)
    assert samples != labeled_set(4, 60, 20)
    assert sum(s.kind == "clean" for s in samples) == 20
    assert all(not s.gold for s in samples if s.kind == "clean")
    labels = {g.label for s in samples for g in s.gold}
    # Every kind the templates name appears, and only those the report knows.
    assert labels == {*STRUCTURED, *SECRETS, *NAMES_AND_PLACES}
    assert labels == {m for t in PII_TEMPLATES for m in re.findall(r"\{([A-Z_0-9]+)\}", t)}
    for sample in samples:
        for gold in sample.gold:
            value = sample.text[gold.start : gold.end]
            assert value and value == value.strip()
            if gold.label in SHAPES:
                assert re.fullmatch(SHAPES[gold.label], value), (gold.label, value)


def test_messages_have_the_size_asked_and_chats_grow_turn_by_turn() -> None:
    prose = Prose(1)
    for size in (200, 1024, 8192):
        text = prose.message(size)
        assert size - 40 <= len(text.encode()) <= size
    talk = conversation(Prose(2), 20)
    first, last = talk.request(1), talk.request(20)
    assert [m["role"] for m in first["messages"]] == ["system", "user"]
    assert len(last["messages"]) == 1 + 2 * 19 + 1
    assert last["messages"][:3] == talk.request(2)["messages"][:3]


def test_span_matching_needs_the_same_label_and_an_overlap() -> None:
    gold = [Gold(0, 10, "PHONE_NUMBER"), Gold(20, 30, "CREDIT_CARD")]
    found = [
        Found(0, 7, "PHONE_NUMBER"),  # part of the number: found
        Found(20, 30, "PHONE_NUMBER"),  # the card, called a phone: a false positive
        Found(40, 45, "PERSON"),  # nothing there
    ]
    counts = match_spans(gold, found)
    assert (counts["PHONE_NUMBER"].tp, counts["PHONE_NUMBER"].fp) == (1, 1)
    assert (counts["CREDIT_CARD"].tp, counts["CREDIT_CARD"].fn) == (0, 1)
    assert counts["PERSON"].fp == 1 and counts["PERSON"].precision == 0.0
    assert counts["PHONE_NUMBER"].precision == 0.5 and counts["PHONE_NUMBER"].recall == 1.0


def test_leaks_and_over_redaction() -> None:
    text = "Mail ann@x.io or call 555-0100 today"
    gold = [Gold(5, 14, "EMAIL_ADDRESS"), Gold(23, 31, "PHONE_NUMBER")]
    assert leaked(text, gold, "Mail <EMAIL_ADDRESS> or call 555-0100 today") == ["PHONE_NUMBER"]
    assert leaked(text, gold, "Mail <EMAIL_ADDRESS> or call <PHONE_NUMBER> today") == []
    # "today" (5 characters) detected outside the 19 gold characters; 36 - 17 = 19 outside.
    assert outside_gold(len(text), gold, [Found(31, 36, "DATE_TIME")]) == (5, 19)


def test_binary_counts_and_percentiles() -> None:
    b = Binary()
    for truth, said in [(True, True), (True, False), (False, True), (False, False)]:
        b.add(truth, said)
    assert b.as_dict()["n"] == 4 and b.false_positive_rate == 0.5
    assert b.counts.precision == 0.5 and b.counts.recall == 0.5
    p = percentiles([0.001, 0.002, 0.003])
    assert p["n"] == 3 and p["p50_us"] == pytest.approx(2000)


def test_detectors_do_not_use_the_generator() -> None:
    """The gateway and the plugins never import Faker or the benchmark's data."""
    offenders = [
        str(path.relative_to(REPO))
        for folder in ("gateway", "plugins")
        for path in (REPO / folder).rglob("*.py")
        if re.search(r"^\s*(from|import)\s+(faker|guardbench)\b", path.read_text(), re.M)
    ]
    assert offenders == []


def test_tiny_run_writes_every_figure(tmp_path: Path) -> None:
    out = tmp_path / "guards.json"
    argv = ["--quick", "--no-presidio", "--samples", "3", "--chats", "1"]
    argv += ["--pii-samples", "25", "--clean-samples", "5", "--out", str(out)]
    assert main(argv) == 0
    doc = json.loads(out.read_text())
    assert doc["benchmark"] == "guards" and doc["git"] and doc["machine"]["nproc"]
    assert doc["skipped"] == {}
    for name in ("validation", "pii", "injection", "moderation", "keyword_filter"):
        sizes = doc["latency"][name]["sizes"]
        assert set(sizes) == {"200", "1024", "8192"}
        assert all(s["n"] == 3 and 0 < s["p50_us"] <= s["p99_us"] for s in sizes.values())
    pipeline = doc["pipeline"]
    assert pipeline["guards"] == ["validation", "pii", "injection", "moderation"]
    assert pipeline["fresh_1kb"]["latency"]["n"] == 3
    assert pipeline["chat"]["latency"]["n"] == 19  # turns 2..20 of one chat
    assert pipeline["chat"]["request_bytes_mean"] > 2048
    pii = doc["quality"]["pii"]
    assert pii["samples"] == 30 and pii["clean_samples"] == 5
    secrets = [e for label, e in pii["entities"].items() if label in SECRETS]
    assert secrets and all(e["asked"] for e in secrets)
    assert not pii["entities"]["PERSON"]["asked"]
    assert 0 <= pii["over_redaction"] <= 1 and 0 <= pii["leak_rate"] <= 1
    assert set(doc["quality"]["injection"]["splits"]) == {"all", "dev", "holdout"}
    assert doc["quality"]["moderation"]["splits"]["all"]["n"] > 100
    assert "Guard latency" in doc["report"] and "PII quality" in doc["report"]
