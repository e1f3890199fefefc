"""The tokenizer wrapper on the real SmolLM2 tokenizer: ids, special tokens, the chat template."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from backend.model_config import ModelLoadError
from backend.tokenizer import Tokenizer

IM_START, IM_END, ENDOFTEXT = 1, 2, 0


def test_tokenizer_reports_vocab_and_special_ids(smollm2_tokenizer: Tokenizer) -> None:
    assert smollm2_tokenizer.vocab_size == 49152
    assert smollm2_tokenizer.eos_token_ids == (IM_END,)
    assert smollm2_tokenizer.bos_token_id == IM_START
    # All 17 added tokens are special, not just the three named bos/eos/unk.
    assert smollm2_tokenizer.special_token_ids == frozenset(range(17))


def test_encode_adds_no_bos_and_round_trips_unicode(smollm2_tokenizer: Tokenizer) -> None:
    text = "Hello world, 你好 😀 café"
    ids = smollm2_tokenizer.encode(text)
    assert ids == smollm2_tokenizer.encode(text, add_special_tokens=False)
    assert ids[0] != IM_START
    assert smollm2_tokenizer.decode(ids) == text


def test_decode_skips_special_tokens_unless_asked(smollm2_tokenizer: Tokenizer) -> None:
    ids = [IM_START, *smollm2_tokenizer.encode("Hi"), IM_END, 5]
    assert smollm2_tokenizer.decode(ids) == "Hi"
    assert smollm2_tokenizer.decode(ids, skip_special_tokens=False) == (
        "<|im_start|>Hi<|im_end|><file_sep>"
    )


def test_decode_keeps_spaces_before_punctuation(smollm2_tokenizer: Tokenizer) -> None:
    text = "a , b . c ! d ?"
    assert smollm2_tokenizer.decode(smollm2_tokenizer.encode(text)) == text


def test_chat_template_renders_chatml_with_a_generation_prompt(
    smollm2_tokenizer: Tokenizer,
) -> None:
    messages = [{"role": "user", "content": "What is 2+2?"}]
    text = smollm2_tokenizer.render_chat(messages)
    # SmolLM2's template adds its default system prompt when none is given.
    assert text.startswith("<|im_start|>system\nYou are a helpful AI assistant named SmolLM")
    assert text.endswith("<|im_start|>user\nWhat is 2+2?<|im_end|>\n<|im_start|>assistant\n")

    ids = smollm2_tokenizer.apply_chat_template(messages)
    assert ids[0] == IM_START and ids.count(IM_START) == 3 and ids.count(IM_END) == 2
    assert smollm2_tokenizer.decode(ids, skip_special_tokens=False) == text


def test_chat_template_without_generation_prompt_and_with_system(
    smollm2_tokenizer: Tokenizer,
) -> None:
    messages = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": "Hello!"},
    ]
    ids = smollm2_tokenizer.apply_chat_template(messages, add_generation_prompt=False)
    assert smollm2_tokenizer.decode(ids, skip_special_tokens=False) == (
        "<|im_start|>system\nBe brief.<|im_end|>\n"
        "<|im_start|>user\nhi<|im_end|>\n"
        "<|im_start|>assistant\nHello!<|im_end|>\n"
    )


def test_model_without_chat_template_gives_a_clear_error(
    smollm2_folder: Path, tmp_path: Path
) -> None:
    shutil.copy(smollm2_folder / "tokenizer.json", tmp_path)
    config = json.loads((smollm2_folder / "tokenizer_config.json").read_text())
    config.pop("chat_template", None)
    (tmp_path / "tokenizer_config.json").write_text(json.dumps(config))
    tokenizer = Tokenizer.from_folder(tmp_path)
    assert tokenizer.encode("hi") == [6004]
    with pytest.raises(ValueError, match=r"no chat template.*completions API"):
        tokenizer.apply_chat_template([{"role": "user", "content": "hi"}])


def test_folder_without_tokenizer_files_is_a_model_load_error(tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError, match=r"has no tokenizer: it needs tokenizer\.json"):
        Tokenizer.from_folder(tmp_path)
