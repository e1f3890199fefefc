"""A request's pseudonyms: stable placeholders such as `<PERSON_1>` for the PII it carried, and
putting the originals back into the answer, whole (`restore`) or as it streams (`restorer`).

Clients resend a conversation's whole history every turn, so numbering placeholders in the
order values first appear gives the same value the same placeholder in every turn.

What is restored: the exact placeholder `<PERSON_1>`; the same inside angle brackets with
another letter case or up to three spaces or tabs around it (`< person_1 >`), or a space for
the underscore (`<PERSON 1>`); and the bare uppercase `PERSON_1` as a whole word (models often
drop the brackets). Only placeholders this request made are restored; anything else that looks
like one (`<PERSON_9>`, `<Person-1>`, `[[PERSON_1]]`'s brackets) is left as it is.
"""

from __future__ import annotations

import re

from gateway.guards.base import StreamFilter

# Angle-bracket forms are at most 1 + 3 + 41 + 1 + 6 + 3 + 1 characters long.
_ANGLE = r"<[ \t]{0,3}([A-Za-z][A-Za-z0-9_]{0,40})[_ ]([0-9]{1,6})[ \t]{0,3}>"
_BARE = r"(?<![A-Za-z0-9_])([A-Z][A-Z0-9_]{0,40})_([0-9]{1,6})(?![A-Za-z0-9_])"
_PLACEHOLDER = re.compile(f"{_ANGLE}|{_BARE}")
_ANGLE_MAX = 56
# A bare placeholder is one whole word of at most 1 + 40 + 1 + 6 characters.
_BARE_MAX = 48
# What may follow a "<" that could still grow into an angle-bracket placeholder.
_ANGLE_PREFIX = re.compile(r"<[A-Za-z0-9_ \t]*\Z")
# The trailing word of a text (a bare placeholder is always one whole word).
_LAST_WORD = re.compile(r"[A-Za-z0-9_]+\Z")
_FIRST_WORD = re.compile(r"[A-Za-z0-9_]+")
_LABEL_CHARS = re.compile(r"[^A-Z0-9_]+")


class Pseudonyms:
    """One request's placeholders. Built by the pipeline, shared by its guards and restorer."""

    __slots__ = ("_by_value", "_counts", "_originals")

    def __init__(self) -> None:
        self._by_value: dict[tuple[str, str], str] = {}
        self._originals: dict[tuple[str, int], str] = {}
        self._counts: dict[str, int] = {}

    def placeholder(self, entity_type: str, original: str) -> str:
        """`<TYPE_n>` for `original`: the same one every time this value is seen."""
        label = _label(entity_type)
        key = (label, original)
        found = self._by_value.get(key)
        if found is not None:
            return found
        number = self._counts.get(label, 0) + 1
        self._counts[label] = number
        placeholder = f"<{label}_{number}>"
        self._by_value[key] = placeholder
        self._originals[(label, number)] = original
        return placeholder

    def known(self, entity_type: str, original: str) -> bool:
        """Whether `original` was pseudonymized in this request (the client sent it)."""
        return (_label(entity_type), original) in self._by_value

    def restore(self, text: str) -> str:
        """`text` with every placeholder of this request replaced by its original."""
        if not self._originals or ("<" not in text and "_" not in text):
            return text
        return _PLACEHOLDER.sub(self._original, text)

    def restorer(self) -> StreamFilter:
        """A stream filter that restores placeholders, also those cut across chunks."""
        return Restorer(self)

    def __len__(self) -> int:
        return len(self._originals)

    def _original(self, match: re.Match[str]) -> str:
        if match.group(1) is not None:
            key = (match.group(1).upper(), int(match.group(2)))
        else:
            key = (match.group(3), int(match.group(4)))
        return self._originals.get(key, match.group(0))


class Restorer:
    """Restores placeholders in a stream; holds back only what could still become one.

    That is a trailing "<" with up to `_ANGLE_MAX` placeholder characters after it, or a
    trailing word short enough to be a bare placeholder. Joining every `feed` and the `flush`
    gives exactly `Pseudonyms.restore` of the whole text, wherever the chunks were cut.
    """

    __slots__ = ("_held", "_in_word", "_pseudonyms")

    def __init__(self, pseudonyms: Pseudonyms) -> None:
        self._pseudonyms = pseudonyms
        self._held = ""
        # Whether the last character let out is a word character: then the next piece's
        # first word continues that word, and no bare placeholder can start there.
        self._in_word = False

    def feed(self, text: str) -> str:
        if not text:
            return ""
        text = self._held + text
        cut = _hold_from(text, self._in_word)
        self._held = text[cut:]
        return self._release(text[:cut]) if cut else ""

    def flush(self) -> str:
        held, self._held = self._held, ""
        return self._release(held) if held else ""

    def _release(self, text: str) -> str:
        start = 0
        if self._in_word:
            leading = _FIRST_WORD.match(text)
            start = leading.end() if leading else 0
        self._in_word = _is_word(text[-1])
        return text[:start] + self._pseudonyms.restore(text[start:])


def _hold_from(text: str, continues_word: bool) -> int:
    """Where the part of `text` that could still grow into a placeholder begins."""
    cut = len(text)
    angle = text.rfind("<", max(0, len(text) - _ANGLE_MAX))
    if angle >= 0 and _ANGLE_PREFIX.match(text, angle):
        cut = angle
    word = _LAST_WORD.search(text)
    if (
        word is not None
        and word.end() - word.start() <= _BARE_MAX
        and not (continues_word and word.start() == 0)
    ):
        cut = min(cut, word.start())
    return cut


def _is_word(char: str) -> bool:
    return char.isascii() and (char.isalnum() or char == "_")


def _label(entity_type: str) -> str:
    return _LABEL_CHARS.sub("_", entity_type.upper()).strip("_") or "PII"
