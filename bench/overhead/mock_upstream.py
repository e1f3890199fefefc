"""The C mock of an OpenAI-compatible upstream (bench/mock_upstream.c), the "direct" target.

Started on the client side's CPU; it prints "ready" once it listens.
"""

from __future__ import annotations

import os
import selectors
import subprocess
import time
from pathlib import Path

from overhead.errors import BenchError
from overhead.pinning import Pinning
from overhead.processes import Children, tail


def start_mock(
    binary: Path, port: int, chunks: int, pin: Pinning, workdir: Path, children: Children
) -> subprocess.Popen[bytes]:
    err_path = workdir / "mock_upstream.stderr"
    cmd = [*pin.aux(), str(binary), str(port), "--chunks", str(chunks)]
    with open(err_path, "wb") as err:
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=err, start_new_session=True)
    children.add("mock_upstream", proc)
    assert proc.stdout is not None
    sel = selectors.DefaultSelector()
    sel.register(proc.stdout, selectors.EVENT_READ)
    deadline = time.monotonic() + 10.0
    buf = b""
    while b"\n" not in buf:
        remaining = deadline - time.monotonic()
        if remaining <= 0 or not sel.select(timeout=remaining):
            raise BenchError(f"mock upstream did not print 'ready' within 10 s\n{tail(err_path)}")
        chunk = os.read(proc.stdout.fileno(), 4096)
        if not chunk:
            raise BenchError(f"mock upstream exited (rc={proc.wait()}):\n{tail(err_path)}")
        buf += chunk
    sel.close()
    if not buf.startswith(b"ready"):
        raise BenchError(f"unexpected output from mock upstream: {buf!r}")
    return proc
