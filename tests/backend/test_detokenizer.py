"""Streaming detokenization on the real SmolLM2 tokenizer: deltas add up to the full decode."""

from __future__ import annotations

from collections.abc import Sequence

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from backend.detokenizer import MAX_HELD_TOKENS, PROMPT_CONTEXT_TOKENS, IncrementalDetokenizer
from backend.tokenizer import Tokenizer

IM_END = 2
FFFD = "\ufffd"


class CountingTokenizer(Tokenizer):
    """Records the length of every decode, to check the per-step cost stays bounded."""

    def __init__(self, tokenizer: Tokenizer) -> None:
        super().__init__(tokenizer.hf)
        self.decoded_lengths: list[int] = []

    def decode(self, token_ids: Sequence[int], *, skip_special_tokens: bool = True) -> str:
        self.decoded_lengths.append(len(token_ids))
        return super().decode(token_ids, skip_special_tokens=skip_special_tokens)


def stream(
    tokenizer: Tokenizer,
    prompt: Sequence[int],
    output: Sequence[int],
    *,
    skip_special_tokens: bool = True,
) -> tuple[list[str], str, IncrementalDetokenizer]:
    """(delta per token, what finish() flushed, the detokenizer)."""
    detok = IncrementalDetokenizer(tokenizer, prompt, skip_special_tokens=skip_special_tokens)
    deltas = [detok.add(token_id) for token_id in output]
    return deltas, detok.finish(), detok


# GPT-2's byte-level alphabet: printable bytes stand for themselves, the rest for chr(256 + n).
_PRINTABLE = [*range(0x21, 0x7F), *range(0xA1, 0xAD), *range(0xAE, 0x100)]
_UNPRINTABLE = [b for b in range(256) if b not in _PRINTABLE]
_BYTE_CHARS = {b: chr(b) for b in _PRINTABLE} | {
    b: chr(256 + n) for n, b in enumerate(_UNPRINTABLE)
}


def byte_token(tokenizer: Tokenizer, byte: int) -> int:
    """The id of the byte-level BPE token that stands for one raw byte."""
    vocab = tokenizer.hf.get_vocab()
    # SmolLM2 lacks a few bytes that never occur in valid or common text (0xC0, 0xF5-0xFF, ...).
    assert _BYTE_CHARS[byte] in vocab, f"no token for byte {byte:#x}"
    return int(vocab[_BYTE_CHARS[byte]])


@pytest.fixture(scope="module")
def prompt(smollm2_tokenizer: Tokenizer) -> list[int]:
    return smollm2_tokenizer.apply_chat_template([{"role": "user", "content": "Say something."}])


def test_plain_english_streams_word_by_word(
    smollm2_tokenizer: Tokenizer, prompt: list[int]
) -> None:
    text = "The quick brown fox jumps over the lazy dog. It was 3:15 p.m., wasn't it?"
    output = smollm2_tokenizer.encode(text)
    deltas, tail, detok = stream(smollm2_tokenizer, prompt, output)
    assert deltas == [smollm2_tokenizer.decode([token_id]) for token_id in output]
    assert tail == ""
    assert detok.text == "".join(deltas) == text


def test_first_word_keeps_its_leading_space_after_the_prompt(smollm2_tokenizer: Tokenizer) -> None:
    prompt = smollm2_tokenizer.encode("Hello")
    output = smollm2_tokenizer.encode(" world and beyond")
    deltas, _, _ = stream(smollm2_tokenizer, prompt, output)
    assert deltas[0] == " world"
    assert "".join(deltas) == smollm2_tokenizer.decode(output) == " world and beyond"


def test_sentencepiece_style_output_keeps_the_space_the_prompt_gives_it() -> None:
    from tokenizers import Tokenizer as RustTokenizer
    from tokenizers import decoders, models
    from transformers import PreTrainedTokenizerFast

    vocab = {"<unk>": 0, "<s>": 1, "\u2581Hello": 2, "\u2581world": 3, "!": 4}
    rust = RustTokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    rust.decoder = decoders.Metaspace()  # drops the space of the first word it decodes
    tokenizer = Tokenizer(
        PreTrainedTokenizerFast(tokenizer_object=rust, bos_token="<s>", unk_token="<unk>")
    )
    assert tokenizer.decode([3, 4]) == "world!"
    deltas, _, _ = stream(tokenizer, [1, 2], [3, 4])
    assert deltas == [" world", "!"]  # "Hello" + " world!", as the prompt continues


def test_emoji_and_cjk_split_across_tokens_never_emit_half_a_character(
    smollm2_tokenizer: Tokenizer, prompt: list[int]
) -> None:
    text = "日本語のテキスト 😀🎉👩‍👩‍👧 한국어 emoji ✓ done"
    output = smollm2_tokenizer.encode(text)
    # The premise: some tokens hold only part of a character's bytes.
    assert any(FFFD in smollm2_tokenizer.decode([token_id]) for token_id in output)
    deltas, tail, detok = stream(smollm2_tokenizer, prompt, output)
    assert all(FFFD not in delta for delta in deltas)
    assert "" in deltas  # something was held back until its character completed
    assert tail == ""
    assert detok.text == text


def test_a_character_is_held_until_its_last_byte(smollm2_tokenizer: Tokenizer) -> None:
    pieces = [byte_token(smollm2_tokenizer, b) for b in "中".encode()]
    deltas, _, _ = stream(smollm2_tokenizer, [], [*pieces, *smollm2_tokenizer.encode("!")])
    assert deltas == ["", "", "中", "!"]


