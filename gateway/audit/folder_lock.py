"""One process per audit folder: an exclusive `flock` on the folder itself, held while writing.

The kernel drops the lock when its process dies, however it dies, so a gateway (or a worker)
started after a crash takes the folder at once, and two live processes never share one chain.
Locking the folder, not a file in it, leaves nothing behind in the log.
"""

from __future__ import annotations

import fcntl
import os
import threading
from dataclasses import dataclass
from pathlib import Path


class FolderBusy(Exception):
    """Another process holds the folder's lock: it is writing that chain right now."""


@dataclass(slots=True)
class _Held:
    fd: int
    holders: int


# Like a POSIX record lock, the lock belongs to the process: a second writer in this process
# (one restarted in place after the first died without closing) shares it instead of
# failing. flock alone would refuse it, as it refuses another process.
_HELD: dict[tuple[int, int], _Held] = {}
_REGISTRY = threading.Lock()  # writers start in worker threads


class FolderLock:
    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._key: tuple[int, int] | None = None

    @property
    def held(self) -> bool:
        return self._key is not None

    def acquire(self) -> None:
        """Take the lock, creating the folder if needed; FolderBusy at once if another
        process has it."""
        if self._key is not None:
            return
        self.folder.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.folder, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        info = os.fstat(fd)
        key = (info.st_dev, info.st_ino)
        with _REGISTRY:
            held = _HELD.get(key)
            if held is not None:
                os.close(fd)
                held.holders += 1
                self._key = key
                return
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                raise FolderBusy(
                    f"another process is writing the audit log in {self.folder}: one folder "
                    "takes one writer (a gateway, one worker of `sluice serve --workers N`, or "
                    "`sluice audit consume`). Stop that process, or give this one another "
                    "audit.dir"
                ) from None
            _HELD[key] = _Held(fd, 1)
            self._key = key

    def release(self) -> None:
        if self._key is None:
            return
        with _REGISTRY:
            held = _HELD[self._key]
            held.holders -= 1
            if held.holders == 0:
                os.close(held.fd)  # its only descriptor: closing it drops the flock
                del _HELD[self._key]
        self._key = None
