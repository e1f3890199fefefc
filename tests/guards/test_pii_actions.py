"""The PII actions are pure: each rewrites only its span, overlapping detections merge into
one span, and (property-tested) no text outside the detected spans ever changes."""

from __future__ import annotations

from itertools import pairwise

from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.guards.pii.actions import apply, hash_value, mask, merge, redact, replacement
from gateway.guards.pii.config import PIIAction
from gateway.guards.pseudonyms import Pseudonyms
from gateway.guards.window import Span

ACTIONS = {
    "EMAIL_ADDRESS": PIIAction.REDACT,
    "PERSON": PIIAction.PSEUDONYMIZE,
    "CREDIT_CARD": PIIAction.MASK,
    "US_SSN": PIIAction.HASH,
    "LOCATION": PIIAction.FLAG,
    "JWT": PIIAction.BLOCK,
}


def test_redact_names_the_type() -> None:
    assert redact("EMAIL_ADDRESS") == "<EMAIL_ADDRESS>"


def test_mask_keeps_the_last_four_digits_of_long_numbers_only() -> None:
    assert mask("4111 1111 1111 1234") == "****1234"
    assert mask("+1 (212) 555-0134") == "****0134"
    assert mask("078-05-1120") == "****1120"
    assert mask("1234567") == "****"  # fewer than 8 digits: nothing shown
    assert mask("bob@example.com") == "****"


def test_hash_is_keyed_stable_and_short() -> None:
    one = hash_value("US_SSN", "078-05-1120", b"salt-a")
    assert one == hash_value("US_SSN", "078-05-1120", b"salt-a")
    assert one != hash_value("US_SSN", "078-05-1120", b"salt-b")
    assert one != hash_value("US_SSN", "078-05-1121", b"salt-a")
    assert one.startswith("<US_SSN:") and len(one) == len("<US_SSN:>") + 16
    assert "078" not in one


def test_pseudonymize_on_input_and_on_output() -> None:
    pseudonyms = Pseudonyms()

    def act(value: str, output: bool) -> str:
        return replacement(
            PIIAction.PSEUDONYMIZE, "PERSON", value, salt=b"", pseudonyms=pseudonyms, output=output
        )

    assert act("Ann Lee", output=False) == "<PERSON_1>"
    assert act("Ann Lee", output=False) == "<PERSON_1>"
    # The answer may name her (the client sent her name); anyone else is redacted.
    assert act("Ann Lee", output=True) == "Ann Lee"
    assert act("Bo Chan", output=True) == "<PERSON>"
    assert len(pseudonyms) == 1
    assert replacement(PIIAction.PSEUDONYMIZE, "PERSON", "X", salt=b"", pseudonyms=None) == (
        "<PERSON>"
    )


def test_flag_keeps_the_value() -> None:
    assert replacement(PIIAction.FLAG, "LOCATION", "Paris", salt=b"", pseudonyms=None) == "Paris"


def action_of(label: str) -> PIIAction | None:
    return ACTIONS.get(label)


def test_overlapping_detections_merge_under_the_strongest_action() -> None:
    spans = [
        Span(0, 10, "PERSON", 0.85),  # "John Smith"
        Span(5, 17, "LOCATION", 0.85),  # "Smith Street"
        Span(30, 40, "PERSON", 0.5),
        Span(30, 40, "EMAIL_ADDRESS", 1.0),
        Span(50, 60, "LOCATION", 0.6),
    ]
    assert merge(spans, action_of) == [
        Span(0, 17, "PERSON", 0.85),  # pseudonymize beats flag; nothing of "Street" is left
        Span(30, 40, "EMAIL_ADDRESS", 1.0),  # same characters: redact beats pseudonymize
        Span(50, 60, "LOCATION", 0.6),
    ]


def test_a_detection_inside_another_gives_way_to_it() -> None:
    flagged_email = {"EMAIL_ADDRESS": PIIAction.FLAG, "URL": PIIAction.REDACT}.get
    email, domain = Span(0, 15, "EMAIL_ADDRESS", 1.0), Span(4, 15, "URL", 0.5)
    assert merge([domain, email], flagged_email) == [email]  # the domain is not a URL
    same = [Span(0, 8, "PERSON", 0.85), Span(0, 8, "LOCATION", 0.6)]
    assert merge(same, lambda label: PIIAction.REDACT) == [Span(0, 8, "PERSON", 0.85)]
    ner_or_pattern = [Span(0, 8, "PERSON", 0.85), Span(0, 8, "EMAIL_ADDRESS", 0.5)]
    assert merge(ner_or_pattern, lambda label: PIIAction.REDACT) == [ner_or_pattern[1]]


def test_a_ner_guess_never_lets_a_stronger_entity_inside_it_through() -> None:
    place, email = Span(5, 30, "LOCATION", 0.85), Span(9, 20, "EMAIL_ADDRESS", 1.0)
    assert merge([place, email], action_of) == [Span(5, 30, "EMAIL_ADDRESS", 1.0)]


def test_apply_rewrites_each_span() -> None:
    text = "mail bob@example.com, card 4111 1111 1111 1234."
    spans = [Span(5, 20, "EMAIL_ADDRESS"), Span(27, 46, "CREDIT_CARD")]

    def replace(text: str, span: Span) -> str:
        action = action_of(span.label) or PIIAction.FLAG
        return replacement(
            action, span.label, text[span.start : span.end], salt=b"k", pseudonyms=None
        )

    assert apply(text, spans, replace) == "mail <EMAIL_ADDRESS>, card ****1234."


LABELS = st.sampled_from(sorted(ACTIONS))


@st.composite
def text_and_spans(draw: st.DrawFn) -> tuple[str, list[Span]]:
    text = draw(st.text(max_size=80))
    spans = []
    for _ in range(draw(st.integers(0, 6))):
        start = draw(st.integers(0, len(text)))
        end = draw(st.integers(start, len(text)))
        spans.append(Span(start, end, draw(LABELS), draw(st.floats(0, 1))))
    return text, spans


def outside(text: str, spans: list[Span]) -> list[str]:
    """The pieces of `text` between the (disjoint, sorted) spans."""
    pieces, pos = [], 0
    for span in spans:
        pieces.append(text[pos : span.start])
        pos = span.end
    return [*pieces, text[pos:]]


@settings(max_examples=400, deadline=None)
@given(case=text_and_spans(), salt=st.binary(max_size=8))
def test_actions_never_crash_nor_touch_text_outside_the_spans(
    case: tuple[str, list[Span]], salt: bytes
) -> None:
    text, spans = case
    merged = merge(spans, action_of)
    # Merged spans are disjoint, sorted, and cover every non-empty input span.
    assert all(a.end <= b.start for a, b in pairwise(merged))
    for span in spans:
        if span.end > span.start:
            assert any(m.start <= span.start and span.end <= m.end for m in merged)
    pseudonyms = Pseudonyms()
    replaced: list[str] = []

    def replace(text: str, span: Span) -> str:
        value = text[span.start : span.end]
        out = replacement(ACTIONS[span.label], span.label, value, salt=salt, pseudonyms=pseudonyms)
        replaced.append(out)
        return out

    result = apply(text, merged, replace)
    # Reassemble: outside pieces interleaved with the replacements must give the result.
    pieces = outside(text, merged)
    rebuilt = pieces[0] + "".join(r + p for r, p in zip(replaced, pieces[1:], strict=True))
    assert result == rebuilt
    # And every outside piece is found in order in the result, unchanged.
    pos = 0
    for piece in pieces:
        found = result.find(piece, pos)
        assert found >= 0
        pos = found + len(piece)
