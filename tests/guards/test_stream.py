"""Output guards on SSE streams: texts filtered per choice, held text let out when the choice
finishes, a block ends the stream with `finish_reason: content_filter`."""

from __future__ import annotations

import orjson
import pytest

from gateway.guards.base import GuardContext
from gateway.guards.stream import GuardedStream, StreamBlocked, merged_decisions
from tests.guards.sample_guards import ShoutGuard, WordGuard


def chunk(index: int, content: str | None = None, finish: str | None = None) -> bytes:
    delta = {} if content is None else {"content": content}
    body = {
        "id": "c1",
        "object": "chat.completion.chunk",
        "model": "m",
        "choices": [{"index": index, "delta": delta, "finish_reason": finish}],
    }
    return b"data: " + orjson.dumps(body) + b"\n\n"


def texts(data: bytes) -> dict[int, str]:
    out: dict[int, str] = {}
    for event in data.split(b"\n\n"):
        if event.startswith(b"data: {"):
            for choice in orjson.loads(event[6:])["choices"]:
                delta = choice.get("delta") or {}
                out[choice["index"]] = out.get(choice["index"], "") + (delta.get("content") or "")
    return out


def finishes(data: bytes) -> list[str]:
    return [
        choice["finish_reason"]
        for event in data.split(b"\n\n")
        if event.startswith(b"data: {")
        for choice in orjson.loads(event[6:])["choices"]
        if choice.get("finish_reason")
    ]


async def run(stream: GuardedStream, pieces: list[bytes]) -> bytes:
    out = b""
    for piece in pieces:
        out += await stream.events(piece)
    return out + await stream.finish()


def tokens(text: str, size: int) -> list[str]:
    return [text[i : i + size] for i in range(0, len(text), size)]


@pytest.mark.parametrize("size", [1, 2, 3, 5, 8])
async def test_word_split_across_chunks_is_redacted_in_each_choice(size: int) -> None:
    ctx = GuardContext("output", [])
    guard = WordGuard(["banana"])
    stream = GuardedStream([guard], ctx)
    pieces = []
    for index, text in ((0, "I like banana bread"), (1, "no fruit, bananas only, banana!")):
        pieces += [chunk(index, t) for t in tokens(text, size)]
        pieces.append(chunk(index, None, "stop"))
    out = await run(stream, pieces)
    assert texts(out) == {0: "I like [word] bread", 1: "no fruit, bananas only, [word]!"}
    assert finishes(out) == ["stop", "stop"]
    [merged] = merged_decisions([guard], ctx.decisions)
    assert (merged.action, merged.categories) == ("redact", {"WORD": 2})


async def test_block_ends_the_stream_with_content_filter_and_sends_nothing_of_the_word() -> None:
    ctx = GuardContext("output", [])
    stream = GuardedStream([WordGuard(["forbidden"], action="block")], ctx)
    pieces = [chunk(0, t) for t in tokens("this is the forbidden part and more text", 2)]
    sent = b""
    with pytest.raises(StreamBlocked) as caught:
        for piece in pieces:
            sent += await stream.events(piece)
    sent += caught.value.tail
    assert "forbid" not in texts(sent)[0]
    assert finishes(sent) == ["content_filter"]
    assert caught.value.decision.blocked


async def test_guard_without_stream_filter_holds_the_choice_and_checks_it_whole() -> None:
    ctx = GuardContext("output", [])
    stream = GuardedStream([ShoutGuard()], ctx)
    first = await stream.events(chunk(0, "hello "))
    assert texts(first) == {0: ""}
    rest = await run(stream, [chunk(0, "world"), chunk(0, None, "stop")])
    assert texts(first + rest) == {0: "HELLO WORLD"}


async def test_held_text_is_flushed_at_done_when_no_choice_finished() -> None:
    ctx = GuardContext("output", [])
    stream = GuardedStream([WordGuard(["banana"])], ctx)
    out = await run(stream, [chunk(0, "tail text")])
    assert texts(out) == {0: "tail text"}


async def test_tool_call_arguments_are_filtered_too() -> None:
    ctx = GuardContext("output", [])
    stream = GuardedStream([WordGuard(["banana"])], ctx)
    body = {
        "object": "chat.completion.chunk",
        "choices": [
            {
                "index": 0,
                "delta": {
                    "tool_calls": [{"index": 0, "function": {"arguments": '{"fruit": "ban'}}]
                },
                "finish_reason": None,
            }
        ],
    }
    second = {
        "object": "chat.completion.chunk",
        "choices": [
            {
                "index": 0,
                "delta": {"tool_calls": [{"index": 0, "function": {"arguments": 'ana"}'}}]},
                "finish_reason": "tool_calls",
            }
        ],
    }
    out = await run(
        stream,
        [b"data: " + orjson.dumps(body) + b"\n\n", b"data: " + orjson.dumps(second) + b"\n\n"],
    )
    args = ""
    for event in out.split(b"\n\n"):
        if event.startswith(b"data: {"):
            for call in orjson.loads(event[6:])["choices"][0]["delta"].get("tool_calls", []):
                args += call["function"]["arguments"]
    assert args == '{"fruit": "[word]"}'


async def test_non_json_and_usage_events_pass_unchanged() -> None:
    stream = GuardedStream([WordGuard(["banana"])], GuardContext("output", []))
    usage = b'data: {"choices": [], "usage": {"prompt_tokens": 1}}\n\n'
    assert await stream.events(b": keep-alive\n\n" + usage) == b": keep-alive\n\n" + usage
