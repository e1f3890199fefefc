"""Timing on either device: medians of CUDA-event intervals (or wall clock on the CPU), and per
call from CUDA graph replays, which leave Python's launch cost out."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable

import torch


def time_ms(fn: Callable[[], object], device: torch.device, repeats: int) -> float:
    """Median milliseconds of fn over repeats, after two warm-up calls."""
    fn()
    fn()
    samples = []
    for _ in range(repeats):
        if device.type == "cuda":
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            fn()
            end.record()
            end.synchronize()
            samples.append(start.elapsed_time(end))
        else:
            t0 = time.perf_counter()
            fn()
            samples.append((time.perf_counter() - t0) * 1e3)
    return sorted(samples)[len(samples) // 2]


GRAPH_CALLS = 20


def graph_ms(fn: Callable[[], object], device: torch.device, repeats: int) -> float | None:
    """Median milliseconds per call of fn replayed from a CUDA graph of GRAPH_CALLS calls: the
    GPU's time without Python's launch cost (as the engine's decode runs). None where fn
    cannot be captured."""
    side = torch.cuda.Stream(device)
    side.wait_stream(torch.cuda.current_stream(device))
    with torch.cuda.stream(side):
        fn()
        fn()
    torch.cuda.current_stream(device).wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    try:
        with torch.cuda.graph(graph):
            for _ in range(GRAPH_CALLS):
                fn()
    except RuntimeError as exc:
        print(f"graph_ms: not capturable ({exc})", file=sys.stderr)
        return None
    return time_ms(graph.replay, device, repeats) / GRAPH_CALLS


def copy_bandwidth_gbs(device: torch.device, size_bytes: int, repeats: int) -> float:
    src = torch.empty(size_bytes, dtype=torch.uint8, device=device)
    dst = torch.empty_like(src)
    ms = time_ms(lambda: dst.copy_(src), device, repeats)
    return 2 * size_bytes / ms / 1e6