def test_whole_characters_before_an_unfinished_one_are_not_held(
    smollm2_tokenizer: Tokenizer,
) -> None:
    cyrillic_o, pe = "\u043e", "\u043f"
    o_and_half = int(smollm2_tokenizer.hf.get_vocab()["Ð¾Ð"])  # bytes of o, then 1st byte of pe
    output = [o_and_half, byte_token(smollm2_tokenizer, pe.encode()[1])]
    deltas, _, _ = stream(smollm2_tokenizer, smollm2_tokenizer.encode("Слово:"), output)
    assert deltas == [cyrillic_o, pe]


def test_finish_flushes_an_unfinished_character(smollm2_tokenizer: Tokenizer) -> None:
    output = [*smollm2_tokenizer.encode("ok"), byte_token(smollm2_tokenizer, 0xE4)]
    deltas, tail, detok = stream(smollm2_tokenizer, [], output)
    assert deltas == ["ok", ""]
    assert tail == FFFD
    assert detok.text == smollm2_tokenizer.decode(output) == "ok" + FFFD
    assert detok.finish() == ""


def test_special_tokens_are_skipped_or_kept_as_asked(
    smollm2_tokenizer: Tokenizer, prompt: list[int]
) -> None:
    output = [*smollm2_tokenizer.encode("Hi"), IM_END, 5, *smollm2_tokenizer.encode(" there")]
    skipped, _, _ = stream(smollm2_tokenizer, prompt, output)
    assert skipped == ["Hi", "", "", " there"]
    kept, _, _ = stream(smollm2_tokenizer, prompt, output, skip_special_tokens=False)
    assert kept == ["Hi", "<|im_end|>", "<file_sep>", " there"]
    assert "".join(kept) == smollm2_tokenizer.decode(output, skip_special_tokens=False)


def test_each_step_decodes_a_short_window_however_long_the_output(
    smollm2_tokenizer: Tokenizer, prompt: list[int]
) -> None:
    counting = CountingTokenizer(smollm2_tokenizer)
    text = "Streaming text 流式文本 🚀 goes on and on. " * 60
    output = smollm2_tokenizer.encode(text)
    _, _, detok = stream(counting, prompt, output)
    assert len(output) > 1000
    assert max(counting.decoded_lengths) <= PROMPT_CONTEXT_TOKENS + 4
    assert detok.text == text


def test_stray_bytes_are_flushed_after_the_hold_limit(smollm2_tokenizer: Tokenizer) -> None:
    counting = CountingTokenizer(smollm2_tokenizer)
    output = [byte_token(smollm2_tokenizer, 0x80)] * 500  # a lone continuation byte each
    deltas, _, detok = stream(counting, [], output)
    assert max(counting.decoded_lengths) <= 2 * (MAX_HELD_TOKENS + 1)
    assert deltas[MAX_HELD_TOKENS] == FFFD * (MAX_HELD_TOKENS + 1)
    assert detok.text == smollm2_tokenizer.decode(output) == FFFD * 500


@pytest.fixture(scope="module")
def interesting_ids(smollm2_tokenizer: Tokenizer) -> list[int]:
    """Token ids that stress the detokenizer: raw bytes, partial characters, specials."""
    tokenizer = smollm2_tokenizer
    lone_bytes = [
        byte_token(tokenizer, b) for b in (0x80, 0x9F, 0xB8, 0xAD, 0xC3, 0xE4, 0xF0, 0xF4)
    ]
    partial = tokenizer.encode("中文😀🎉한국어ğ")
    return sorted({*lone_bytes, *partial, *range(17), *tokenizer.encode(" the end.\n")})


@settings(max_examples=300, deadline=None)
@given(data=st.data(), skip=st.booleans())
def test_deltas_concatenate_to_the_full_decode_for_any_ids(
    smollm2_tokenizer: Tokenizer, interesting_ids: list[int], data: st.DataObject, skip: bool
) -> None:
    token = st.one_of(
        st.integers(0, smollm2_tokenizer.vocab_size - 1), st.sampled_from(interesting_ids)
    )
    # More held tokens than the limit in a row are outside the exact guarantee (stray bytes).
    output = data.draw(st.lists(token, max_size=MAX_HELD_TOKENS), label="output")
    prompt_text = data.draw(st.sampled_from(["", "Hi", "Say 你好", "<|im_start|>user\nok"]))
    prompt = smollm2_tokenizer.encode(prompt_text)
    deltas, tail, detok = stream(smollm2_tokenizer, prompt, output, skip_special_tokens=skip)
    expected = smollm2_tokenizer.decode(output, skip_special_tokens=skip)
    assert "".join(deltas) + tail == detok.text == expected
    assert not any(delta.endswith(FFFD) for delta in deltas)


@settings(max_examples=200, deadline=None)
@given(text=st.text(max_size=200))
def test_any_unicode_text_streams_back_exactly(smollm2_tokenizer: Tokenizer, text: str) -> None:
    output = smollm2_tokenizer.encode(text)
    deltas, tail, _ = stream(smollm2_tokenizer, smollm2_tokenizer.encode("Echo:"), output)
    expected = smollm2_tokenizer.decode(output)
    assert "".join(deltas) + tail == expected
    if expected == text:  # SmolLM2 drops bytes it has no token for (0xF1, 0xF2, some controls)
        assert tail == ""
