"""spaCy for Presidio with only what Presidio uses: the tokenizer, and the NER when asked.

Presidio's own spaCy engine runs the whole pipeline (tok2vec, tagger, parser, attribute
ruler, lemmatizer, NER): about 66 ms for 1 KB on this project's CI CPU. Presidio needs entities
(NER) and, for context words, tokens and lemmas. So this engine loads the NER alone (in the
`core_web` models it has its own tok2vec), about 2.7x faster, and gives Presidio lower-cased
tokens as lemmas: Presidio matches context words by substring ("cards" contains "card"), so
that works as well as lemmas for it. Without NER entities to look for, only the tokenizer runs
(about 40 µs per KB). It never downloads a model: a missing one is a clear error.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, cast

import spacy
from presidio_analyzer.nlp_engine import NlpArtifacts, SpacyNlpEngine
from spacy.language import Language
from spacy.tokens import Doc

# Components Presidio does not need (the lemmatizer, and what it needs: tagger, attribute
# ruler; the parser only gives sentences and dependencies).
_UNNEEDED = ("tagger", "parser", "attribute_ruler", "lemmatizer", "senter", "morphologizer")


class NerSpacyNlpEngine(SpacyNlpEngine):
    """Presidio's `SpacyNlpEngine`, loading and running only the tokenizer and the NER."""

    def load(self) -> None:
        pipelines: dict[str, Language] = {}
        for model in self.models:
            self._validate_model_params(model)
            pipelines[model["lang_code"]] = load_ner_pipeline(model["model_name"])
        self.nlp = cast(Any, pipelines)

    def docs(self, texts: list[str], language: str, *, ner: bool) -> Iterator[Doc]:
        """One `Doc` per text: tokens only, or tokens and entities."""
        assert self.nlp is not None, "NerSpacyNlpEngine.load() first"
        nlp: Language = self.nlp[language]
        if not ner:
            return (nlp.make_doc(text) for text in texts)
        return (nlp(text) for text in texts)

    def artifacts(self, doc: Doc, language: str) -> NlpArtifacts:
        return self._doc_to_nlp_artifact(doc, language)

    def _doc_to_nlp_artifact(self, doc: Doc, language: str) -> NlpArtifacts:
        entities = list(doc.ents)
        score = self.ner_model_configuration.default_score
        scores = [0.85 if score is None else score] * len(entities)
        entities, scores = self._get_updated_entities(entities, scores)
        return NlpArtifacts(
            entities=entities,
            tokens=doc,
            tokens_indices=[token.idx for token in doc],
            lemmas=[token.lower_ for token in doc],
            nlp_engine=self,
            language=language,
            scores=scores,
        )


def load_ner_pipeline(model_name: str) -> Language:
    """The installed spaCy package `model_name` with only its tokenizer and NER (and the
    shared tok2vec, if its NER listens to one)."""
    if not spacy.util.is_package(model_name):
        raise ValueError(
            f"the spaCy model package {model_name!r} is not installed; install it with pip "
            "(models are never downloaded at run time)"
        )
    nlp = spacy.load(model_name, exclude=list(_UNNEEDED))
    if "ner" not in nlp.pipe_names:
        raise ValueError(f"the spaCy model {model_name!r} has no named-entity recognizer")
    for name in list(nlp.pipe_names):
        if name == "ner":
            continue
        pipe: Any = nlp.get_pipe(name)
        listeners = getattr(pipe, "listening_components", [])
        if "ner" not in listeners:
            nlp.remove_pipe(name)
    return nlp
