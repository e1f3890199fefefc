"""Local Hugging Face text classifiers for guards: loaded once per folder, run off the event loop.

Any sequence-classification model saved in a local folder (config.json, weights, tokenizer
files) works: a DeBERTa prompt-injection model, a toxicity model, a tiny test model. Nothing is
fetched (`local_files_only=True`). Each loaded model lives in a module-level cache keyed by its
folder and device, so guard instances and policy reloads share it, and runs on its own
single-thread executor: one inference at a time per model, and never on the event loop.
`labels` in the config maps the model's labels (names, or indices written as strings) to the
guard's categories; labels left out (SAFE, LEGIT...) count for nothing.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import Field, field_validator

from gateway.config.base import StrictModel


class ClassifierError(RuntimeError):
    """The model folder cannot be loaded as configured (says what to fix)."""


class ClassifierConfig(StrictModel):
    # A local folder with config.json, the weights and the tokenizer files.
    path: str = Field(min_length=1)
    # Model label (its name in config.json's id2label, or its index as a string) -> category.
    labels: dict[str, str] = Field(min_length=1)
    # Tokens per model input; longer chunks are truncated.
    max_length_tokens: int = Field(512, ge=8, le=8192)
    # Texts longer than this are scored in overlapping chunks; the highest score counts.
    chunk_chars: int = Field(2000, ge=64, le=1_000_000)
    batch_size: int = Field(8, ge=1, le=512)
    device: str = Field("cpu", pattern=r"^(cpu|mps|cuda(:[0-9]+)?)$")

    @field_validator("path")
    @classmethod
    def _local_folder(cls, value: str) -> str:
        folder = Path(value).expanduser()
        if not (folder / "config.json").is_file():
            raise ValueError(
                f"{value!r} is not a local model folder (no config.json in it); give the folder "
                "a model was saved to with save_pretrained(): nothing is downloaded"
            )
        return str(folder.resolve())


@dataclass(frozen=True, slots=True)
class _Loaded:
    tokenizer: Any
    model: Any
    labels: tuple[str, ...]
    multi_label: bool


class TextClassifier:
    """One model folder on one device: probabilities per label, computed in a worker thread."""

    def __init__(self, path: str, device: str) -> None:
        self.path = path
        self.device = device
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sluice-classifier")
        self._loaded: _Loaded | None = None

    @property
    def labels(self) -> tuple[str, ...]:
        """The model's labels in index order (empty until loaded)."""
        return self._loaded.labels if self._loaded is not None else ()

    async def load(self) -> None:
        """Load the model in the worker (once; later calls return at once)."""
        if self._loaded is None:
            await asyncio.get_running_loop().run_in_executor(self._executor, self._load_sync)

    async def predict(
        self, texts: Sequence[str], max_length_tokens: int, batch_size: int
    ) -> list[list[float]]:
        """Per text, the probability of each label (in `labels` order)."""
        if not texts:
            return []
        return await asyncio.get_running_loop().run_in_executor(
            self._executor, self._predict_sync, list(texts), max_length_tokens, batch_size
        )

    def _load_sync(self) -> _Loaded:
        if self._loaded is not None:
            return self._loaded
        # Imported here: transformers takes seconds to import and most policies need no model.
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        try:
            tokenizer = AutoTokenizer.from_pretrained(self.path, local_files_only=True)
            model = AutoModelForSequenceClassification.from_pretrained(
                self.path, local_files_only=True
            )
        except (OSError, ValueError, KeyError) as exc:
            raise ClassifierError(
                f"cannot load a sequence-classification model from {self.path}: {exc}"
            ) from exc
        model.to(self.device)
        model.eval()
        id2label = model.config.id2label
        labels = tuple(str(id2label[index]) for index in range(len(id2label)))
        multi = model.config.problem_type == "multi_label_classification"
        self._loaded = _Loaded(tokenizer, model, labels, multi)
        return self._loaded

    def _predict_sync(
        self, texts: list[str], max_length_tokens: int, batch_size: int
    ) -> list[list[float]]:
        import torch

        loaded = self._load_sync()
        out: list[list[float]] = []
        with torch.inference_mode():
            for start in range(0, len(texts), batch_size):
                batch = loaded.tokenizer(
                    texts[start : start + batch_size],
                    truncation=True,
                    max_length=max_length_tokens,
                    padding=True,
                    return_tensors="pt",
                ).to(self.device)
                logits = loaded.model(**batch).logits.float()
                probs = torch.sigmoid(logits) if loaded.multi_label else logits.softmax(dim=-1)
                out.extend(probs.cpu().tolist())
        return out

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)


# Shared by every guard instance and every policy generation: a model is loaded once.
_CACHE: dict[tuple[str, str], TextClassifier] = {}


def shared_classifier(path: str, device: str) -> TextClassifier:
    key = (path, device)
    found = _CACHE.get(key)
    if found is None:
        found = _CACHE[key] = TextClassifier(path, device)
    return found


class Classifier:
    """A guard's use of a model: its label mapping, chunking of long texts, category scores."""

    def __init__(self, config: ClassifierConfig) -> None:
        self.config = config
        self.model = shared_classifier(config.path, config.device)
        self._columns: list[tuple[int, str]] | None = None

    async def start(self) -> None:
        """Load the model (in its worker) and check the label mapping against it."""
        await self.model.load()
        self._columns = label_columns(self.config.labels, self.model.labels, self.config.path)

    async def scores(self, texts: Sequence[str]) -> list[dict[str, float]]:
        """Per text, category -> score: probabilities of labels mapped to one category add up."""
        if self._columns is None:
            await self.start()
        assert self._columns is not None
        pieces: list[str] = []
        owners: list[int] = []
        for index, text in enumerate(texts):
            for piece in chunks(text, self.config.chunk_chars):
                pieces.append(piece)
                owners.append(index)
        probabilities = await self.model.predict(
            pieces, self.config.max_length_tokens, self.config.batch_size
        )
        out: list[dict[str, float]] = [{} for _ in texts]
        for owner, row in zip(owners, probabilities, strict=True):
            sums: dict[str, float] = {}
            for column, category in self._columns:
                sums[category] = sums.get(category, 0.0) + row[column]
            best = out[owner]
            for category, value in sums.items():
                best[category] = max(best.get(category, 0.0), min(1.0, value))
        return out


def label_columns(
    mapping: dict[str, str], labels: Sequence[str], path: str
) -> list[tuple[int, str]]:
    """(label index, category) for each mapped label; unknown labels are a ClassifierError."""
    by_name = {label: index for index, label in enumerate(labels)}
    columns: list[tuple[int, str]] = []
    for key, category in mapping.items():
        index = by_name.get(key)
        if index is None and key.isdigit() and int(key) < len(labels):
            index = int(key)
        if index is None:
            raise ClassifierError(
                f"classifier labels: {key!r} is not a label of the model in {path} "
                f"(its labels: {', '.join(labels)}; an index like '1' works too)"
            )
        columns.append((index, category))
    return columns


def chunks(text: str, size: int) -> list[str]:
    """`text` cut into pieces of at most `size` characters that overlap by an eighth."""
    if len(text) <= size:
        return [text]
    step = size - max(1, size // 8)
    count = math.ceil((len(text) - size) / step) + 1
    return [text[i * step : i * step + size] for i in range(count)]
