"""The keyword filter plugin: blocks and redactions on requests, answers and streams.

Only the public guard protocol (`gateway.guards`) and the plugin loader are used, as the
gateway uses them.
"""

from __future__ import annotations

from typing import Any, Literal

import pytest
from pydantic import ValidationError

from gateway.guards import Decision, GuardBlocked, GuardContext, StreamingGuard, TextSlot, Verdict
from gateway.guards.plugins import load_guard

from .. import KeywordFilterConfig, KeywordFilterGuard

TRUSTED = ("system", "developer")


def context(
    *messages: tuple[str, str], stage: Literal["input", "output"] = "input"
) -> tuple[GuardContext, list[Any]]:
    """A context over chat messages given as (role, content) pairs, and the messages."""
    body = [{"role": role, "content": content} for role, content in messages]
    slots = [
        TextSlot(
            f"messages[{i}].content",
            "content",
            m["role"],
            m["content"],
            m["role"] not in TRUSTED,
            m,
            "content",
        )
        for i, m in enumerate(body)
    ]
    return GuardContext(stage, slots), body


def guard(**options: Any) -> KeywordFilterGuard:
    return KeywordFilterGuard(KeywordFilterConfig(**options))


def stream(g: KeywordFilterGuard, chunks: list[str]) -> tuple[str, GuardContext]:
    ctx, _ = context(stage="output")
    window = g.stream_filter(ctx)
    return "".join(window.feed(chunk) for chunk in chunks) + window.flush(), ctx


async def test_block_names_the_slot_and_label_never_the_text() -> None:
    ctx, body = context(("user", "hi"), ("user", "Tell me about Project Bluebird, please"))
    decision = await guard(keywords=["project bluebird"]).check(ctx)
    assert decision.blocked
    assert decision.reason == "messages[1].content contains a filtered keyword"
    assert decision.categories == {"keyword": 1}
    assert body[1]["content"] == "Tell me about Project Bluebird, please"


async def test_redact_whole_words_and_labelled_patterns() -> None:
    g = guard(
        keywords=["cat", "c++"],
        patterns={"ticket": r"TCK-\d{6}"},
        action="redact",
        replacement="[{label}]",
    )
    ctx, body = context(("user", "My cat can concatenate C++ in TCK-123456 and tck-000001."))
    decision = await g.check(ctx)
    assert body[0]["content"] == "My [keyword] can concatenate [keyword] in [ticket] and [ticket]."
    assert decision == Decision(
        "keyword_filter", Verdict.MODIFY, "redact", categories={"keyword": 2, "ticket": 2}
    )


async def test_case_sensitive_and_substring_matching_when_asked() -> None:
    ctx, body = context(("user", "Secret SECRET secretive"))
    await guard(keywords=["secret"], case_sensitive=True, whole_words=False, action="redact").check(
        ctx
    )
    assert body[0]["content"] == "Secret SECRET [REDACTED]ive"


async def test_system_prompt_is_skipped_unless_told_otherwise() -> None:
    messages = (("system", "Never mention nightjar."), ("user", "hello"))
    ctx, _ = context(*messages)
    assert (await guard(keywords=["nightjar"]).check(ctx)) == Decision.allow("keyword_filter")
    ctx, _ = context(*messages)
    assert (await guard(keywords=["nightjar"], user_controlled_only=False).check(ctx)).blocked


def test_is_a_streaming_guard() -> None:
    assert isinstance(guard(keywords=["x"]), StreamingGuard)


@pytest.mark.parametrize("cut", range(1, 40))
def test_stream_redacts_a_term_split_at_every_boundary(cut: int) -> None:
    g = guard(keywords=["project bluebird"], patterns={"ticket": r"TCK-\d{6}"}, action="redact")
    text = "About project bluebird: see TCK-123456 now."
    whole = "About [REDACTED]: see [REDACTED] now."
    out, ctx = stream(g, [text[:cut], text[cut:]])
    assert out == whole
    assert [d.record("output") for d in ctx.decisions] == [
        {
            "guard": "keyword_filter",
            "stage": "output",
            "action": "redact",
            "categories": {"keyword": 1, "ticket": 1},
        }
    ]
    # One character at a time, too.
    assert stream(g, list(text))[0] == whole


@pytest.mark.parametrize("cut", range(1, 22))
def test_stream_block_stops_before_any_of_the_term_leaves(cut: int) -> None:
    g = guard(keywords=["nightjar"])
    text = "The code is nightjar, ok?"
    ctx, _ = context(stage="output")
    window = g.stream_filter(ctx)
    sent = ""
    with pytest.raises(GuardBlocked) as caught:
        for chunk in (text[:cut], text[cut:]):
            sent += window.feed(chunk)
        sent += window.flush()
    assert "nightjar"[:3] not in sent.lower()
    assert caught.value.decision.reason == "the response contains a filtered keyword"


def test_bad_options_are_clear_errors() -> None:
    with pytest.raises(ValidationError, match="pattern 'ticket' is not a valid regex"):
        KeywordFilterConfig(patterns={"ticket": "TCK-(\\d"})
    with pytest.raises(ValidationError, match="matches the empty string"):
        KeywordFilterConfig(patterns={"any": "x*"})
    with pytest.raises(ValidationError, match="at least one of `keywords` or `patterns`"):
        KeywordFilterConfig()
    with pytest.raises(ValidationError, match="keyword"):
        KeywordFilterConfig(keywords=["ok", " "])


async def test_loads_as_a_plugin_by_dotted_path_with_its_config_model() -> None:
    loaded = load_guard(
        "plugins.keyword_filter:KeywordFilterGuard",
        {"keywords": ["nightjar"], "action": "redact"},
        name="codenames",
    )
    assert isinstance(loaded, KeywordFilterGuard) and loaded.name == "codenames"
    ctx, body = context(("user", "nightjar!"))
    assert (await loaded.check(ctx)).categories == {"keyword": 1}
    assert body[0]["content"] == "[REDACTED]!"
    with pytest.raises(ValueError, match="bad options: keywrds: Extra inputs are not permitted"):
        load_guard("plugins.keyword_filter:KeywordFilterGuard", {"keywrds": ["x"]})
