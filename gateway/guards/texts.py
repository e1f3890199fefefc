"""Every place text can hide in an OpenAI request or response, as `TextSlot`s.

Chat messages: string content, text content parts, `name`, tool call arguments, tool results
(role `tool` or the legacy `function`). Completions: the prompt (a string or a list of strings;
token-id prompts carry no text). Embeddings: the input. Responses: each choice's message content
and tool call arguments, or its completion text. Writing a slot writes into the body's dict.
"""

from __future__ import annotations

from typing import Any

from gateway.guards.base import SlotKind, TextSlot

# Roles whose text the deployment wrote, not the user: injection guards do not scan them.
TRUSTED_ROLES = frozenset({"system", "developer"})


def request_slots(body: dict[str, Any]) -> list[TextSlot]:
    """The text slots of a parsed request body (chat, completions or embeddings)."""
    slots: list[TextSlot] = []
    messages = body.get("messages")
    if isinstance(messages, list):
        for index, message in enumerate(messages):
            if isinstance(message, dict):
                _message_slots(message, f"messages[{index}]", slots)
    kinds: tuple[tuple[str, SlotKind], ...] = (("prompt", "prompt"), ("input", "input"))
    for key, kind in kinds:
        value = body.get(key)
        if isinstance(value, str):
            slots.append(TextSlot(key, kind, None, value, True, body, key))
        elif isinstance(value, list):
            for index, item in enumerate(value):
                if isinstance(item, str):
                    slots.append(TextSlot(f"{key}[{index}]", kind, None, item, True, value, index))
    return slots


def response_slots(body: dict[str, Any]) -> list[TextSlot]:
    """The text slots of a whole (non-streamed) chat or completions response."""
    slots: list[TextSlot] = []
    choices = body.get("choices")
    if not isinstance(choices, list):
        return slots
    for index, choice in enumerate(choices):
        if not isinstance(choice, dict):
            continue
        path = f"choices[{index}]"
        message = choice.get("message")
        if isinstance(message, dict):
            _message_slots(message, f"{path}.message", slots)
        text = choice.get("text")
        if isinstance(text, str):
            slots.append(TextSlot(f"{path}.text", "content", None, text, True, choice, "text"))
    return slots


def _message_slots(message: dict[str, Any], path: str, slots: list[TextSlot]) -> None:
    role = message.get("role")
    role = role if isinstance(role, str) else None
    trusted = role in TRUSTED_ROLES
    kind: SlotKind = "tool_result" if role in ("tool", "function") else "content"
    content = message.get("content")
    if isinstance(content, str):
        slots.append(
            TextSlot(f"{path}.content", kind, role, content, not trusted, message, "content")
        )
    elif isinstance(content, list):
        for index, part in enumerate(content):
            if isinstance(part, dict) and isinstance(part.get("text"), str):
                part_path = f"{path}.content[{index}].text"
                slots.append(
                    TextSlot(part_path, kind, role, part["text"], not trusted, part, "text")
                )
    name = message.get("name")
    if isinstance(name, str):
        slots.append(TextSlot(f"{path}.name", "name", role, name, not trusted, message, "name"))
    refusal = message.get("refusal")
    if isinstance(refusal, str):
        slots.append(
            TextSlot(f"{path}.refusal", "refusal", role, refusal, True, message, "refusal")
        )
    calls = message.get("tool_calls")
    if isinstance(calls, list):
        for index, call in enumerate(calls):
            function = call.get("function") if isinstance(call, dict) else None
            if isinstance(function, dict) and isinstance(function.get("arguments"), str):
                call_path = f"{path}.tool_calls[{index}].function.arguments"
                slots.append(
                    TextSlot(
                        call_path,
                        "tool_arguments",
                        role,
                        function["arguments"],
                        True,
                        function,
                        "arguments",
                    )
                )
    legacy = message.get("function_call")
    if isinstance(legacy, dict) and isinstance(legacy.get("arguments"), str):
        slots.append(
            TextSlot(
                f"{path}.function_call.arguments",
                "tool_arguments",
                role,
                legacy["arguments"],
                True,
                legacy,
                "arguments",
            )
        )
