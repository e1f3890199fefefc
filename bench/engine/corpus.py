"""Text-like prompts: paragraphs of words from the model's own vocabulary, tokenised.

Prompts then hold ordinary word and punctuation tokens in a skewed mix, not one repeated id.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable, Sequence

# How a byte-level BPE vocabulary (GPT-2, Llama 3, SmolLM2) marks a word that follows a space.
_SPACE_MARK = "Ġ"


def vocabulary_words(vocab: dict[str, int], min_letters: int = 2) -> list[str]:
    """Whole lowercase words of the vocabulary, most frequent first (BPE ids follow merge order)."""
    words = [
        (token_id, token[1:])
        for token, token_id in vocab.items()
        if token.startswith(_SPACE_MARK)
        and len(token) > min_letters
        and token[1:].isascii()
        and token[1:].isalpha()
        and token[1:].islower()
    ]
    return [word for _id, word in sorted(words)]


class TextSource:
    """Token ids of fresh random text, from a word list and the tokenizer's encode()."""

    def __init__(self, words: Sequence[str], encode: Callable[[str], list[int]]) -> None:
        if len(words) < 100:
            raise ValueError(f"need at least 100 vocabulary words, got {len(words)}")
        self.words = list(words)
        self.encode = encode

    def tokens(self, rng: random.Random, n: int) -> list[int]:
        """Exactly n token ids: whole paragraphs, the last one cut at n tokens."""
        ids: list[int] = []
        while len(ids) < n:
            ids.extend(self.encode(self.paragraph(rng)))
        return ids[:n]

    def paragraph(self, rng: random.Random) -> str:
        sentences = (self._sentence(rng) for _ in range(rng.randint(3, 7)))
        return " ".join(sentences) + "\n\n"

    def _sentence(self, rng: random.Random) -> str:
        words = [self._word(rng) for _ in range(rng.randint(5, 18))]
        if len(words) > 8 and rng.random() < 0.4:
            words[rng.randrange(3, len(words) - 2)] += ","
        words[0] = words[0].capitalize()
        return " ".join(words) + rng.choice(".....?!")

    def _word(self, rng: random.Random) -> str:
        # A skewed pick: low ids (frequent words) far more often, as in real text.
        return self.words[int(len(self.words) * rng.random() ** 3)]


def text_source(vocab: dict[str, int], encode: Callable[[str], list[int]]) -> TextSource:
    return TextSource(vocabulary_words(vocab), encode)


def distinct_ids(prompts: Iterable[Sequence[int]]) -> int:
    """How many different token ids the prompts use (a check that they look like text)."""
    return len({token for prompt in prompts for token in prompt})
