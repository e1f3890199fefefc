"""`weights: int8` and `kv_cache: int8` reach the engine from each place they can be set.

EngineConfig, the policy's builtin backend, `sluice backend serve` and `sluice bench engine` flags;
bad values are refused with the accepted ones named.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pytest

from backend.cli import add_backend_commands, engine_config
from backend.engine_config import EngineConfig
from gateway.config.loader import PolicyError, parse_policy

BENCH_DIR = Path(__file__).resolve().parents[2] / "bench"

POLICY = """\
auth: none
backends:
  local:
    kind: builtin
    kv_cache_gb: 0.5
{extra}
models:
  m:
    backend: local
"""


def test_engine_config_defaults_to_the_model_dtype_and_takes_int8() -> None:
    default = EngineConfig()
    assert (default.weights, default.kv_cache_dtype) == ("auto", "auto")
    assert not default.kv_cache_int8
    config = EngineConfig(weights="int8", kv_cache_dtype="int8")
    assert config.kv_cache_int8


@pytest.mark.parametrize(
    ("field", "message"),
    [
        ("weights", "weights must be one of auto, int8, got 'int4'"),
        ("kv_cache_dtype", "kv_cache_dtype must be one of auto, int8, got 'int4'"),
    ],
)
def test_engine_config_refuses_other_formats(field: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        EngineConfig(**{field: "int4"})  # type: ignore[arg-type]


def test_policy_builtin_backend_passes_int8_to_the_engine() -> None:
    text = POLICY.format(extra="    weights: int8\n    kv_cache: int8")
    backend = parse_policy(text, "p.yaml", {}).backends["local"]
    options = backend.engine_options()  # type: ignore[union-attr]
    assert options == {
        "model": "smollm2-135m-instruct",
        "kv_cache_gb": 0.5,
        "weights": "int8",
        "kv_cache_dtype": "int8",
    }
    config = EngineConfig(**options)
    assert config.weights == "int8" and config.kv_cache_int8


def test_policy_without_the_keys_leaves_the_engine_defaults() -> None:
    backend = parse_policy(POLICY.format(extra=""), "p.yaml", {}).backends["local"]
    options = backend.engine_options()  # type: ignore[union-attr]
    assert "weights" not in options and "kv_cache_dtype" not in options


def test_policy_refuses_an_unknown_kv_cache_format_naming_line_and_choices() -> None:
    text = POLICY.format(extra="    kv_cache: fp8")
    with pytest.raises(PolicyError) as caught:
        parse_policy(text, "p.yaml", {})
    message = str(caught.value)
    assert "p.yaml:6" in message and "kv_cache" in message
    assert "'auto'" in message and "'int8'" in message


def serve_args(*flags: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_backend_commands(parser.add_subparsers(dest="command"))
    return parser.parse_args(["backend", "serve", *flags])


def test_backend_serve_flags_build_the_int8_engine_config() -> None:
    config = engine_config(serve_args("--weights", "int8", "--kv-cache", "int8"))
    assert (config.weights, config.kv_cache_dtype) == ("int8", "int8")
    assert engine_config(serve_args()) == EngineConfig()


def test_backend_serve_refuses_another_format(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        serve_args("--kv-cache", "fp8")
    err = capsys.readouterr().err
    assert "--kv-cache: invalid choice: 'fp8'" in err and "int8" in err


def test_bench_engine_flags_reach_the_engine_options() -> None:
    if str(BENCH_DIR) not in sys.path:
        sys.path.insert(0, str(BENCH_DIR))
    from engine.cli import parse_args

    opts = parse_args(["--weights", "int8", "--kv-cache", "int8", "--threads", "1"])
    options = opts.engine_options(enable_prefix_caching=True)
    assert options["weights"] == "int8" and options["kv_cache_dtype"] == "int8"
    plain = parse_args(["--threads", "1"]).engine_options(enable_prefix_caching=True)
    assert "weights" not in plain and "kv_cache_dtype" not in plain


def test_policy_kernel_keys_reach_the_engine_config() -> None:
    from gateway.config.loader import parse_policy

    text = """
auth: none
backends:
  local: {kind: builtin, kernels: torch, cuda_graphs: false}
models:
  m: {backend: local}
"""
    backend = parse_policy(text, "p.yaml", {}).backends["local"]
    options = backend.engine_options()  # type: ignore[union-attr]
    assert (options["kernels"], options["cuda_graphs"]) == ("torch", False)
