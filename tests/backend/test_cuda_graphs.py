"""The pure half of decode CUDA graphs: which sizes are captured, which one a step uses, padding.

The capture and replay themselves run only on CUDA (tests/backend/kernels/test_engine_kernels.py
runs the padded path eagerly on the CPU, and captures real graphs on a GPU).
"""

from __future__ import annotations

import pytest

from backend.cuda_graphs import (
    MAX_CAPTURE_SIZE,
    DecodeInputs,
    capture_sizes,
    graph_size,
    padded_tables,
)


@pytest.mark.parametrize(
    ("max_num_seqs", "sizes"),
    [
        (1, [1]),
        (3, [1, 2, 3]),
        (8, [1, 2, 4, 8]),
        (48, [1, 2, 4, 8, 16, 32, 48]),
        (64, [1, 2, 4, 8, 16, 32, 64]),
    ],
)
def test_capture_sizes_double_up_to_max_num_seqs(max_num_seqs: int, sizes: list[int]) -> None:
    assert capture_sizes(max_num_seqs) == sizes


def test_capture_sizes_stop_at_the_limit_above_which_decode_runs_eagerly() -> None:
    assert capture_sizes(4096)[-1] == MAX_CAPTURE_SIZE == 256
    assert capture_sizes(4096, limit=20) == [1, 2, 4, 8, 16, 20]


def test_a_step_takes_the_smallest_size_that_holds_it_and_none_above_the_largest() -> None:
    sizes = capture_sizes(48)
    assert [graph_size(n, sizes) for n in (1, 2, 3, 5, 16, 17, 33, 48)] == [
        1, 2, 4, 8, 16, 32, 48, 48,
    ]  # fmt: skip
    assert graph_size(49, sizes) is None


def test_padding_rows_write_no_kv_and_read_no_context() -> None:
    inputs = DecodeInputs(
        token_ids=[11, 12, 13],
        positions=[4, 20, 7],
        slots=[36, 52, 71],
        context_lens=[5, 21, 8],
        block_tables=[[2], [3, 1], [4]],
    )
    padded = inputs.padded(4)
    assert len(padded) == 4
    assert padded.token_ids == [11, 12, 13, 0]
    assert padded.positions == [4, 20, 7, 0]
    assert padded.slots == [36, 52, 71, -1]  # the KV store skips a negative slot
    assert padded.context_lens == [5, 21, 8, 0]  # decode attention gives a zero row
    assert padded.block_tables == [[2], [3, 1], [4], []]
    assert inputs.padded(3) == inputs
    assert len(inputs) == 3  # padding copies: the step's own lists are untouched


def test_padding_refuses_a_batch_larger_than_the_size() -> None:
    inputs = DecodeInputs([1, 2], [0, 0], [0, 1], [1, 1], [[0], [0]])
    with pytest.raises(AssertionError, match="2 sequences do not fit a batch of 1"):
        inputs.padded(1)


def test_block_tables_pad_with_block_zero_to_a_common_width() -> None:
    assert padded_tables([[7], [3, 1, 9], []], 3) == [[7, 0, 0], [3, 1, 9], [0, 0, 0]]
