"""The moderation judge against a real loopback chat server: the Llama-Guard-style prompt it
sends, how "safe" / "unsafe\\nS1" become categories, and what timeouts, failures and unreadable
answers do under each `on_error`."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from gateway.config.schema import OpenAIBackend
from gateway.guards.base import GuardContext, Verdict
from gateway.guards.moderation import ModerationConfig, ModerationGuard
from gateway.guards.moderation.judge import JudgeFailed, judge_upstreams, parse_verdict
from gateway.guards.texts import request_slots, response_slots
from gateway.routing.pool import Pool
from gateway.upstream.interface import Upstream
from tests.guards.judge_server import JudgeServer


@pytest.fixture(scope="module")
def judge_server() -> Iterator[JudgeServer]:
    server = JudgeServer().start()
    yield server
    server.stop()


@pytest.fixture
async def upstreams(judge_server: JudgeServer) -> AsyncIterator[dict[str, Upstream]]:
    backend = OpenAIBackend.model_validate(
        {
            "kind": "openai",
            "base_url": judge_server.base_url,
            "retries": {"attempts": 1},
            "timeouts": {"connect_s": 2, "read_s": 5, "total_s": 10},
        }
    )
    pool = Pool("guard-llm", backend, {})
    yield judge_upstreams({"guard-llm": pool})
    await pool.aclose()


def moderation(upstreams: dict[str, Upstream], **judge: Any) -> ModerationGuard:
    config = ModerationConfig.model_validate(
        {
            "type": "moderation",
            "judge": {"backend": "guard-llm", "model": "llama-guard", "timeout_s": 1, **judge},
        }
    )
    return ModerationGuard(config, upstreams)


def chat(text: str) -> GuardContext:
    body = {
        "model": "m",
        "messages": [
            {"role": "system", "content": "S1-BAIT in the system prompt is not judged"},
            {"role": "user", "content": text},
        ],
    }
    return GuardContext("input", request_slots(body), request_id="req-judge-test")


@pytest.mark.parametrize(
    ("answer", "unsafe", "codes"),
    [
        ("safe", False, ()),
        ("  Safe.\n", False, ()),
        ("unsafe\nS1", True, ("S1",)),
        ("unsafe\nS1,S10", True, ("S1", "S10")),
        ("UNSAFE\ns11, s2 ", True, ("S11", "S2")),
        ("unsafe", True, ()),
    ],
)
def test_verdicts_are_read_forgivingly(answer: str, unsafe: bool, codes: tuple[str, ...]) -> None:
    verdict = parse_verdict(answer)
    assert (verdict.unsafe, verdict.codes) == (unsafe, codes)


@pytest.mark.parametrize("answer", ["", "I think it is fine", "maybe unsafe"])
def test_anything_else_is_no_verdict(answer: str) -> None:
    with pytest.raises(JudgeFailed):
        parse_verdict(answer)


async def test_unsafe_s1_blocks_as_violence_and_the_prompt_is_llama_guard_style(
    judge_server: JudgeServer, upstreams: dict[str, Upstream]
) -> None:
    decision = await moderation(upstreams).check(chat("an innocent-looking S1-BAIT"))
    assert decision.blocked
    assert decision.categories == {"violence": 1}
    assert decision.scores == {"violence": 1.0}
    sent = judge_server.seen[-1]
    assert sent["model"] == "llama-guard" and sent["temperature"] == 0
    [message] = sent["messages"]
    prompt = message["content"]
    assert "<BEGIN UNSAFE CONTENT CATEGORIES>" in prompt and "S10: Hate." in prompt
    assert "User: an innocent-looking S1-BAIT" in prompt
    assert "system prompt" not in prompt  # the system message is not the user's text


async def test_safe_lets_a_clean_text_through(upstreams: dict[str, Upstream]) -> None:
    decision = await moderation(upstreams).check(chat("hello there"))
    assert decision.verdict is Verdict.ALLOW and decision.reason is None


async def test_codes_without_a_category_still_flag_by_their_code(
    upstreams: dict[str, Upstream],
) -> None:
    decision = await moderation(upstreams).check(chat("S5-BAIT"))
    assert decision.blocked and decision.categories == {"S5": 1}


async def test_output_is_judged_as_the_agents_turn(
    judge_server: JudgeServer, upstreams: dict[str, Upstream]
) -> None:
    body = {"choices": [{"index": 0, "message": {"role": "assistant", "content": "S10-BAIT"}}]}
    decision = await moderation(upstreams).check(GuardContext("output", response_slots(body)))
    assert decision.blocked and "hate" in decision.categories
    assert "Agent: S10-BAIT" in judge_server.seen[-1]["messages"][0]["content"]


async def test_conversation_prompt_sends_the_text_as_the_users_message(
    judge_server: JudgeServer, upstreams: dict[str, Upstream]
) -> None:
    guard = moderation(upstreams, prompt="conversation")
    assert (await guard.check(chat("S1-BAIT here"))).blocked
    assert judge_server.seen[-1]["messages"] == [{"role": "user", "content": "S1-BAIT here"}]


@pytest.mark.parametrize("bait", ["GARBLE", "SLOW"])
async def test_a_failed_judge_fails_open_to_the_lexicon_by_default(
    upstreams: dict[str, Upstream], bait: str
) -> None:
    guard = moderation(upstreams)
    clean = await guard.check(chat(f"{bait} hello"))
    assert clean.verdict is Verdict.ALLOW and "judge unavailable" in (clean.reason or "")
    threat = await guard.check(chat(f"{bait} I'm going to kill you"))
    assert threat.blocked and "violence" in threat.categories  # the lexicon still counts


async def test_on_error_block_fails_closed(upstreams: dict[str, Upstream]) -> None:
    decision = await moderation(upstreams, on_error="block").check(chat("SLOW hello"))
    assert decision.blocked and decision.categories == {"judge_error": 1}
    assert "did not answer within 1 s" in (decision.reason or "")


async def test_an_unreachable_backend_is_a_judge_failure() -> None:
    backend = OpenAIBackend.model_validate(
        {"kind": "openai", "base_url": "http://127.0.0.1:9/v1", "retries": {"attempts": 1}}
    )
    pool = Pool("guard-llm", backend, {})
    try:
        guard = moderation(judge_upstreams({"guard-llm": pool}), on_error="block")
        decision = await guard.check(chat("hello"))
    finally:
        await pool.aclose()
    assert decision.blocked and "backend failed" in (decision.reason or "")


async def test_min_score_asks_the_judge_only_about_suspicious_text(
    judge_server: JudgeServer, upstreams: dict[str, Upstream]
) -> None:
    guard = moderation(upstreams, min_score=0.3)
    before = len(judge_server.seen)
    assert not (await guard.check(chat("S1-BAIT but nothing the lexicon minds"))).blocked
    assert len(judge_server.seen) == before
    assert (await guard.check(chat("S10-BAIT, and the lethal dose of aspirin"))).blocked
    assert len(judge_server.seen) == before + 1


async def test_a_judge_without_backends_fails_by_its_on_error_and_bad_names_are_errors(
    upstreams: dict[str, Upstream],
) -> None:
    config = ModerationConfig.model_validate(
        {"type": "moderation", "judge": {"backend": "nope", "model": "m", "on_error": "block"}}
    )
    unbound = ModerationGuard(config)
    decision = await unbound.check(chat("hello"))
    assert decision.blocked and "not connected" in (decision.reason or "")
    with pytest.raises(ValueError, match=r"unknown backend 'nope' \(backends: guard-llm\)"):
        unbound.bind_upstreams(upstreams)
