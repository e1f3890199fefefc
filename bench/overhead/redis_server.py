"""Finding the redis-server process behind a Redis URL, when it runs on this machine.

Its pid lets the benchmark charge Redis's CPU time to the Redis variant's requests.
"""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import urlsplit

_LOOPBACK = {"127.0.0.1", "localhost", "::1"}


def local_redis_server(url: str) -> int | None:
    """The pid of the redis-server serving url, if url is on loopback TCP and one is found."""
    host, port = _redis_host_port(url)
    return find_redis_server(port) if host in _LOOPBACK and port else None


def _redis_host_port(url: str) -> tuple[str | None, int | None]:
    """Host and TCP port of a redis:// URL; (None, None) for a Unix socket."""
    parts = urlsplit(url)
    if parts.scheme == "unix":
        return None, None
    return parts.hostname, parts.port or 6379


def find_redis_server(port: int) -> int | None:
    """The pid of the redis-server process on this machine that listens on port, if any."""
    candidates = _redis_server_pids()
    inodes = _listening_socket_inodes(port)
    for pid in candidates:
        try:
            fds = os.listdir(f"/proc/{pid}/fd")
        except OSError:
            continue
        for fd in fds:
            try:
                if os.readlink(f"/proc/{pid}/fd/{fd}") in inodes:
                    return pid
            except OSError:
                continue
    for pid in candidates:  # its file descriptors are not ours to read: go by its title
        try:
            title = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        except (OSError, UnicodeDecodeError):
            continue
        if title.rstrip().endswith(f":{port}"):
            return pid
    return candidates[0] if len(candidates) == 1 else None


def _redis_server_pids() -> list[int]:
    candidates = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            if Path(f"/proc/{entry}/comm").read_text().strip() == "redis-server":
                candidates.append(int(entry))
        except OSError:
            continue
    return candidates


def _listening_socket_inodes(port: int) -> set[str]:
    inodes: set[str] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            f = line.split()
            # f[1] is local HEXIP:HEXPORT, f[3] the state (0A: LISTEN), f[9] the inode.
            if len(f) > 9 and f[3] == "0A" and int(f[1].rsplit(":", 1)[1], 16) == port:
                inodes.add(f"socket:[{f[9]}]")
    return inodes
