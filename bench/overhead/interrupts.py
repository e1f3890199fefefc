"""SIGTERM treated like Ctrl-C while a benchmark runs, so both stop it the same clean way.

Shared by the gateway and engine benchmarks' command lines.
"""

from __future__ import annotations

import signal
from collections.abc import Callable
from typing import Any


def catch_signals() -> Callable[[], None]:
    """Make SIGTERM and SIGINT raise KeyboardInterrupt; returns what puts them back."""
    try:
        old_term = signal.signal(signal.SIGTERM, _raise_interrupt)
        old_int = signal.signal(signal.SIGINT, signal.default_int_handler)
    except ValueError:  # not the main thread
        return lambda: None

    def restore_signals() -> None:
        signal.signal(signal.SIGTERM, old_term)
        signal.signal(signal.SIGINT, old_int)

    return restore_signals


def _raise_interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt
