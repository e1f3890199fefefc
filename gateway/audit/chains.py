"""The hash chains of an audit directory: its own segments (one gateway process) and one
subfolder per worker of `sluice serve --workers N` (`w0`, `w1`, ...), each a chain of its own.

Readers go through here: `chain_dirs` lists the chains, `read_log` yields every record of all
of them, merged by arrival time, one line at a time.
"""

from __future__ import annotations

import heapq
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from gateway.audit.encryption import Keyring
from gateway.audit.export import ExportError, parse_time
from gateway.audit.segment import SEGMENT_NAME
from gateway.audit.segment_files import Line, read_records

WORKER_FOLDER = re.compile(r"^w(?P<index>\d+)$")
ROOT = "."


def worker_folder(root: Path, index: int) -> Path:
    """Where worker `index` writes its chain (the index outlives a worker a crash replaced)."""
    return root / f"w{index}"


@dataclass(frozen=True, slots=True)
class ChainDir:
    """One chain: `name` is `.` for the directory's own segments, else its subfolder's name."""

    name: str
    path: Path


def chain_dirs(root: Path) -> list[ChainDir]:
    """The chains in `root`, its own first, then the workers' by index.

    `root` counts as a chain when it holds segments or when it has no worker subfolders (an
    empty log stays one empty chain, as before workers existed).
    """
    workers = sorted(
        (int(match.group("index")), entry.name)
        for entry in root.iterdir()
        if (match := WORKER_FOLDER.match(entry.name)) and entry.is_dir()
    )
    own = any(SEGMENT_NAME.match(entry.name) for entry in root.iterdir())
    chains = [ChainDir(ROOT, root)] if own or not workers else []
    return chains + [ChainDir(name, root / name) for _, name in workers]


def read_log(root: Path, keys: Keyring | None = None) -> Iterator[Line]:
    """Every record of every chain in `root`, seals left out.

    One chain comes in log order, exactly as stored. Several are merged by `ts` (arrival)
    with one line of each chain in memory at a time: each chain is written as requests end,
    so within a chain, and therefore in the merge, `ts` is only nearly sorted.
    """
    chains = chain_dirs(root)
    if len(chains) == 1:
        return read_records(chains[0].path, keys)
    return heapq.merge(*(read_records(chain.path, keys) for chain in chains), key=_arrival)


def _arrival(line: Line) -> datetime:
    ts = line.value.get("ts")
    if isinstance(ts, str):
        try:
            return parse_time(ts)
        except ValueError:
            pass
    raise ExportError(
        f"{line.path}:{line.number}: ts {ts!r} is not an RFC 3339 time, so its chain cannot "
        "be merged with the others"
    )
