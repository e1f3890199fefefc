"""Text to token ids and back, and chat messages to a prompt, for one model folder.

A thin wrapper over the folder's transformers tokenizer that never reaches for a model hub.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from backend.model_config import ModelLoadError

_TOKENIZER_FILES = ("tokenizer.json", "tokenizer.model", "vocab.json")


class Tokenizer:
    """The model's tokenizer with the few calls the engine makes, all on plain lists of ids."""

    __slots__ = (
        "_backend",
        "_hf",
        "bos_token_id",
        "eos_token_ids",
        "special_token_ids",
        "vocab_size",
    )

    def __init__(self, hf: Any) -> None:
        self._hf = hf
        # Fast tokenizers decode in Rust; the Python wrapper costs several times more per call,
        # and the detokenizer decodes twice per generated token.
        self._backend = getattr(hf, "backend_tokenizer", None)
        self.vocab_size: int = len(hf)
        self.bos_token_id: int | None = hf.bos_token_id
        eos = hf.eos_token_id
        self.eos_token_ids: tuple[int, ...] = () if eos is None else (int(eos),)
        # The ids `decode(..., skip_special_tokens=True)` drops: for a fast tokenizer, every added
        # token flagged special (SmolLM2 has 17, only 3 of them named bos/eos/unk).
        special = set(hf.all_special_ids)
        if self._backend is not None:
            special = {i for i, token in hf.added_tokens_decoder.items() if token.special}
        self.special_token_ids: frozenset[int] = frozenset(special)

    @classmethod
    def from_folder(cls, folder: Path) -> Tokenizer:
        """Load the tokenizer files of a Hugging Face folder (never the network)."""
        os.environ["HF_HUB_OFFLINE"] = "1"
        os.environ["TRANSFORMERS_OFFLINE"] = "1"
        from transformers import AutoTokenizer

        if not any((Path(folder) / name).is_file() for name in _TOKENIZER_FILES):
            raise ModelLoadError(
                f"{folder} has no tokenizer: it needs tokenizer.json (or a tokenizer.model "
                "or vocab.json) next to tokenizer_config.json"
            )
        try:
            hf = AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
        except (OSError, ValueError, KeyError) as exc:
            raise ModelLoadError(f"cannot load the tokenizer in {folder}: {exc}") from exc
        return cls(hf)

    @property
    def hf(self) -> Any:
        """The underlying transformers tokenizer."""
        return self._hf

    def encode(self, text: str, *, add_special_tokens: bool = True) -> list[int]:
        return list(self._hf.encode(text, add_special_tokens=add_special_tokens))

    def render_chat(
        self,
        messages: list[dict[str, Any]],
        *,
        add_generation_prompt: bool = True,
        tools: list[dict[str, Any]] | None = None,
    ) -> str:
        """The prompt text the model's chat template makes of `messages`."""
        if not self._hf.chat_template:
            raise ValueError(
                "this model has no chat template, so it cannot take chat messages; "
                "use the completions API with a plain prompt instead"
            )
        text = self._hf.apply_chat_template(
            messages, tools=tools, add_generation_prompt=add_generation_prompt, tokenize=False
        )
        return str(text)

    def apply_chat_template(
        self,
        messages: list[dict[str, Any]],
        *,
        add_generation_prompt: bool = True,
        tools: list[dict[str, Any]] | None = None,
    ) -> list[int]:
        """Token ids of the rendered chat prompt.

        The template writes its own special tokens (BOS, role markers), so none are added here.
        """
        text = self.render_chat(messages, add_generation_prompt=add_generation_prompt, tools=tools)
        return self.encode(text, add_special_tokens=False)

    def decode(self, token_ids: Sequence[int], *, skip_special_tokens: bool = True) -> str:
        """The text of `token_ids`, exactly as the tokenizer's decoder makes it (no space cleanup).

        Cleanup of spaces before punctuation is off, so that decoding a stream piece by piece gives
        the same text as decoding it whole.
        """
        if self._backend is not None:
            return str(
                self._backend.decode(list(token_ids), skip_special_tokens=skip_special_tokens)
            )
        return str(
            self._hf.decode(
                list(token_ids),
                skip_special_tokens=skip_special_tokens,
                clean_up_tokenization_spaces=False,
            )
        )
