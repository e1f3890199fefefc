"""Every place a request or a response can hide text becomes a slot, and writing a slot
rewrites the body."""

from __future__ import annotations

from gateway.guards.texts import request_slots, response_slots


def test_chat_request_slots_cover_parts_names_tool_arguments_and_results() -> None:
    body = {
        "model": "m",
        "messages": [
            {"role": "system", "content": "be nice"},
            {
                "role": "user",
                "name": "alice",
                "content": [
                    {"type": "text", "text": "hi"},
                    {"type": "image_url", "image_url": {"url": "data:..."}},
                    {"type": "text", "text": "there"},
                ],
            },
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": "c1",
                        "type": "function",
                        "function": {"name": "lookup", "arguments": '{"q": "x"}'},
                    },
                ],
            },
            {"role": "tool", "tool_call_id": "c1", "content": "result text"},
        ],
    }
    slots = request_slots(body)
    assert [(s.path, s.kind, s.role, s.text, s.user_controlled) for s in slots] == [
        ("messages[0].content", "content", "system", "be nice", False),
        ("messages[1].content[0].text", "content", "user", "hi", True),
        ("messages[1].content[2].text", "content", "user", "there", True),
        ("messages[1].name", "name", "user", "alice", True),
        (
            "messages[2].tool_calls[0].function.arguments",
            "tool_arguments",
            "assistant",
            '{"q": "x"}',
            True,
        ),
        ("messages[3].content", "tool_result", "tool", "result text", True),
    ]
    for slot in slots:
        slot.write(slot.text.upper())
    assert body["messages"][1]["content"][2]["text"] == "THERE"
    assert body["messages"][1]["name"] == "ALICE"
    assert body["messages"][2]["tool_calls"][0]["function"]["arguments"] == '{"Q": "X"}'
    assert body["messages"][3]["content"] == "RESULT TEXT"


def test_completion_prompts_and_embedding_inputs() -> None:
    body = {"prompt": ["one", [1, 2, 3], "two"], "input": "three"}
    slots = request_slots(body)
    assert [s.path for s in slots] == ["prompt[0]", "prompt[2]", "input"]
    slots[1].write("TWO")
    assert body["prompt"] == ["one", [1, 2, 3], "TWO"]


def test_response_slots_cover_message_content_tool_calls_and_completion_text() -> None:
    body = {
        "choices": [
            {
                "index": 0,
                "message": {
                    "role": "assistant",
                    "content": "hello",
                    "tool_calls": [{"function": {"name": "f", "arguments": "{}"}}],
                },
            },
            {"index": 1, "text": "completion"},
        ]
    }
    slots = response_slots(body)
    assert [(s.path, s.kind) for s in slots] == [
        ("choices[0].message.content", "content"),
        ("choices[0].message.tool_calls[0].function.arguments", "tool_arguments"),
        ("choices[1].text", "content"),
    ]


def test_malformed_shapes_are_skipped_not_crashed_on() -> None:
    assert (
        request_slots({"messages": ["x", {"content": 3}, {"content": [None, {"text": 1}]}]}) == []
    )
    assert response_slots({"choices": "x"}) == []
    assert response_slots({"choices": [None, {"message": "x"}]}) == []
