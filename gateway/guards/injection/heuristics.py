"""The heuristic prompt-injection detector: a pure function from text to a score in [0, 1].

Rules look for instruction-override phrasing, role-play jailbreaks and system-prompt extraction
on the folded text (see folding.py), then again on whatever base64, hex, rot13 or reversed text
decodes to. Each rule has a weight; the score combines the rules that fired as independent
evidence (1 - product of (1 - weight)), so one strong phrase or several weak ones cross a
threshold. A phrase only quoted while the text talks about attacks (security questions,
documentation) counts for less than the same phrase addressed to the model.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass

from gateway.guards.injection.broad_rules import BROAD_RULES
from gateway.guards.injection.decoding import decoded_segments
from gateway.guards.injection.folding import LEET, despace, fold, has_leet, word_set
from gateway.guards.injection.paraphrase_rules import PARAPHRASE_RULES
from gateway.guards.injection.rule import OBFUSCATION
from gateway.guards.injection.rules import RULES as CORE_RULES

# The core table first: rules written against known attacks, then the looser families.
RULES = CORE_RULES + BROAD_RULES + PARAPHRASE_RULES

# Talk about attacks (questions, documentation, red-team notes) rather than an attack.
_DISCUSSION = re.compile(
    r"prompt injection|jailbreak|red.?team|security|attack|malicious|adversar|defen[cd]|detect"
    r"|protect|mitigat|sanitiz|example|phrases? like|such as|filter|string|regex|detector"
    r"|classifier|unit test|test case|dataset"
)
# Reported speech: "attackers tell the model to ...", a third party being told, not this model.
_REPORTED = re.compile(
    r"(?:tells?|telling|told|instructs?|asks?|asking|tricks?|tricking|convinces?|makes?|get|gets)"
    r" (?:the |a |an |your |our |my )?(?:model|llm|ai|bot|chatbot|assistant|agent|system|gpt|it)"
    r" (?:to|into) ?$"
)
# Digits or symbols that stand for letters ("1gn0re", "pr3v10us").
_LEET_RUN = re.compile(r"[013457@$]+(?=[a-z])")
ALL_KEYS = frozenset(key for rule in RULES for group in rule.keys for key in group)
_LONGEST_KEY = max(map(len, ALL_KEYS))
DISCUSSION_FACTOR = 0.4
# An instruction found inside encoded text is more suspicious than the same words in plain text.
DECODED_BONUS = 0.05
MAX_DEPTH = 2


@dataclass(frozen=True, slots=True)
class Finding:
    rule: str
    category: str
    weight: float
    # "plain", or the encodings undone to find it ("base64", "base64>rot13"...).
    via: str


@dataclass(frozen=True, slots=True)
class Detection:
    score: float
    findings: tuple[Finding, ...]

    def categories(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for finding in self.findings:
            counts[finding.category] = counts.get(finding.category, 0) + 1
            if finding.via != "plain":
                counts[OBFUSCATION] = counts.get(OBFUSCATION, 0) + 1
        return counts


def detect(text: str) -> Detection:
    """Score `text` as a prompt injection (pure; see the module docstring)."""
    findings: dict[str, Finding] = {}
    _scan(text, "plain", 0, findings)
    score = 1.0
    for finding in findings.values():
        score *= 1.0 - finding.weight
    return Detection(round(1.0 - score, 4), tuple(findings.values()))


def detect_cached(text: str) -> Detection:
    """`detect`, remembered: a chat history is mostly the same messages again every turn.
    Texts over CACHED_MAX_CHARS are scored afresh, so the cache stays small."""
    if len(text) > CACHED_MAX_CHARS:
        return detect(text)
    return _detect_remembered(text)


CACHED_MAX_CHARS = 16_384
_detect_remembered = functools.lru_cache(maxsize=4096)(detect)


def _scan(text: str, via: str, depth: int, findings: dict[str, Finding]) -> None:
    folded = despace(fold(text))
    words = _words(folded)
    _match_rules(folded, words, via, findings)
    if has_leet(folded) and _leet_word(folded):
        leet = despace(folded.translate(LEET))
        _match_rules(leet, _words(leet), "leet" if via == "plain" else via, findings)
    if depth >= MAX_DEPTH:
        return
    for segment in decoded_segments(text, folded, words):
        nested = segment.encoding if via == "plain" else f"{via}>{segment.encoding}"
        _scan(segment.text, nested, depth + 1, findings)


def _match_rules(folded: str, words: set[str], via: str, findings: dict[str, Finding]) -> None:
    discussed: bool | None = None  # looked up on the first match only
    for rule in RULES:
        if not rule.may_match(words):
            continue
        weight = 0.0
        for start in rule.matches(folded):
            here = rule.weight
            if discussed is None:
                discussed = _DISCUSSION.search(folded) is not None
            if (discussed and _mentioned(folded, start)) or _reported(folded, start):
                here *= DISCUSSION_FACTOR
            if via != "plain":
                here = min(1.0, here + DECODED_BONUS)
            weight = max(weight, here)
            if weight >= rule.weight:
                break
        if weight > 0.0:
            known = findings.get(rule.name)
            if known is None or weight > known.weight:
                findings[rule.name] = Finding(rule.name, rule.category, weight, via)


def _leet_word(folded: str) -> bool:
    """Whether a word of `folded` has a digit or symbol standing in for a letter."""
    for match in _LEET_RUN.finditer(folded):
        start = match.start()
        before = folded[start - 1] if start else " "
        if before.isalpha() or (
            not before.isalnum() and folded[match.end() + 1 : match.end() + 2].isalpha()
        ):
            return True
    return False


def _words(folded: str) -> set[str]:
    return word_set(folded, ALL_KEYS, _LONGEST_KEY)


def _mentioned(folded: str, start: int) -> bool:
    """Whether the phrase at `start` is quoted or reported rather than said to the model."""
    if folded.count('"', 0, start) % 2 == 1 or folded.count("`", 0, start) % 2 == 1:
        return True
    return start > 0 and folded[start - 1] == "'"


def _reported(folded: str, start: int) -> bool:
    """Whether the phrase at `start` is what someone tells another model ("tell the model to")."""
    return _REPORTED.search(folded, max(0, start - 60), start) is not None
