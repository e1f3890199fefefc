"""What an injection rule is, and the vocabulary the rule tables share (rules.py, broad_rules.py,
paraphrase_rules.py; heuristics.py runs them).

Each rule is a weighted pattern over folded text (folding.py): instruction override, role-play
jailbreaks, system-prompt extraction. A space in a pattern is a word gap of up to three
non-letters or none (spelled-out letters are joined before matching); a quantified space
("a ?b") is plain optional whitespace. Weights say how sure one match alone makes us.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

OVERRIDE = "override"
ROLEPLAY = "roleplay"
EXTRACTION = "extraction"
OBFUSCATION = "obfuscation"

# Between two words: spaces or punctuation, or nothing at all once spelled-out letters are joined.
_ = r"[\W_]{0,3}"
_QUANTIFIED_SPACE = re.compile(r" (?=[*+?{])")


@dataclass(frozen=True, slots=True)
class Rule:
    name: str
    category: str
    weight: float
    pattern: re.Pattern[str]
    # Word groups: a text the rule can match holds a word of every group. Checking that first
    # is cheap, and spares most texts most patterns.
    keys: tuple[frozenset[str], ...]

    def may_match(self, words: set[str]) -> bool:
        return all(not group.isdisjoint(words) for group in self.keys)

    def matches(self, folded: str) -> Iterator[int]:
        """Where in `folded` the rule matches, at a word's start."""
        for match in self.pattern.finditer(folded):
            start = match.start()
            if start == 0 or not folded[start - 1].isalnum() or not folded[start].isalnum():
                yield start


def word_set(words: str) -> frozenset[str]:
    return frozenset(words.split())


def rule(
    name: str, category: str, weight: float, pattern: str, keys: tuple[str | frozenset[str], ...]
) -> Rule:
    # A space is a word gap; a quantified space ("a ?b") is plain optional whitespace.
    source = _QUANTIFIED_SPACE.sub(r"\\s", pattern).replace(" ", _)
    # No look-behind in front: a pattern that starts with its words lets the regex engine skip
    # straight to where their first letters are. `Rule.matches` checks the left edge instead.
    compiled = re.compile(rf"(?:{source})(?![a-z0-9])")
    groups = tuple(word_set(group) if isinstance(group, str) else group for group in keys)
    return Rule(name, category, weight, compiled, groups)


IGNORE = (
    r"(?:ignore|disregard|forget|skip|bypass|override|overlook|abandon|neglect|discard|erase|drop"
    r"|set aside|put aside|throw out|throw away|ditch|scrap|never ?mind)"
)
EARLIER = (
    r"(?:previous|prior|preceding|above|earlier|former|original|initial|foregoing|old|existing"
    r"|system|default|given|current|your|all)"
)
RULES_NOUN = (
    r"(?:instructions?|prompts?|directions?|directives?|rules|guidelines|commands|orders"
    r"|programming|constraints|restrictions|guardrails|policies|safeguards|system prompt"
    r"|context|training|conditioning|guidance|persona|role)"
)
REVEAL = (
    r"(?:repeat|print|output|show|reveal|display|tell|write out|give|spell out|dump|leak|echo"
    r"|copy|paste|recite|share|list|disclose|type out|return)"
)
IGNORE_KEYS = word_set(
    "ignore disregard forget skip bypass override overlook abandon neglect discard erase drop"
    " aside throw ditch scrap nevermind mind"
)
NOUN_KEYS = word_set(
    "instruction instructions prompt prompts direction directions directive directives rules"
    " guidelines commands orders programming constraints restrictions guardrails policies"
    " safeguards context training conditioning guidance persona role"
)
AI_KEYS = word_set(
    "ai assistant model llm chatbot bot gpt chatgpt agent language assistants models llms"
    " chatbots bots agents"
)
REVEAL_KEYS = word_set(
    "repeat print output show reveal display tell write give spell dump leak echo copy paste"
    " recite share list disclose type return"
)
LIMIT_KEYS = word_set(
    "restrictions rules limits limitations filters guidelines ethics morals policies programming"
    " constraints censorship"
)
AI = r"(?:(?:ai |llm )?(?:ai|assistant|model|llm|chatbot|bot|gpt|chatgpt|agent|language model))"
