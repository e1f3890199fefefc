"""OpenAI's moderation categories, and which ones are refinements of which."""

from __future__ import annotations

from typing import Literal, get_args

Category = Literal[
    "harassment",
    "harassment/threatening",
    "hate",
    "hate/threatening",
    "illicit",
    "illicit/violent",
    "self-harm",
    "self-harm/intent",
    "self-harm/instructions",
    "sexual",
    "sexual/minors",
    "violence",
    "violence/graphic",
]

CATEGORIES: tuple[Category, ...] = get_args(Category)

# A refinement implies its parent: a parent scores at least what its refinements score.
PARENT: dict[str, Category] = {
    "harassment/threatening": "harassment",
    "hate/threatening": "hate",
    "illicit/violent": "illicit",
    "self-harm/intent": "self-harm",
    "self-harm/instructions": "self-harm",
    "sexual/minors": "sexual",
    "violence/graphic": "violence",
}


def with_parents(scores: dict[str, float]) -> dict[str, float]:
    """`scores` with each parent raised to its highest refinement."""
    out = dict(scores)
    for child, parent in PARENT.items():
        value = out.get(child, 0.0)
        if value > out.get(parent, 0.0):
            out[parent] = value
    return out
