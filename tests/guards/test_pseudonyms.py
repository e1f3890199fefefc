"""Pseudonyms: one placeholder per value, the same every time; originals restored in whole
texts and in streams cut anywhere, in the forms models echo them; nothing else touched."""

from __future__ import annotations

from itertools import pairwise

from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.guards.pseudonyms import Pseudonyms


def conversation() -> Pseudonyms:
    pseudonyms = Pseudonyms()
    assert pseudonyms.placeholder("PERSON", "Maria Garcia") == "<PERSON_1>"
    assert pseudonyms.placeholder("EMAIL_ADDRESS", "maria@example.com") == "<EMAIL_ADDRESS_1>"
    assert pseudonyms.placeholder("PERSON", "John Smith") == "<PERSON_2>"
    return pseudonyms


def test_the_same_value_gets_the_same_placeholder_every_time() -> None:
    pseudonyms = conversation()
    assert pseudonyms.placeholder("PERSON", "Maria Garcia") == "<PERSON_1>"
    assert pseudonyms.placeholder("PERSON", "John Smith") == "<PERSON_2>"
    assert len(pseudonyms) == 3
    assert pseudonyms.known("PERSON", "John Smith")
    assert not pseudonyms.known("PERSON", "Somebody Else")


def test_a_resent_history_numbers_values_the_same_way() -> None:
    # Each turn the client resends the history; each request has its own Pseudonyms.
    history = [("PERSON", "Ann Lee"), ("PERSON", "Bo Chan"), ("PERSON", "Ann Lee")]
    turn_1 = Pseudonyms()
    turn_5 = Pseudonyms()
    first = [turn_1.placeholder(t, v) for t, v in history]
    later = [turn_5.placeholder(t, v) for t, v in [*history, ("PERSON", "Cy Dee")]]
    assert later[:3] == first == ["<PERSON_1>", "<PERSON_2>", "<PERSON_1>"]
    assert later[3] == "<PERSON_3>"


def test_restore_puts_every_original_back() -> None:
    pseudonyms = conversation()
    text = "Dear <PERSON_1>, <PERSON_2> wrote to <EMAIL_ADDRESS_1> about <PERSON_1>."
    want = "Dear Maria Garcia, John Smith wrote to maria@example.com about Maria Garcia."
    assert pseudonyms.restore(text) == want


def test_restore_accepts_the_forms_models_echo() -> None:
    pseudonyms = conversation()
    for echoed in ["<person_1>", "< PERSON_1 >", "<PERSON 1>", "<Person_1>", "PERSON_1"]:
        assert pseudonyms.restore(f"Hi {echoed}!") == "Hi Maria Garcia!", echoed
    assert pseudonyms.restore("[PERSON_2]") == "[John Smith]"


def test_restore_leaves_everything_else_alone() -> None:
    pseudonyms = conversation()
    for text in [
        "<PERSON_9> is unknown",
        "<Person-1> has a hyphen",
        "person_1 is a variable",  # bare forms count only in capitals
        "MY_PERSON_1 is part of a longer name",
        "PERSON_1x is part of a word",
        "<PERSON_1 never closes",
        "<  <PERSON_ 1>",
        "a < b and c > d; x_1 = 2",
    ]:
        assert pseudonyms.restore(text) == text.replace("<PERSON_1 never", "<Maria Garcia never")


def test_nothing_to_restore_without_placeholders() -> None:
    assert Pseudonyms().restore("<PERSON_1>") == "<PERSON_1>"
    assert len(Pseudonyms()) == 0


def stream(pseudonyms: Pseudonyms, text: str, cuts: list[int]) -> str:
    restorer = pseudonyms.restorer()
    points = [0, *sorted(set(cuts)), len(text)]
    out = [restorer.feed(text[a:b]) for a, b in pairwise(points)]
    return "".join(out) + restorer.flush()


TEXT = "Hello <PERSON_1>! PERSON_2 and < person_1 > met at <EMAIL_ADDRESS_1>; <PERSON_7> not."


def test_stream_restores_placeholder_split_across_chunks_at_every_pair_of_cuts() -> None:
    pseudonyms = conversation()
    want = pseudonyms.restore(TEXT)
    assert want == (
        "Hello Maria Garcia! John Smith and Maria Garcia met at maria@example.com; <PERSON_7> not."
    )
    for i in range(len(TEXT) + 1):
        for j in range(i, len(TEXT) + 1):
            assert stream(pseudonyms, TEXT, [i, j]) == want, (i, j)


def test_stream_one_character_at_a_time() -> None:
    pseudonyms = conversation()
    assert stream(pseudonyms, TEXT, list(range(len(TEXT)))) == pseudonyms.restore(TEXT)


def test_stream_holds_back_only_what_could_become_a_placeholder() -> None:
    restorer = conversation().restorer()
    assert restorer.feed("plain text, ") == "plain text, "
    assert restorer.feed("then <PERS") == "then "
    assert restorer.feed("ON_1> and Bo") == "Maria Garcia and "
    assert restorer.feed("b.") == "Bob."
    assert restorer.feed(" a < b") == " a "  # "<" with letters after it: still possible
    assert restorer.feed("; ") == "< b; "
    assert restorer.flush() == ""


@settings(max_examples=500, deadline=None)
@given(
    parts=st.lists(
        st.sampled_from(
            ["<PERSON_1>", "<PERSON_2>", "PERSON_1", "<person 2>", "<", ">", "_", "1", " ", "P"]
        )
        | st.text(alphabet="abé <>_PERSON12 ", max_size=6),
        max_size=12,
    ),
    cuts=st.lists(st.integers(min_value=0, max_value=120), max_size=8),
)
def test_any_stream_cut_gives_the_whole_text_restore(parts: list[str], cuts: list[int]) -> None:
    pseudonyms = conversation()
    text = "".join(parts)
    assert stream(pseudonyms, text, [c for c in cuts if c <= len(text)]) == pseudonyms.restore(text)
