"""Name guesses, pure: display names before bracketed email addresses become PERSON spans; NER
guesses no name looks like are dropped; real-looking names and places are kept."""

from __future__ import annotations

import pytest

from gateway.guards.pii.names import DISPLAY_NAME_SCORE, refine
from gateway.guards.window import Span


def names_in(text: str, spans: list[Span] | None = None) -> list[tuple[str, str]]:
    found = refine(text, spans or [], display_names=True)
    return sorted((text[s.start : s.end], s.label) for s in found)


@pytest.mark.parametrize(
    ("text", "name"),
    [
        ("Maria Garcia <maria@example.com> wrote back", "Maria Garcia"),
        ("ask Tiffany Barajas (kenneth.fuller@hale.example) today", "Tiffany Barajas"),
        ("cc: Scott (scott@example.org)", "Scott"),
        ("From: Dr. J. R. Smith <jrs@example.co.uk>", "Dr. J. R. Smith"),
        (
            "Dear Jos\u00e9 \u00c1lvarez-N\u00fa\u00f1ez <j@example.es>",
            "Jos\u00e9 \u00c1lvarez-N\u00fa\u00f1ez",
        ),
        ("Siobhan O'Brien ( sob@example.ie )", "Siobhan O'Brien"),
    ],
)
def test_a_display_name_before_an_address_is_a_person(text: str, name: str) -> None:
    found = refine(text, [], display_names=True)
    assert [(text[s.start : s.end], s.label, s.score) for s in found] == [
        (name, "PERSON", DISPLAY_NAME_SCORE)
    ]


@pytest.mark.parametrize(
    "text",
    [
        "Contact (help@example.com) for access",  # a request word, not a name
        "send it to the Sales Team <sales@example.com>",  # a role address
        "write to me (a@example.com)",  # no capitalized word
        "Maria Garcia wrote from maria@example.com",  # no brackets: NER's to judge
        "Maria Garcia (see the wiki) and more",  # brackets without an address
        "One Two Three Four Five <x@example.com>",  # more words than a name has
    ],
)
def test_no_display_name_without_a_name_shape_right_before_the_address(text: str) -> None:
    assert refine(text, [], display_names=True) == []


def test_display_names_only_when_asked() -> None:
    assert refine("Maria Garcia <maria@example.com>", [], display_names=False) == []


def test_a_display_name_replaces_another_ner_guess_on_its_characters() -> None:
    text = "copy Crystal Newton <cn@example.com>"
    location = Span(5, 19, "LOCATION", 0.85)
    assert names_in(text, [location]) == [("Crystal Newton", "PERSON")]


@pytest.mark.parametrize(
    ("text", "value", "label"),
    [
        ("Server=sql01;Database=crm;User Id=sa;", "crm;User Id", "PERSON"),  # settings syntax
        ("see a/b for that", "a/b", "LOCATION"),
        ("agent 007 Bond", "007 Bond", "PERSON"),  # digits in a person's name
        ("Mrs went home", "Mrs", "PERSON"),  # an honorific alone
        ("Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.e30.x", "Bearer", "PERSON"),  # auth scheme
        ("Basic dGVzdDp0ZXN0", "Basic", "PERSON"),
    ],
)
def test_guesses_no_name_looks_like_are_dropped(text: str, value: str, label: str) -> None:
    start = text.index(value)
    assert refine(text, [Span(start, start + len(value), label)], display_names=False) == []


@pytest.mark.parametrize(
    ("text", "value", "label"),
    [
        ("I'm Siobhan O'Brien.", "Siobhan O'Brien", "PERSON"),
        ("Jean-Luc Picard called", "Jean-Luc Picard", "PERSON"),
        ("Mrs. Argue wrote", "Mrs. Argue", "PERSON"),  # an honorific with a name
        ("He lives at 221B Baker Street.", "221B Baker Street", "LOCATION"),  # places may
        ("flew to Washington, D.C. today", "Washington, D.C.", "LOCATION"),
        ("Bearer of bad news", "Bearer", "PERSON"),  # not before a token: NER's call
        ("Bearer information wanted", "Bearer", "PERSON"),
        ("the report by Bearer", "Bearer", "PERSON"),
    ],
)
def test_real_looking_names_and_places_are_kept(text: str, value: str, label: str) -> None:
    start = text.index(value)
    span = Span(start, start + len(value), label)
    assert refine(text, [span], display_names=False) == [span]


def test_other_types_pass_untouched() -> None:
    spans = [Span(0, 3, "US_SSN"), Span(4, 9, "EMAIL_ADDRESS")]
    assert refine("123 a;b=c", spans, display_names=True) == spans
