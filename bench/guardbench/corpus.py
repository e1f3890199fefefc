"""Messages for the latency runs: prose of a given size, and a 20-turn chat.

Seeded Faker prose with some personal data in it (a name, an email, a phone number every few
hundred bytes), as chat messages carry: the guards' cost depends on what they find, so a text
with nothing to find would flatter them. Every message is distinct, so no cache helps unless
the run means it to (the chat's history).
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

from faker import Faker

SYSTEM_PROMPT = (
    "You are a helpful assistant for the customer support team. Answer briefly, be polite, "
    "and never share internal ticket notes with the customer. If you are unsure, say so and "
    "suggest contacting a human agent."
)


class Prose:
    """Seeded text: `message(size_bytes)` is a fresh message of about that many UTF-8 bytes."""

    def __init__(self, seed: int) -> None:
        self.fake = Faker("en_US")
        self.fake.seed_instance(seed)
        self.rng = random.Random(seed)

    def sentence(self) -> str:
        fake, roll = self.fake, self.rng.random()
        if roll < 0.08:
            return f"Please forward this to {fake.name()} at {fake.email()}."
        if roll < 0.12:
            return f"You can call me on {fake.phone_number()} tomorrow morning."
        if roll < 0.15:
            return f"We are moving the team to {fake.city()} next quarter."
        return fake.sentence(nb_words=self.rng.randint(6, 16))

    def message(self, size_bytes: int) -> str:
        parts: list[str] = []
        size = 0
        while size < size_bytes:
            sentence = self.sentence()
            parts.append(sentence)
            size += len(sentence.encode()) + 1
        text = " ".join(parts)
        return _cut(text, size_bytes)


def _cut(text: str, size_bytes: int) -> str:
    """`text` cut to at most `size_bytes` UTF-8 bytes, at a space when one is near the end."""
    raw = text.encode()[:size_bytes]
    cut = raw.decode(errors="ignore")
    space = cut.rfind(" ", max(0, len(cut) - 24))
    return cut[:space] if space > 0 else cut


def chat_body(messages: list[dict[str, str]]) -> dict[str, Any]:
    return {"model": "bench", "messages": messages, "max_tokens": 256}


def user_body(text: str) -> dict[str, Any]:
    return chat_body([{"role": "user", "content": text}])


@dataclass(frozen=True, slots=True)
class Conversation:
    """A chat: the system prompt, then user and assistant turns taking turns."""

    turns: tuple[tuple[str, str], ...]  # (user, assistant) per turn

    def request(self, turn: int) -> dict[str, Any]:
        """The body the client sends at `turn` (1-based): all earlier turns, then the new one."""
        messages = [{"role": "system", "content": SYSTEM_PROMPT}]
        for user, assistant in self.turns[: turn - 1]:
            messages.append({"role": "user", "content": user})
            messages.append({"role": "assistant", "content": assistant})
        messages.append({"role": "user", "content": self.turns[turn - 1][0]})
        return chat_body(messages)


def conversation(prose: Prose, turns: int) -> Conversation:
    """User turns of 100 to 600 bytes, answers of 200 to 1,000."""
    rng = prose.rng
    return Conversation(
        tuple(
            (prose.message(rng.randint(100, 600)), prose.message(rng.randint(200, 1000)))
            for _ in range(turns)
        )
    )
