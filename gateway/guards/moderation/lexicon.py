"""The built-in moderation scorer: the rules of lexicon.yaml over folded text, OpenAI's categories.

Pure and synchronous. `matches(text)` names the rules a text triggers (on its fold, and on its
fold with leetspeak undone); `scores(names)` turns rules into category scores (independent
evidence per category, a parent at least as high as its refinements). `spans(text)` finds the
same matches with their places in the original text, for stream filtering; it computes the
character mapping only when something matched.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from importlib import resources
from typing import Any

import yaml

from gateway.guards.injection.folding import (
    LEET,
    despace_mapped,
    despace_words,
    fold,
    fold_mapped,
    has_leet,
    word_set,
)
from gateway.guards.moderation.categories import CATEGORIES, Category, with_parents
from gateway.guards.window import Span

_GAP = r"[\W_]{0,3}"
CACHED_MAX_CHARS = 16_384
_QUANTIFIED_SPACE = re.compile(r" (?=[*+?{])")
_GROUP_REF = re.compile(r"\{([a-z_]+)\}")


class LexiconError(ValueError):
    """The lexicon file is malformed (says where)."""


@dataclass(frozen=True, slots=True)
class LexiconRule:
    name: str
    categories: tuple[Category, ...]
    weight: float
    patterns: tuple[re.Pattern[str], ...]
    # Word groups: a text the rule can match holds a word of every group (a cheap pre-check).
    keys: tuple[frozenset[str], ...]

    def may_match(self, words: set[str]) -> bool:
        return all(not group.isdisjoint(words) for group in self.keys)

    def find(self, folded: str) -> list[tuple[int, int]]:
        """(start, end) of each match in `folded` that starts at a word boundary."""
        out: list[tuple[int, int]] = []
        for pattern in self.patterns:
            for match in pattern.finditer(folded):
                start = match.start()
                if start == 0 or not folded[start - 1].isalnum() or not folded[start].isalnum():
                    out.append((start, match.end()))
        return out


class Lexicon:
    def __init__(self, rules: list[LexiconRule]) -> None:
        self.rules = rules
        self.by_name = {rule.name: rule for rule in rules}
        self.keys = frozenset(key for rule in rules for group in rule.keys for key in group)
        self._longest_key = max(map(len, self.keys), default=1)
        # A chat history is mostly the same messages every turn: remember recent answers.
        self._remembered = functools.lru_cache(maxsize=4096)(self.matches)

    def matches(self, text: str) -> set[str]:
        """Names of the rules `text` triggers."""
        names: set[str] = set()
        for folded, joined in _variants(text):
            words = word_set(folded, self.keys, self._longest_key, joined)
            for rule in self.rules:
                if rule.name not in names and rule.may_match(words) and rule.find(folded):
                    names.add(rule.name)
        return names

    def matches_cached(self, text: str) -> set[str]:
        """`matches`, remembered for texts of up to CACHED_MAX_CHARS (don't mutate the set)."""
        if len(text) > CACHED_MAX_CHARS:
            return self.matches(text)
        return self._remembered(text)

    def scores(self, names: set[str] | list[str]) -> dict[str, float]:
        """Category -> score for a set of triggered rules (categories with no rule left out)."""
        remaining: dict[str, float] = {}
        for name in names:
            rule = self.by_name[name]
            for category in rule.categories:
                remaining[category] = remaining.get(category, 1.0) * (1.0 - rule.weight)
        return with_parents({c: round(1.0 - r, 4) for c, r in remaining.items()})

    def score(self, text: str) -> dict[str, float]:
        return self.scores(self.matches_cached(text))

    def spans(self, text: str) -> list[Span]:
        """Where in `text` rules match: disjoint spans labelled with the rule names in them."""
        if not self.matches_cached(text):
            return []
        found: list[tuple[int, int, str]] = []
        base, origin = fold_mapped(text)
        folded, origin = despace_mapped(base, origin)
        joined = despace_words(base)[1]
        variants = [folded]
        if has_leet(folded):
            variants.append(folded.translate(LEET))  # one character for one: same mapping
        for variant in variants:
            words = word_set(variant, self.keys, self._longest_key, joined)
            for rule in self.rules:
                if rule.may_match(words):
                    for start, end in rule.find(variant):
                        found.append((origin[start], origin[end - 1] + 1, rule.name))
        return _merge(found)


def _merge(found: list[tuple[int, int, str]]) -> list[Span]:
    """Overlapping matches become one span naming every rule in it."""
    spans: list[Span] = []
    names: set[str] = set()
    start = end = -1
    for s, e, name in sorted(found):
        if s < end:
            end = max(end, e)
            names.add(name)
            continue
        if end > start:
            spans.append(Span(start, end, ",".join(sorted(names))))
        start, end, names = s, e, {name}
    if end > start:
        spans.append(Span(start, end, ",".join(sorted(names))))
    return spans


def _variants(text: str) -> list[tuple[str, list[str]]]:
    """The text folded, and folded with leetspeak undone; each with the words despace joined."""
    folded = fold(text)
    variants = [despace_words(folded)]
    if has_leet(folded):
        variants.append(despace_words(folded.translate(LEET)))
    return variants


def parse_lexicon(data: Any, source: str = "lexicon") -> Lexicon:
    """A Lexicon from the parsed YAML document (see lexicon.yaml for the format)."""
    if not isinstance(data, dict) or not isinstance(data.get("rules"), list):
        raise LexiconError(f"{source}: needs 'groups' (a mapping) and 'rules' (a list)")
    groups = data.get("groups") or {}
    alternations: dict[str, str] = {}
    group_keys: dict[str, frozenset[str]] = {}
    for name, phrases in groups.items():
        if not isinstance(phrases, list) or not all(isinstance(p, str) for p in phrases):
            raise LexiconError(f"{source}: groups.{name} must be a list of phrases")
        # Longest first: the regex engine takes the first alternative that fits.
        ordered = sorted(phrases, key=len, reverse=True)
        alternations[name] = (
            "(?:" + "|".join(re.escape(p).replace(r"\ ", " ") for p in ordered) + ")"
        )
        group_keys[name] = frozenset(_key_word(phrase) for phrase in phrases)
    rules = [
        _parse_rule(entry, index, alternations, group_keys, source)
        for index, entry in enumerate(data["rules"])
    ]
    return Lexicon(rules)


def _parse_rule(
    entry: Any,
    index: int,
    alternations: dict[str, str],
    group_keys: dict[str, frozenset[str]],
    source: str,
) -> LexiconRule:
    where = f"{source}: rules[{index}]"
    if not isinstance(entry, dict):
        raise LexiconError(f"{where} must be a mapping")
    name = str(entry.get("name", f"rule_{index}"))
    categories = entry.get("categories")
    if not categories or any(c not in CATEGORIES for c in categories):
        raise LexiconError(f"{where} ({name}): categories must be among {', '.join(CATEGORIES)}")
    weight = entry.get("weight")
    if not isinstance(weight, int | float) or not 0 < weight <= 1:
        raise LexiconError(f"{where} ({name}): weight must be a number in (0, 1]")

    def expand(pattern: str) -> str:
        def group(match: re.Match[str]) -> str:
            if match.group(1) not in alternations:
                raise LexiconError(f"{where} ({name}): unknown group {{{match.group(1)}}}")
            return alternations[match.group(1)]

        source_text = _GROUP_REF.sub(group, pattern)
        return _QUANTIFIED_SPACE.sub(r"\\s", source_text).replace(" ", _GAP)

    try:
        patterns = tuple(
            re.compile(rf"(?:{expand(p)})(?![a-z0-9])") for p in entry.get("patterns") or []
        )
    except re.error as exc:
        raise LexiconError(f"{where} ({name}): bad pattern: {exc}") from None
    if not patterns:
        raise LexiconError(f"{where} ({name}): needs at least one pattern")
    keys: list[frozenset[str]] = []
    for item in entry.get("keys") or []:
        words: set[str] = set()
        for token in str(item).split():
            ref = _GROUP_REF.fullmatch(token)
            if ref is not None:
                if ref.group(1) not in group_keys:
                    raise LexiconError(f"{where} ({name}): unknown group {token} in keys")
                words |= group_keys[ref.group(1)]
            else:
                words.add(token)
        keys.append(frozenset(words))
    return LexiconRule(name, tuple(categories), float(weight), patterns, tuple(keys))


# Words too common to be worth a pre-check: a phrase is keyed by its longest other word.
_COMMON = frozenset(
    "a an the to of my i im ll ve re you u ur your do does can could would should will have"
    " having with for on in me is are am be going gonna want wanna just about ready need plan"
    " planning intend decided that this".split()
)


def _key_word(phrase: str) -> str:
    """The word of `phrase` that best rules it out when absent: its longest uncommon word."""
    words = re.findall(r"[a-z]+", phrase)
    rare = [word for word in words if word not in _COMMON]
    return max(rare, key=len) if rare else words[0]


@functools.cache
def default_lexicon() -> Lexicon:
    """The lexicon shipped with the package (parsed once per process)."""
    text = resources.files("gateway.guards.moderation").joinpath("lexicon.yaml").read_text()
    return parse_lexicon(yaml.safe_load(text), "gateway/guards/moderation/lexicon.yaml")
