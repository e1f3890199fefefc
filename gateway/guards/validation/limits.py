"""Request-shape limits: forbidden parameters, output tokens, message count, roles, sizes.

Pure functions over the parsed body and the texts that will go upstream; each returns the
`Breach` that blocks the request (which limit, and a reason naming the field), or None.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from gateway.usage import BYTES_PER_TOKEN, TOKENS_PER_MESSAGE

# The tokens that prime the reply after a chat's messages, as gateway/usage.py counts them.
REPLY_PRIMING_TOKENS = 3
# A completions prompt or embeddings input item: its text plus one token.
TOKENS_PER_ITEM = 1
OUTPUT_TOKEN_PARAMS = ("max_tokens", "max_completion_tokens")


@dataclass(frozen=True, slots=True)
class Breach:
    """A limit the request is over: `limit` is the policy key; `reason` names the field."""

    limit: str
    reason: str


@dataclass(frozen=True, slots=True)
class SizeCaps:
    max_message_chars: int | None = None
    max_total_chars: int | None = None
    max_message_tokens: int | None = None
    max_total_tokens: int | None = None

    @property
    def any(self) -> bool:
        return any(
            cap is not None
            for cap in (
                self.max_message_chars,
                self.max_total_chars,
                self.max_message_tokens,
                self.max_total_tokens,
            )
        )


def check_params(
    request: Mapping[str, Any], forbidden: Collection[str], max_output_tokens: int | None
) -> Breach | None:
    for param, value in request.items():
        if value is not None and param in forbidden:
            return Breach("forbidden_params", f"parameter '{param}' is not allowed by this policy")
    if max_output_tokens is not None:
        for param in OUTPUT_TOKEN_PARAMS:
            value = request.get(param)
            if isinstance(value, int) and value > max_output_tokens:
                return Breach(
                    "max_output_tokens",
                    f"{param}={value:,} is over the policy's limit "
                    f"(max_output_tokens={max_output_tokens:,})",
                )
    return None


def check_messages(
    messages: list[Any], max_messages: int | None, allowed_roles: Collection[str] | None
) -> Breach | None:
    if max_messages is not None and len(messages) > max_messages:
        return Breach(
            "max_messages",
            f"messages has {len(messages):,} messages; the limit is max_messages={max_messages:,}",
        )
    if allowed_roles is not None:
        for index, message in enumerate(messages):
            role = message.get("role") if isinstance(message, dict) else None
            if role not in allowed_roles:
                allowed = ", ".join(sorted(allowed_roles))
                return Breach(
                    "allowed_roles",
                    f"messages[{index}].role {role!r} is not allowed (allowed_roles: {allowed})",
                )
    return None


def message_key(path: str) -> str:
    """The message (or prompt item) of a slot: `messages[2].content[0].text` -> `messages[2]`."""
    dot = path.find(".")
    return path if dot < 0 else path[:dot]


def check_sizes(
    texts: Iterable[tuple[str, str]], chat_messages: int | None, caps: SizeCaps
) -> Breach | None:
    """Caps on `(path, text)` pairs, grouped by message.

    `chat_messages` is the chat's message count (each message costs framing tokens, text or
    not), or None for completions prompts and embeddings inputs.
    """
    groups: dict[str, list[Any]] = {}  # key -> [characters, first slot path, slots]
    total_chars = 0
    for path, text in texts:
        group = groups.get(key := message_key(path))
        if group is None:
            groups[key] = [len(text), path, 1]
        else:
            group[0] += len(text)
            group[2] += 1
        total_chars += len(text)
    framing = TOKENS_PER_MESSAGE if chat_messages is not None else TOKENS_PER_ITEM
    for key, (chars, first_path, slots) in groups.items():
        field = first_path if slots == 1 else key
        if caps.max_message_chars is not None and chars > caps.max_message_chars:
            return Breach(
                "max_message_chars",
                f"{field} has {chars:,} characters; "
                f"the limit is max_message_chars={caps.max_message_chars:,}",
            )
        tokens = chars // BYTES_PER_TOKEN + framing
        if caps.max_message_tokens is not None and tokens > caps.max_message_tokens:
            return Breach(
                "max_message_tokens",
                f"{field} has about {tokens:,} tokens (estimated); "
                f"the limit is max_message_tokens={caps.max_message_tokens:,}",
            )
    if caps.max_total_chars is not None and total_chars > caps.max_total_chars:
        return Breach(
            "max_total_chars",
            f"the request has {total_chars:,} characters of text; "
            f"the limit is max_total_chars={caps.max_total_chars:,}",
        )
    if caps.max_total_tokens is not None:
        if chat_messages is not None:
            total = total_chars // BYTES_PER_TOKEN + TOKENS_PER_MESSAGE * chat_messages
            total += REPLY_PRIMING_TOKENS
        else:
            total = sum(group[0] // BYTES_PER_TOKEN + TOKENS_PER_ITEM for group in groups.values())
        if total > caps.max_total_tokens:
            return Breach(
                "max_total_tokens",
                f"the request has about {total:,} tokens (estimated); "
                f"the limit is max_total_tokens={caps.max_total_tokens:,}",
            )
    return None
