"""OpenAI bodies to engine requests: each field lands where it should, each mistake names itself.
Pure translation, with a stand-in tokenizer: no model needed."""

from __future__ import annotations

from typing import Any

import pytest

from backend.outputs import EngineInputError
from backend.serving.protocol import EngineRequest, parse_request


class WordTokenizer:
    """One token per word; the chat template writes `role: content` lines."""

    def __init__(self) -> None:
        self.rendered: list[dict[str, Any]] = []

    def encode(self, text: str) -> list[int]:
        return [len(word) for word in text.split()]

    def decode(self, ids: list[int], *, skip_special_tokens: bool = True) -> str:
        return " ".join("x" * i for i in ids)

    def apply_chat_template(
        self, messages: list[dict[str, Any]], *, tools: Any = None
    ) -> list[int]:
        self.rendered = messages
        return self.encode(" ".join(f"{m['role']}: {m['content']}" for m in messages))


async def parse(kind: str, body: dict[str, Any], tokenizer: Any = None) -> EngineRequest:
    tokenizer = tokenizer or WordTokenizer()
    return await parse_request(kind, body, tokenizer, max_model_len=32, vocab_size=100)


async def refused(kind: str, body: dict[str, Any]) -> EngineInputError:
    with pytest.raises(EngineInputError) as caught:
        await parse(kind, body)
    return caught.value


USER = [{"role": "user", "content": "hello there"}]


async def test_chat_fields_map_to_sampling_params() -> None:
    request = await parse(
        "chat",
        {
            "messages": USER,
            "max_tokens": 99,
            "max_completion_tokens": 7,
            "temperature": 0.5,
            "stop": "END",
            "logprobs": True,
            "top_logprobs": 3,
            "top_k": 4,
            "ignore_eos": True,
            "priority": -1,
            "stream": True,
            "stream_options": {"include_usage": True},
        },
    )
    params = request.params
    assert (params.max_tokens, params.temperature, params.stop) == (7, 0.5, ["END"])
    assert (params.logprobs, params.top_k, params.ignore_eos) == (3, 4, True)
    assert (request.priority, request.stream, request.include_usage) == (-1, True, True)


async def test_defaults_follow_openai() -> None:
    chat = await parse("chat", {"messages": USER})
    completion = await parse("completions", {"prompt": "hi"})
    assert chat.params.max_tokens is None and completion.params.max_tokens == 16
    assert chat.params.logprobs is None and not chat.stream and not chat.include_usage


async def test_messages_become_text_for_the_template() -> None:
    tokenizer = WordTokenizer()
    content = [{"type": "text", "text": "one"}, {"type": "text", "text": "two"}]
    await parse(
        "chat",
        {
            "messages": [
                {"role": "developer", "content": "be brief"},
                {"role": "user", "content": content, "name": "ann"},
                {"role": "assistant", "content": None, "tool_calls": [{"id": "t"}]},
            ]
        },
        tokenizer,
    )
    assert tokenizer.rendered == [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": "one\ntwo", "name": "ann"},
        {"role": "assistant", "content": "", "tool_calls": [{"id": "t"}]},
    ]


async def test_a_batch_of_one_prompt_is_one_prompt() -> None:
    assert (await parse("completions", {"prompt": ["a bb"]})).prompt_token_ids == [1, 2]
    assert (await parse("completions", {"prompt": [[5, 6]]})).prompt_token_ids == [5, 6]


@pytest.mark.parametrize(
    ("kind", "body", "param", "words"),
    [
        ("completions", {"prompt": ["a", "b"]}, "prompt", "one request per prompt"),
        ("completions", {"prompt": [[1], [2]]}, "prompt", "one request per prompt"),
        ("completions", {"prompt": 5}, "prompt", "a string"),
        ("completions", {"prompt": " "}, "prompt", "empty"),
        ("completions", {"prompt": "w " * 40}, "prompt", "40 tokens"),
        ("completions", {"prompt": [100]}, "prompt", "[0, 100)"),
        ("completions", {"prompt": "a", "echo": True, "logprobs": 1}, "echo", "logprobs"),
        ("completions", {"prompt": "a", "best_of": 3}, "best_of", "use n"),
        ("chat", {"messages": USER, "max_completion_tokens": 0}, "max_completion_tokens", ">="),
        ("chat", {"messages": USER, "logprobs": True, "top_logprobs": 99}, "top_logprobs", "20"),
        ("chat", {"messages": USER, "top_logprobs": 2}, "top_logprobs", "logprobs: true"),
        ("chat", {"messages": USER, "stream": "yes"}, "stream", "true or false"),
        (
            "chat",
            {"messages": USER, "stream_options": {"include_usage": 1}},
            "stream_options.include_usage",
            "true or false",
        ),
        ("chat", {"messages": USER, "priority": 1.5}, "priority", "integer"),
        ("chat", {"messages": USER, "logit_bias": {"5": 1}}, "logit_bias", "not supported"),
        ("chat", {"messages": USER, "tool_choice": "required"}, "tool_choice", "force"),
        (
            "chat",
            {"messages": USER, "response_format": {"type": "json_object"}},
            "response_format",
            "guided",
        ),
        ("chat", {"messages": "hi"}, "messages", "non-empty list"),
        (
            "chat",
            {"messages": [{"role": "user", "content": [{"type": "input_audio"}]}]},
            "messages[0].content[0].type",
            "text-only",
        ),
        (
            "chat",
            {"messages": [{"role": "user", "content": [{"text": "x"}]}]},
            "messages[0].content[0]",
            "content part",
        ),
    ],
)
async def test_mistakes_name_the_field(kind: str, body: dict, param: str, words: str) -> None:
    error = await refused(kind, body)
    assert error.param == param
    assert words in str(error)
