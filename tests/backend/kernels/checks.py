"""What every kernel test needs: random inputs, NaN-poisoned outputs, paged tables, tolerances.

Imports no kernel module, so it is safe to import from anywhere in the suite.
"""

from __future__ import annotations

import torch

DTYPES = (torch.float32, torch.float16)

# Largest allowed error per dtype for outputs of order one (the interpreter has no bfloat16).
TOLERANCES: dict[torch.dtype, dict[str, float]] = {
    torch.float32: {"atol": 2e-5, "rtol": 2e-5},
    torch.float16: {"atol": 4e-3, "rtol": 4e-3},
}


def poisoned(shape: tuple[int, ...], dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """NaN everywhere: an element the kernel fails to write fails the comparison."""
    return torch.full(shape, float("nan"), dtype=dtype, device=device)


def random(
    shape: tuple[int, ...], dtype: torch.dtype, device: torch.device, gen: torch.Generator
) -> torch.Tensor:
    """Standard normal values (never zeros), drawn on the CPU so every device sees the same."""
    return torch.randn(shape, generator=gen).to(dtype=dtype, device=device)


def block_tables(
    context_lens: list[int], block_size: int, gen: torch.Generator, device: torch.device
) -> tuple[torch.Tensor, int]:
    """Shuffled disjoint blocks per sequence, padded with 0: (tables [seqs, width], blocks)."""
    needed = [-(-n // block_size) for n in context_lens]
    num_blocks = sum(needed) + 3
    order = torch.randperm(num_blocks, generator=gen)
    width = max(max(needed), 1)
    tables = torch.zeros(len(context_lens), width, dtype=torch.int32)
    used = 0
    for i, n in enumerate(needed):
        tables[i, :n] = order[used : used + n]
        used += n
    return tables.to(device), num_blocks


def assert_close(actual: torch.Tensor, expected: torch.Tensor) -> None:
    assert not actual.isnan().any(), "the kernel left elements unwritten (NaN poison survived)"
    torch.testing.assert_close(actual, expected, **TOLERANCES[expected.dtype])
