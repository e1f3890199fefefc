"""The engine-throughput benchmark (bench/engine_throughput.py): its workloads, and a tiny run.

The tiny run goes through every phase in this process (4 requests of at most 4 output tokens) and
checks the results file has every figure the README quotes; it is a smoke test, not a timing.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch

BENCH_DIR = Path(__file__).resolve().parents[2] / "bench"
if str(BENCH_DIR) not in sys.path:
    sys.path.insert(0, str(BENCH_DIR))

from engine.cli import main  # noqa: E402
from engine.corpus import TextSource, text_source  # noqa: E402
from engine.results import RECORD_FIELDS  # noqa: E402
from engine.workload import (  # noqa: E402
    LengthSpec,
    at_rate,
    main_lengths,
    shared_prefix,
    sharegpt_like,
)

TEST_CACHE = Path(
    os.environ.get("SLUICE_TEST_CACHE", Path(tempfile.gettempdir()) / "sluice-test-cache")
)


@pytest.fixture(scope="module")
def sluice_cache() -> Iterator[Path]:
    """The cache the backend tests use: the embedded model is converted there once."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("SLUICE_CACHE", str(TEST_CACHE))
        yield TEST_CACHE


@pytest.fixture(scope="module")
def source(sluice_cache: Path) -> TextSource:
    from backend.model_files import resolve_model
    from backend.tokenizer import Tokenizer

    tokenizer = Tokenizer.from_folder(resolve_model("smollm2-135m-instruct", progress=False))
    return text_source(
        tokenizer.hf.get_vocab(), lambda text: tokenizer.encode(text, add_special_tokens=False)
    )


def test_sharegpt_like_workload_is_seeded_skewed_text_within_bounds(source: TextSource) -> None:
    prompt, output = main_lengths((16, 1024), (16, 256))
    requests = sharegpt_like(source, 60, 7, prompt, output)

    assert requests == sharegpt_like(source, 60, 7, prompt, output)
    assert requests != sharegpt_like(source, 60, 8, prompt, output)
    prompt_lens = [len(r.prompt_token_ids) for r in requests]
    output_lens = [r.max_tokens for r in requests]
    assert all(16 <= n <= 1024 for n in prompt_lens)
    assert all(16 <= n <= 256 for n in output_lens)
    # Skewed: a long tail above the median, not one fixed length.
    assert sorted(prompt_lens)[30] < 300 < max(prompt_lens)
    assert len(set(output_lens)) > 10
    # Text, not one repeated id: hundreds of distinct tokens.
    ids = {t for r in requests for t in r.prompt_token_ids}
    assert len(ids) > 500
    assert all(r.arrival_s == 0.0 for r in requests)


def test_shared_prefix_workload_shares_one_system_prompt_and_arrives_over_time(
    source: TextSource,
) -> None:
    user, output = LengthSpec(32, 0.6, 8, 128), LengthSpec(48, 0.6, 16, 128)
    requests = shared_prefix(source, 40, 3, 100, user, output)

    sharing = [r for r in requests if r.shared_prefix]
    assert 30 <= len(sharing) < 40
    system = sharing[0].prompt_token_ids[:100]
    assert all(r.prompt_token_ids[:100] == system for r in sharing)
    assert all(r.prompt_token_ids[:100] != system for r in requests if not r.shared_prefix)
    arrivals = [r.arrival_s for r in requests]
    assert arrivals[0] == 0.0 and arrivals == sorted(arrivals) and arrivals[-1] > 10
    doubled = at_rate(requests, 2.0)
    assert [r.arrival_s for r in doubled] == [a / 2.0 for a in arrivals]


def test_tiny_run_writes_every_reported_figure(sluice_cache: Path, tmp_path: Path) -> None:
    out = tmp_path / "engine.json"
    argv = [
        "--quick",
        "--in-process",
        "--requests=4",
        "--prompt-tokens=16-32",
        "--threads=1",
        "--output-tokens=2-4",
        "--hf-batch-sizes=2",
        "--prefix-requests=4",
        "--system-prompt-tokens=32",
        "--rate=20",
        "--kv-cache-gb=0.05",
        f"--out={out}",
    ]
    threads = torch.get_num_threads()
    try:
        assert main(argv) == 0
    finally:
        torch.set_num_threads(threads)  # the run set it for this whole process
    doc = json.loads(out.read_text())

    engine, hf = doc["main"]["engine"], doc["main"]["hf"]["2"]
    for s in (engine, hf):
        assert s["requests"] == 4
        assert s["output_tokens"] == doc["workloads"]["main"]["output_tokens"]["total"]
        assert s["length_mismatches"] == 0
        _has_figures(s)
    comparison = doc["main"]["comparison"]
    assert comparison["hf_best_batch_size"] == 2
    assert comparison["engine_vs_hf_best"]["output_tokens_per_s"] > 0
    assert 0 < comparison["compute"]["engine"]["fraction_of_gemm"]
    assert doc["gemm"]["gflops"] > 0

    prefix = doc["shared_prefix"]
    assert prefix["rate_per_s"] == 20 and prefix["rate_source"] == "--rate"
    assert prefix["off"]["cached_prompt_tokens"] == 0
    assert prefix["on"]["cached_prompt_tokens"] > 0  # 32-token system prompt: two 16-token blocks
    for s in (prefix["off"], prefix["on"]):
        assert s["length_mismatches"] == 0
        _has_figures(s)
    assert prefix["comparison"]["ttft_p50_lower_by"] > 0

    assert set(doc["runs"]) == {"engine", "hf_batch_2", "prefix_caching_off", "prefix_caching_on"}
    rows = doc["runs"]["engine"]["records"]
    assert len(rows) == 4 and all(len(row) == len(RECORD_FIELDS) for row in rows)
    assert doc["machine"]["torch"] and "commit" in doc["git"]
    assert any("engine / HF best" in line for line in doc["report"])


def _has_figures(summary: dict[str, Any]) -> None:
    for key in (
        "output_tokens_per_s",
        "total_tokens_per_s",
        "requests_per_s",
        "ttft_p50_ms",
        "ttft_p99_ms",
        "tpot_p50_ms",
        "tpot_p99_ms",
        "peak_rss_mib",
    ):
        assert summary[key] is not None and summary[key] > 0, key
