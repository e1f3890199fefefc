"""The detector, pure (no Presidio): overlapping proposals resolve by how specific each type's
evidence is, not by score or action; name guesses are refined before thresholds apply."""

from __future__ import annotations

from gateway.guards.pii.config import PIIConfig
from gateway.guards.pii.detector import Detector, prefer, specificity
from gateway.guards.window import Span

# Phones redacted, cards masked: the phone's action is the stronger one, on purpose.
CONFIG = PIIConfig(
    entities={
        "PHONE_NUMBER": "redact",
        "CREDIT_CARD": "mask",
        "IBAN_CODE": "mask",
        "LOCATION": "redact",
        "PERSON": "pseudonymize",
        "EMAIL_ADDRESS": "redact",
    }
)


def labels(text: str, proposed: list[Span]) -> list[tuple[str, str]]:
    found = Detector(CONFIG).select(text, proposed)
    return [(text[s.start : s.end], s.label) for s in found]


def test_a_card_that_is_also_a_phone_candidate_is_a_card() -> None:
    text = "card 378282246310005 declined"
    phone = Span(5, 20, "PHONE_NUMBER", 0.4)
    card = Span(5, 20, "CREDIT_CARD", 1.0)
    assert labels(text, [phone, card]) == [("378282246310005", "CREDIT_CARD")]
    assert labels(text, [card, phone]) == [("378282246310005", "CREDIT_CARD")]


def test_the_card_wins_even_when_the_phone_scores_higher() -> None:
    text = "call card 378282246310005"
    assert labels(text, [Span(10, 25, "PHONE_NUMBER", 1.0), Span(10, 25, "CREDIT_CARD", 0.5)]) == [
        ("378282246310005", "CREDIT_CARD")
    ]


def test_a_checksummed_pattern_beats_a_ner_guess_on_the_same_characters() -> None:
    text = "IBAN GB82WEST12345698765432 today"
    iban = Span(5, 27, "IBAN_CODE", 1.0)
    guess = Span(5, 27, "LOCATION", 0.85)
    assert labels(text, [guess, iban]) == [("GB82WEST12345698765432", "IBAN_CODE")]


def test_a_ner_guess_wider_than_the_pattern_still_covers_everything() -> None:
    # The guess is not within the email, so it stays; the merge keeps all of both covered.
    text = "Paris maria@example.com"
    found = Detector(CONFIG).select(
        text, [Span(0, 23, "LOCATION", 0.85), Span(6, 23, "EMAIL_ADDRESS", 1.0)]
    )
    assert [(s.start, s.end) for s in found] == [(0, 23)]


def test_a_generic_pattern_gives_way_only_within_the_specific_span() -> None:
    spans = [Span(0, 20, "PHONE_NUMBER", 0.4), Span(5, 20, "CREDIT_CARD", 1.0)]
    assert prefer(spans) == spans  # the phone reaches past the card: both go to the merge
    assert prefer([Span(5, 20, "PHONE_NUMBER"), Span(5, 20, "US_SSN")]) == [Span(5, 20, "US_SSN")]


def test_specificity_orders_checksums_and_secrets_over_patterns_over_ner() -> None:
    assert specificity("CREDIT_CARD") == specificity("STRIPE_KEY") == 2
    assert specificity("PHONE_NUMBER") == specificity("DATE_TIME") == 1
    assert specificity("PERSON") == specificity("LOCATION") == 0


def test_name_guesses_are_refined_and_display_names_added() -> None:
    text = "Server=sql01;Database=crm;User Id=sa; from Ana Lima <ana@example.com>"
    bad = Span(text.index("crm"), text.index("=sa"), "PERSON", 0.85)
    email = Span(text.index("ana@"), len(text) - 1, "EMAIL_ADDRESS", 1.0)
    assert labels(text, [bad, email]) == [
        ("Ana Lima", "PERSON"),
        ("ana@example.com", "EMAIL_ADDRESS"),
    ]


def test_no_display_names_when_person_is_not_wanted() -> None:
    detector = Detector(PIIConfig(entities={"EMAIL_ADDRESS": "redact"}))
    text = "Ana Lima <ana@example.com>"
    found = detector.select(text, [Span(10, 25, "EMAIL_ADDRESS", 1.0)])
    assert [s.label for s in found] == ["EMAIL_ADDRESS"]
