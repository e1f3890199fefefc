"""`kernels` and `cuda_graphs`: what they resolve to on each device, and clear refusals.

Resolution is pure (no GPU needed): a torch.device("cuda") can be named on any machine.
"""

from __future__ import annotations

import argparse
import importlib.util

import pytest
import torch

from backend.cli import add_backend_commands, engine_config
from backend.engine import LLMEngine
from backend.engine_config import EngineConfig

CPU, CUDA = torch.device("cpu"), torch.device("cuda")


@pytest.fixture
def compiled(monkeypatch: pytest.MonkeyPatch) -> None:
    """As on a machine that runs compiled kernels (the kernel tests set TRITON_INTERPRET=1)."""
    monkeypatch.delenv("TRITON_INTERPRET", raising=False)


def test_auto_means_triton_on_cuda_and_torch_elsewhere(compiled: None) -> None:
    config = EngineConfig()
    assert config.kernels == "auto" and config.cuda_graphs is True
    assert config.resolved_kernels(CPU) == "torch"
    assert config.resolved_kernels(torch.device("mps")) == "torch"
    assert config.resolved_kernels(CUDA) == "triton"


def test_auto_keeps_pytorch_where_the_kernels_cannot_run(
    compiled: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert EngineConfig(block_size=12).resolved_kernels(CUDA) == "torch"
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    assert EngineConfig().resolved_kernels(CUDA) == "torch"


def test_torch_is_torch_everywhere() -> None:
    assert EngineConfig(kernels="torch").resolved_kernels(CUDA) == "torch"
    assert EngineConfig(kernels="torch").resolved_kernels(CPU) == "torch"


def test_triton_on_the_cpu_is_refused_unless_interpreted(
    compiled: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = EngineConfig(kernels="triton")
    with pytest.raises(
        ValueError, match=r"triton runs on CUDA devices, not cpu .*TRITON_INTERPRET=1"
    ):
        config.resolved_kernels(CPU)
    monkeypatch.setenv("TRITON_INTERPRET", "1")
    assert config.resolved_kernels(CPU) == "triton"


def test_triton_refuses_a_block_size_that_is_not_a_power_of_two(compiled: None) -> None:
    with pytest.raises(ValueError, match="power-of-two block_size, got 12"):
        EngineConfig(kernels="triton", block_size=12).resolved_kernels(CUDA)


def test_triton_without_the_package_says_so(
    compiled: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    with pytest.raises(ValueError, match="needs the triton package"):
        EngineConfig(kernels="triton").resolved_kernels(CUDA)


def test_an_unknown_kernels_value_names_the_choices() -> None:
    with pytest.raises(ValueError, match="kernels must be one of auto, triton, torch, got 'cuda'"):
        EngineConfig(kernels="cuda")  # type: ignore[arg-type]


def test_cuda_graphs_only_on_cuda_with_the_triton_kernels(compiled: None) -> None:
    assert EngineConfig().uses_cuda_graphs(CUDA)
    assert not EngineConfig().uses_cuda_graphs(CPU)
    assert not EngineConfig(cuda_graphs=False).uses_cuda_graphs(CUDA)
    assert not EngineConfig(kernels="torch").uses_cuda_graphs(CUDA)


def test_the_engine_refuses_triton_on_the_cpu_before_loading_anything(compiled: None) -> None:
    config = EngineConfig(model="/nonexistent/model", device="cpu", kernels="triton")
    with pytest.raises(ValueError, match="triton runs on CUDA devices"):
        LLMEngine(config, progress=False)


def serve_args(*flags: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_backend_commands(parser.add_subparsers(dest="command"))
    return parser.parse_args(["backend", "serve", *flags])


def test_backend_serve_flags_set_kernels_and_cuda_graphs() -> None:
    config = engine_config(serve_args("--kernels", "torch", "--no-cuda-graphs"))
    assert (config.kernels, config.cuda_graphs) == ("torch", False)
    assert engine_config(serve_args()) == EngineConfig()


def test_backend_serve_refuses_triton_on_the_cpu(
    compiled: None, capsys: pytest.CaptureFixture[str]
) -> None:
    args = serve_args("--kernels", "triton", "--device", "cpu", "--model", "/nonexistent")
    assert args.run(args) == 2
    assert "triton runs on CUDA devices" in capsys.readouterr().err
