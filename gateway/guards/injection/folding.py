"""Text folds that undo cheap obfuscation before patterns are matched.

`fold` lowercases and maps look-alikes to plain Latin letters: compatibility forms (fullwidth,
mathematical letters) and accents through NFKD, Cyrillic and Greek homoglyphs through a table;
zero-width, bidi and other invisible characters are dropped and Unicode "tag" characters (used to
smuggle invisible ASCII) become the ASCII they encode. `despace` joins letters spelled out one by
one ("i g n o r e", "k.i.l.l"). Both have `_mapped` twins that also say, for every output
character, which input character it came from, so matches can be located in the original text.
"""

from __future__ import annotations

import re
import unicodedata

# Cyrillic and Greek letters drawn like Latin ones (both cases; the result is lowercased anyway).
_HOMOGLYPHS = {
    **dict.fromkeys("аАαΑ", "a"),  # noqa: RUF001
    **dict.fromkeys("вВβΒ", "b"),
    **dict.fromkeys("сСϲϹ", "c"),  # noqa: RUF001
    **dict.fromkeys("ԁ", "d"),  # noqa: RUF001
    **dict.fromkeys("еЕєЄεΕ", "e"),
    **dict.fromkeys("ɡ", "g"),  # noqa: RUF001
    **dict.fromkeys("һНΗ", "h"),  # noqa: RUF001
    **dict.fromkeys("іІїЇιΙӏӀ", "i"),
    **dict.fromkeys("јЈϳ", "j"),  # noqa: RUF001
    **dict.fromkeys("кКκΚ", "k"),
    **dict.fromkeys("мМΜ", "m"),
    **dict.fromkeys("пΝ", "n"),
    **dict.fromkeys("оОοΟ", "o"),  # noqa: RUF001
    **dict.fromkeys("рРρΡ", "p"),  # noqa: RUF001
    **dict.fromkeys("ԛ", "q"),  # noqa: RUF001
    **dict.fromkeys("ѕЅ", "s"),  # noqa: RUF001
    **dict.fromkeys("тТτΤ", "t"),
    **dict.fromkeys("υ", "u"),  # noqa: RUF001
    **dict.fromkeys("ѵν", "v"),  # noqa: RUF001
    **dict.fromkeys("ԝ", "w"),  # noqa: RUF001
    **dict.fromkeys("хХχΧ", "x"),
    **dict.fromkeys("уУγΥ", "y"),  # noqa: RUF001
    **dict.fromkeys("Ζ", "z"),  # noqa: RUF001
    # Typographic quotes and apostrophes, so patterns need only the ASCII ones.
    **dict.fromkeys("\u2018\u2019\u201a\u201b\u2032\u02bc", "'"),
    **dict.fromkeys("\u201c\u201d\u201e\u201f\u00ab\u00bb\u2033", '"'),
}

_INVISIBLE_RANGES = (
    (0x00AD, 0x00AD),
    (0x034F, 0x034F),
    (0x061C, 0x061C),
    (0x115F, 0x1160),
    (0x17B4, 0x17B5),
    (0x180B, 0x180E),
    (0x200B, 0x200F),
    (0x202A, 0x202E),
    (0x2060, 0x206F),
    (0x3164, 0x3164),
    (0xFE00, 0xFE0F),
    (0xFEFF, 0xFEFF),
    (0xFFA0, 0xFFA0),
    (0xE0000, 0xE001F),
    (0xE007F, 0xE01EF),
)
INVISIBLE = frozenset(cp for low, high in _INVISIBLE_RANGES for cp in range(low, high + 1))


def _fold_char(char: str) -> str:
    cp = ord(char)
    if cp in INVISIBLE:
        return ""
    if 0xE0020 <= cp <= 0xE007E:  # a tag character: the ASCII it shadows
        return chr(cp - 0xE0000).lower()
    out = []
    for part in unicodedata.normalize("NFKD", char):
        if unicodedata.combining(part):
            continue
        out.append(_HOMOGLYPHS.get(part, part))
    return "".join(out).lower()


class _FoldTable(dict[int, str]):
    """`str.translate` table filled on first sight of each character (then a C-level lookup)."""

    def __missing__(self, cp: int) -> str:
        folded = self[cp] = _fold_char(chr(cp))
        return folded


_TABLE = _FoldTable()


def fold(text: str) -> str:
    """Lowercased, with look-alikes, accents and invisible characters folded (see module doc)."""
    if text.isascii():
        return text.lower()
    return text.translate(_TABLE)


def fold_mapped(text: str) -> tuple[str, list[int]]:
    """`fold(text)` and, for each of its characters, the index in `text` it came from."""
    if text.isascii():
        return text.lower(), list(range(len(text)))
    parts: list[str] = []
    origin: list[int] = []
    for index, char in enumerate(text):
        folded = _TABLE[ord(char)]
        parts.append(folded)
        origin.extend([index] * len(folded))
    return "".join(parts), origin


# Three or more single letters (or digits), each followed by exactly one separator.
_SPELLED = re.compile(r"(?<![^\W_])[^\W_](?:[ .\-_*·][^\W_](?![^\W_])){2,}")
_SPELL_SEPARATORS = str.maketrans("", "", " .-_*·")


def despace(text: str) -> str:
    """Letters spelled out one by one ("k i l l", "i.g.n.o.r.e") joined into words."""
    return despace_words(text)[0]


def despace_words(text: str) -> tuple[str, list[str]]:
    """`despace(text)`, and the words it made by joining letters."""
    joined: list[str] = []

    def join(match: re.Match[str]) -> str:
        word = match.group().translate(_SPELL_SEPARATORS)
        joined.append(word)
        return word

    return _SPELLED.sub(join, text), joined


def despace_mapped(text: str, origin: list[int]) -> tuple[str, list[int]]:
    """`despace(text)` with `origin` carried along (separators dropped from it too)."""
    parts: list[str] = []
    mapped: list[int] = []
    pos = 0
    for match in _SPELLED.finditer(text):
        parts.append(text[pos : match.start()])
        mapped.extend(origin[pos : match.start()])
        for index in range(match.start(), match.end(), 2):
            parts.append(text[index])
            mapped.append(origin[index])
        pos = match.end()
    parts.append(text[pos:])
    mapped.extend(origin[pos:])
    return "".join(parts), mapped


# Digits and symbols standing in for letters ("k1ll", "h4te", "$uicide").
LEET = str.maketrans(
    {"0": "o", "1": "i", "3": "e", "4": "a", "5": "s", "7": "t", "@": "a", "$": "s"}
)
LEET_CHARS = frozenset("013457@$")


def has_leet(text: str) -> bool:
    return not LEET_CHARS.isdisjoint(text)


def word_set(
    text: str, keys: frozenset[str], longest_key: int, joined: list[str] | None = None
) -> set[str]:
    """The words (letter runs) of folded `text`, plus any of `keys` hidden inside a word of
    twelve letters or more, or inside a word `despace` `joined`: letters run together
    ("killyourself", "p.i.p.e.b.o.m.b") still meet their keys."""
    words = set(_WORD.findall(text))
    suspects = {word for word in words if len(word) >= _RUN_TOGETHER}
    if joined:
        suspects.update(_WORD.findall(" ".join(joined)))
    for word in suspects:
        size = len(word)
        for start in range(size - 1):
            for end in range(start + 2, min(size, start + longest_key) + 1):
                if word[start:end] in keys:
                    words.add(word[start:end])
    return words


_WORD = re.compile(r"[a-z]+")
# Shorter words are left alone: plain English, and too short to hide two keys in.
_RUN_TOGETHER = 12
