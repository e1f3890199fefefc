"""Presidio's English recognizers, adjusted to run offline and to skip text that cannot match.

- Email: Presidio validates the domain with `tldextract.extract`, whose default extractor
  fetches the Public Suffix List over HTTP on first use. Ours uses the snapshot bundled with
  tldextract (no cache directory, no URLs), so nothing is ever fetched.
- Phone: Presidio runs python-phonenumbers' matcher over the whole text once per region (about
  13 ms per KB here, and 5 ms more per number in it). Ours finds digit runs with one regex and
  parses each run once per region until one says it is a valid number (Presidio's default
  leniency), skipping dates and runs glued to a word (`0x21650992`, `#3712665`); North
  American numbers written 3-3-4 with separators count even when their area code is
  unassigned (made-up and test numbers are still someone's data). A bare run of 7 or 8 digits
  (`3712665`: an order or ticket number as often as a local phone number) counts only after a
  phone word (`phone`, `tel`, `call`, `mobile`, `cell`, `fax`, `whatsapp`, `☎`), and then
  whether or not a region knows it.
- Credit card: Presidio's pattern misses Mastercard's 2-series and takes any 13 to 19 digits
  in loose groups; ours (cards.py) wants a known issuer range, that issuer's length, the usual
  groupings and the Luhn check.
- Email and URL: their patterns never cross whitespace, so they only run on the whitespace-free
  words that contain an `@` (email) or a `x.yz` (URL), not on the whole text.
Each keeps its Presidio name, so Presidio's context words raise their scores as usual.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any, ClassVar

import phonenumbers
import tldextract
from presidio_analyzer import AnalysisExplanation, EntityRecognizer, RecognizerResult
from presidio_analyzer.nlp_engine import NlpArtifacts
from presidio_analyzer.predefined_recognizers import (
    CreditCardRecognizer,
    EmailRecognizer,
    PhoneRecognizer,
    UrlRecognizer,
)
from presidio_analyzer.recognizer_registry import RecognizerRegistry

from gateway.guards.pii.cards import find_cards

# The bundled Public Suffix List snapshot: no cache directory, no download, ever.
OFFLINE_TLDS = tldextract.TLDExtract(cache_dir=None, suffix_list_urls=(), fallback_to_snapshot=True)

# A digit run never starts inside a word, a hex literal or an `#id`.
_PHONE_CANDIDATE = re.compile(r"(?<![0-9A-Za-z_#])[+(]?\d[\d \t().\-/]{5,}\d")
# Two numbers written side by side: "555-0100 / 555-0199".
_PHONE_GLUE = re.compile(r"\s+/\s+")
_PHONE_DIGITS = (7, 17)
# Bare digit runs this long are phone numbers only after a phone word.
_LOCAL_DIGITS = (7, 8)
_PHONE_WORD = re.compile(
    r"(?<![A-Za-z])(?:tel|tele?phones?|phones?|cell(?:phone|ular)?|mobile|mob|fax|whatsapp"
    r"|call(?:s|ed|ing)?)(?![A-Za-z])|[\u260e\U0001f4de\U0001f4f1]",
    re.IGNORECASE,
)
# How far before a number its phone word may stand ("Phone for the courier: ...").
_PHONE_WORD_CHARS = 40
_DATE_LIKE = re.compile(r"\d{4}[-/.]\d{1,2}[-/.]\d{1,2}|\d{1,2}[-/.]\d{1,2}[-/.]\d{2,4}")
_NANP = re.compile(
    r"(?<!\d)(?:\+?1[ .-]?)?(?:\([2-9]\d{2}\)[ .-]?|[2-9]\d{2}[ .-])\d{3}[ .-]\d{4}(?!\d)"
)
_DOMAIN_LIKE = re.compile(r"[A-Za-z0-9]\.[A-Za-z]{2}")
_WORD = re.compile(r"\S+")
# A number that passes its issuer's range, length and Luhn check is a card: Presidio's score
# for a validated match.
SCORE_VALID_CARD = 1.0


class _WordScoped:
    """Runs the Presidio pattern recognizer it is mixed into on each word holding `hint` only,
    each result moved back to its place in the text."""

    hint: ClassVar[str | re.Pattern[str]]
    default_name: ClassVar[str]

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("name", self.default_name)
        super().__init__(**kwargs)

    def analyze(
        self,
        text: str,
        entities: list[str],
        nlp_artifacts: NlpArtifacts | None = None,
        regex_flags: int | None = None,
    ) -> list[RecognizerResult]:
        analyze = super().analyze  # type: ignore[misc]
        return _in_words(text, self.hint, lambda word: analyze(word, entities, None, regex_flags))


class OfflineEmailRecognizer(_WordScoped, EmailRecognizer):
    hint, default_name = "@", "EmailRecognizer"

    def validate_result(self, pattern_text: str) -> bool:
        return OFFLINE_TLDS(pattern_text).fqdn != ""


class WordUrlRecognizer(_WordScoped, UrlRecognizer):
    hint, default_name = _DOMAIN_LIKE, "UrlRecognizer"


class FastPhoneRecognizer(PhoneRecognizer):
    name: str

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("name", "PhoneRecognizer")
        super().__init__(**kwargs)

    def analyze(
        self, text: str, entities: list[str], nlp_artifacts: NlpArtifacts | None = None
    ) -> list[RecognizerResult]:
        results: list[RecognizerResult] = []
        for candidate in _PHONE_CANDIDATE.finditer(text):
            base = candidate.start()
            pos = 0
            value = candidate.group()
            for piece in _PHONE_GLUE.split(value):
                start = value.index(piece, pos)
                pos = start + len(piece)
                for s, e, region in self._numbers(piece, text, base + start):
                    results.append(self._result(base + start + s, base + start + e, region))
        return results

    def _numbers(self, piece: str, text: str, at: int) -> list[tuple[int, int, str]]:
        """The numbers in `piece`, which starts at `at` in `text`."""
        digits = sum(c.isdigit() for c in piece)
        date = _DATE_LIKE.fullmatch(piece) is not None
        if _LOCAL_DIGITS[0] <= digits <= _LOCAL_DIGITS[1] and not date and piece[0] != "+":
            if _phone_word_before(text, at):
                return [(0, len(piece), "local")]
            if piece.isdigit():
                return []
        if not _PHONE_DIGITS[0] <= digits <= _PHONE_DIGITS[1] or date:
            return [(m.start(), m.end(), "US") for m in _NANP.finditer(piece)]
        for region in self.supported_regions:
            try:
                number = phonenumbers.parse(piece, region)
            except phonenumbers.NumberParseException:
                continue
            if phonenumbers.is_valid_number(number):
                found = phonenumbers.region_code_for_number(number) or region
                return [(0, len(piece), found)]
        return [(m.start(), m.end(), "US") for m in _NANP.finditer(piece)]

    def _result(self, start: int, end: int, region: str) -> RecognizerResult:
        return RecognizerResult(
            entity_type=self.supported_entities[0],
            start=start,
            end=end,
            score=self.SCORE,
            analysis_explanation=self._get_analysis_explanation(region),
            recognition_metadata={
                RecognizerResult.RECOGNIZER_NAME_KEY: self.name,
                RecognizerResult.RECOGNIZER_IDENTIFIER_KEY: self.id,
            },
        )


class CardRecognizer(CreditCardRecognizer):
    """Card numbers by issuer range, length, grouping and Luhn (cards.py); Presidio's context
    words and name, so its context boost and explanations work as for its own."""

    name: str

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("name", "CreditCardRecognizer")
        super().__init__(**kwargs)

    def analyze(
        self,
        text: str,
        entities: list[str],
        nlp_artifacts: NlpArtifacts | None = None,
        regex_flags: int | None = None,
    ) -> list[RecognizerResult]:
        metadata = {
            RecognizerResult.RECOGNIZER_NAME_KEY: self.name,
            RecognizerResult.RECOGNIZER_IDENTIFIER_KEY: self.id,
        }
        return [
            RecognizerResult(
                self.supported_entities[0],
                start,
                end,
                SCORE_VALID_CARD,
                analysis_explanation=AnalysisExplanation(
                    recognizer=self.name,
                    original_score=SCORE_VALID_CARD,
                    textual_explanation="issuer range, length and Luhn check digit",
                    validation_result=True,
                ),
                recognition_metadata=dict(metadata),
            )
            for start, end in find_cards(text)
        ]


_REPLACED: dict[type[EntityRecognizer], Callable[..., EntityRecognizer]] = {
    CreditCardRecognizer: CardRecognizer,
    EmailRecognizer: OfflineEmailRecognizer,
    PhoneRecognizer: FastPhoneRecognizer,
    UrlRecognizer: WordUrlRecognizer,
}


def registry_for(language: str, nlp_engine: Any) -> RecognizerRegistry:
    """Presidio's predefined recognizers for `language`, with the four above swapped in."""
    registry = RecognizerRegistry(supported_languages=[language])
    registry.load_predefined_recognizers(languages=[language], nlp_engine=nlp_engine)
    registry.recognizers = [
        _REPLACED[type(r)](supported_language=r.supported_language) if type(r) in _REPLACED else r
        for r in registry.recognizers
    ]
    return registry


def _phone_word_before(text: str, at: int) -> bool:
    return _PHONE_WORD.search(text, max(0, at - _PHONE_WORD_CHARS), at) is not None


def _in_words(text: str, hint: str | re.Pattern[str], analyze: Any) -> list[RecognizerResult]:
    """Runs `analyze` on each whitespace-free word of `text` that contains `hint` (a string or
    a pattern), with the results moved to their place in `text`."""
    found = hint in text if isinstance(hint, str) else hint.search(text) is not None
    if not found:
        return []
    results: list[RecognizerResult] = []
    for word in _WORD.finditer(text):
        value = word.group()
        if hint in value if isinstance(hint, str) else hint.search(value):
            for result in analyze(value):
                result.start += word.start()
                result.end += word.start()
                results.append(result)
    return results
