"""Kernel tests: each Triton kernel against its PyTorch reference, interpreted on the CPU.

TRITON_INTERPRET=1 is set here, before any kernel module is imported (`@triton.jit` reads it then);
run with TRITON_INTERPRET=0 on a CUDA machine to test the compiled kernels on the GPU instead.
"""

from __future__ import annotations

import os
import sys

_preset = "TRITON_INTERPRET" in os.environ
os.environ.setdefault("TRITON_INTERPRET", "1")

import pytest  # noqa: E402
import torch  # noqa: E402

_early = sorted(m for m in sys.modules if m.startswith("backend.kernels."))
if _early and not _preset:
    raise RuntimeError(
        f"{', '.join(_early)} imported before TRITON_INTERPRET was set: import backend.kernels "
        "lazily outside tests/backend/kernels"
    )

INTERPRETED = os.environ["TRITON_INTERPRET"] == "1"


@pytest.fixture(scope="session")
def device() -> torch.device:
    if INTERPRETED or not torch.cuda.is_available():
        return torch.device("cpu")
    return torch.device("cuda")
