#!/usr/bin/env python3
"""Measure what the Sluicegate gateway adds over calling the upstream directly.

A fast C mock of an OpenAI-compatible upstream (bench/mock_upstream.c) and a
closed-loop C load generator (bench/loadgen.c) share one CPU; the gateway gets
another CPU to itself. For every (stream, concurrency) cell the load generator
runs against the mock directly and against the gateway in front of it, in
interleaved rounds, and the medians over rounds are compared. With --litellm,
LiteLLM's proxy is started in front of the same mock, on the gateway's CPU, and
measured as a third target in the same rounds (only one of the two proxies is
under load at any time; the other sits idle). With --ratelimit, one gateway per
rate-limit variant (none, in-memory store, Redis store) runs in the same way, to
measure what the rate limiter costs per request.

    .venv/bin/python bench/gateway_overhead.py            # 3 rounds x 5 s per cell
    .venv/bin/python bench/gateway_overhead.py --quick    # 1 round x 2 s per cell
    .venv/bin/python bench/gateway_overhead.py --direct-only --quick
    .venv/bin/python bench/gateway_overhead.py --litellm  # also LiteLLM's proxy
    .venv/bin/python bench/gateway_overhead.py --ratelimit none,memory,redis

See bench/README.md for the method and the meaning of each column.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import http.client
import json
import os
import platform
import secrets
import selectors
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
REPO_ROOT = BENCH_DIR.parent
BUILD_DIR = BENCH_DIR / ".build"
DEFAULT_OUT = BENCH_DIR / "results" / "gateway_overhead.json"
TOOLS = ("mock_upstream", "loadgen")

MODEL = "mock-model"
CHAT_PATH = "/v1/chat/completions"
KEY_ENV = "SLUICE_BENCH_KEY"
BASE_BODY: dict[str, Any] = {
    "model": MODEL,
    "messages": [{"role": "user", "content": "Say hello"}],
    "max_tokens": 16,
}

# --litellm without a value: $SLUICE_BENCH_LITELLM, else this path.
LITELLM_ENV = "SLUICE_BENCH_LITELLM"
DEFAULT_LITELLM = Path("/tmp/litellm-venv/bin/litellm")
LITELLM_HEALTH_PATH = "/health/liveliness"
# Per-request timeout (loadgen --timeout-s). LiteLLM queues ~1 s of work at 64
# connections, so it gets a generous one; the gateway and the mock answer in ms.
# Gateway variants with a rate limiter (targets "gateway_rl_<store>") use the gateway's.
LOADGEN_TIMEOUT_S = {"direct": 15.0, "gateway": 15.0, "litellm": 60.0}

# --ratelimit: the gateway without a `ratelimit` section ("none", target "gateway"),
# and with one whose counters live in memory or in Redis (target "gateway_rl_<store>").
RATELIMIT_VARIANTS = ("none", "memory", "redis")
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/15"
RATE_HEADER = "x-ratelimit-remaining-requests"
# Limits so high that nothing is ever refused, but every kind is on the path: rolling
# requests, rolling tokens (settled after every response; streams ask the upstream for
# usage) and concurrency slots (released by a second store call after every response).
RATELIMIT_TEMPLATE = """\
ratelimit:
  store: {store}
  redis: {{url: "{url}", key_prefix: "{prefix}", timeout_ms: 50}}
  limits:
    key:
      requests_per_minute: 100000000
      tokens_per_minute: 1000000000000
      concurrent: 100000
"""

POLICY_TEMPLATE = """\
server:
  host: 127.0.0.1
  port: {gateway_port}
auth:
  keys:
    - id: bench
      tenant: bench
      key_env: {key_env}
      models: ["*"]
backends:
  mock:
    kind: openai
    base_url: http://127.0.0.1:{mock_port}/v1
models:
  mock-model:
    backend: mock
"""

LITELLM_CONFIG_TEMPLATE = """\
model_list:
  - model_name: {model}
    litellm_params:
      model: openai/{model}
      api_base: http://127.0.0.1:{mock_port}/v1
      api_key: sk-upstream
general_settings:
  master_key: {master_key}
litellm_settings:
  telemetry: false
"""


class BenchError(Exception):
    """A failure that ends the benchmark with a clear message."""


# --------------------------------------------------------------------------
# small helpers


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def free_port() -> int:
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def tail(path: Path, max_chars: int = 4000) -> str:
    try:
        data = path.read_bytes()
    except OSError:
        return ""
    text = data[-max_chars:].decode("utf-8", "replace")
    return ("...\n" if len(data) > max_chars else "") + text


def build_tools(force: bool = False) -> dict[str, Path]:
    """Compile the C tools into bench/.build/ when a source is newer than its binary."""
    cc = os.environ.get("CC", "gcc")
    if shutil.which(cc) is None:
        raise BenchError(f"C compiler {cc!r} not found (set CC)")
    BUILD_DIR.mkdir(parents=True, exist_ok=True)
    out: dict[str, Path] = {}
    for name in TOOLS:
        src = BENCH_DIR / f"{name}.c"
        binary = BUILD_DIR / name
        stale = force or not binary.exists() or src.stat().st_mtime > binary.stat().st_mtime
        if stale:
            tmp = binary.with_name(binary.name + ".tmp")
            cmd = [cc, "-O2", "-Wall", "-o", str(tmp), str(src)]
            log(f"building {binary.relative_to(REPO_ROOT)}: {' '.join(cmd)}")
            res = subprocess.run(cmd, capture_output=True, text=True)
            if res.returncode != 0:
                raise BenchError(f"compiling {src.name} failed:\n{res.stderr}")
            if res.stderr.strip():
                log(res.stderr.rstrip())
            os.replace(tmp, binary)
        out[name] = binary
    return out


class Pinning:
    """taskset prefixes for the gateway CPU and the CPU shared by mock + loadgen."""

    def __init__(self, gateway_cpus: str, aux_cpus: str, enabled: bool) -> None:
        self.gateway_cpus = gateway_cpus
        self.aux_cpus = aux_cpus
        self.enabled = enabled
        self.note = ""
        if enabled and shutil.which("taskset") is None:
            self.enabled = False
            self.note = "taskset not found; running unpinned"
        elif enabled:
            allowed = os.sched_getaffinity(0)
            wanted = _parse_cpu_list(gateway_cpus) | _parse_cpu_list(aux_cpus)
            if not wanted <= allowed:
                self.enabled = False
                missing = sorted(wanted - allowed)
                self.note = (
                    f"CPUs {missing} not available (allowed: {sorted(allowed)}); running unpinned"
                )

    def gateway(self) -> list[str]:
        return ["taskset", "-c", self.gateway_cpus] if self.enabled else []

    def aux(self) -> list[str]:
        return ["taskset", "-c", self.aux_cpus] if self.enabled else []

    def describe(self) -> dict[str, Any]:
        return {
            "enabled": self.enabled,
            "gateway_cpus": self.gateway_cpus if self.enabled else None,
            "mock_and_loadgen_cpus": self.aux_cpus if self.enabled else None,
            "note": self.note or None,
        }


def _parse_cpu_list(spec: str) -> set[int]:
    cpus: set[int] = set()
    for part in spec.split(","):
        part = part.strip()
        if not part:
            continue
        if "-" in part:
            lo, hi = part.split("-", 1)
            cpus.update(range(int(lo), int(hi) + 1))
        else:
            cpus.add(int(part))
    return cpus


# --------------------------------------------------------------------------
# processes


class Children:
    """Every process we start; all of them are stopped in stop_all()."""

    def __init__(self) -> None:
        self.procs: list[tuple[str, subprocess.Popen[bytes]]] = []

    def add(self, name: str, proc: subprocess.Popen[bytes]) -> None:
        self.procs.append((name, proc))

    def stop_all(self) -> None:
        for _name, proc in reversed(self.procs):
            _signal_group(proc, signal.SIGTERM)
        deadline = time.monotonic() + 5.0
        for _name, proc in reversed(self.procs):
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                _signal_group(proc, signal.SIGKILL)
                try:
                    proc.wait(timeout=5.0)
                except subprocess.TimeoutExpired:
                    pass
        for _name, proc in self.procs:
            if proc.stdout is not None:
                proc.stdout.close()
        self.procs.clear()


def _signal_group(proc: subprocess.Popen[bytes], sig: int) -> None:
    """Signal the process group we created for proc (start_new_session=True)."""
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, sig)
    except (ProcessLookupError, PermissionError):
        try:
            proc.send_signal(sig)
        except ProcessLookupError:
            pass


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


def http_request(
    port: int,
    method: str,
    path: str,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
    timeout: float = 10.0,
) -> tuple[int, dict[str, str], bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        resp = conn.getresponse()
        data = resp.read()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, data
    finally:
        conn.close()


def loadgen_timeout(target: str) -> float:
    return LOADGEN_TIMEOUT_S.get(target, LOADGEN_TIMEOUT_S["gateway"])


def gateway_target(variant: str) -> str:
    """The target name of the gateway for a --ratelimit variant."""
    return "gateway" if variant == "none" else f"gateway_rl_{variant}"


def start_gateway(
    port: int,
    mock_port: int,
    key: str,
    pin: Pinning,
    workdir: Path,
    children: Children,
    startup_timeout: float,
    name: str = "gateway",
    extra_policy: str = "",
) -> tuple[subprocess.Popen[bytes], list[str], Path]:
    """The gateway as `name`, its policy the common one plus extra_policy (YAML sections)."""
    policy = workdir / ("policy.yaml" if name == "gateway" else f"policy_{name}.yaml")
    policy.write_text(
        POLICY_TEMPLATE.format(gateway_port=port, mock_port=mock_port, key_env=KEY_ENV)
        + extra_policy
    )
    cmd = [
        *pin.gateway(),
        sys.executable,
        "-m",
        "gateway",
        "serve",
        "--config",
        str(policy),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
    ]
    env = dict(os.environ)
    env[KEY_ENV] = key
    env["PYTHONUNBUFFERED"] = "1"
    out_path = workdir / f"{name}.log"
    with open(out_path, "wb") as out:
        proc = subprocess.Popen(
            cmd,
            cwd=str(REPO_ROOT),
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    children.add(name, proc)
    wait_healthy(name, proc, cmd, out_path, port, "/healthz", startup_timeout)
    return proc, cmd, out_path


def wait_healthy(
    name: str,
    proc: subprocess.Popen[bytes],
    cmd: list[str],
    out_path: Path,
    port: int,
    path: str,
    startup_timeout: float,
) -> None:
    """Poll GET path until it answers 200; fail with the process's output otherwise."""
    deadline = time.monotonic() + startup_timeout
    last_err = "no answer yet"
    while True:
        rc = proc.poll()
        if rc is not None:
            raise BenchError(
                f"{name} exited during start-up (rc={rc}). Command: {' '.join(cmd)}\n"
                f"--- {name} output ---\n{tail(out_path)}"
            )
        try:
            status, _h, body = http_request(port, "GET", path, timeout=1.0)
            if status == 200:
                return
            last_err = f"GET {path} -> {status}: {body[:200]!r}"
        except OSError as exc:
            last_err = f"GET {path}: {exc}"
        if time.monotonic() > deadline:
            raise BenchError(
                f"{name} did not answer GET {path} with 200 within {startup_timeout:g} s "
                f"({last_err}). "
                f"Command: {' '.join(cmd)}\n--- {name} output ---\n{tail(out_path)}"
            )
        time.sleep(0.1)


def start_litellm(
    binary: Path,
    port: int,
    mock_port: int,
    key: str,
    pin: Pinning,
    workdir: Path,
    children: Children,
    startup_timeout: float,
) -> tuple[subprocess.Popen[bytes], list[str], Path]:
    """LiteLLM's proxy (one uvicorn worker) in front of the mock, on the gateway's CPUs.

    Kept off the network: the bundled model cost map instead of a download,
    telemetry off, loopback only. LITELLM_LOG=ERROR also sets uvicorn's log level,
    which silences its access log (the CLI has no flag for that): like the gateway
    (access_log=False), it writes nothing per request.
    """
    config = workdir / "litellm.yaml"
    config.write_text(
        LITELLM_CONFIG_TEMPLATE.format(model=MODEL, mock_port=mock_port, master_key=key)
    )
    cmd = [
        *pin.gateway(),
        str(binary),
        "--config",
        str(config),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--num_workers",
        "1",
    ]
    env = dict(os.environ)
    env.update(
        LITELLM_LOCAL_MODEL_COST_MAP="True",
        LITELLM_LOG="ERROR",
        PYTHONUNBUFFERED="1",
    )
    no_proxy = ",".join(x for x in (env.get("no_proxy"), "127.0.0.1,localhost") if x)
    env["no_proxy"] = env["NO_PROXY"] = no_proxy
    out_path = workdir / "litellm.log"
    with open(out_path, "wb") as out:
        proc = subprocess.Popen(
            cmd,
            cwd=str(workdir),
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    children.add("litellm", proc)
    wait_healthy("litellm", proc, cmd, out_path, port, LITELLM_HEALTH_PATH, startup_timeout)
    return proc, cmd, out_path


def litellm_version(binary: Path) -> str | None:
    """The installed litellm version, asked of the interpreter its script runs under."""
    candidates = [binary.parent / "python"]
    try:
        first = binary.read_bytes()[:300].split(b"\n", 1)[0].decode("utf-8", "replace")
        if first.startswith("#!"):
            candidates.insert(0, Path(first[2:].strip().split()[0]))
    except OSError:
        pass
    code = "import importlib.metadata as m; print(m.version('litellm'))"
    for python in candidates:
        try:
            res = subprocess.run(
                [str(python), "-c", code], capture_output=True, text=True, timeout=30
            )
        except (OSError, subprocess.TimeoutExpired):
            continue
        if res.returncode == 0 and res.stdout.strip():
            return res.stdout.strip()
    return None


def check_endpoint(
    port: int,
    body: bytes,
    headers: dict[str, str],
    stream: bool,
    timeout: float = 15.0,
    require_headers: Sequence[str] = (),
) -> str | None:
    """One request through the full path. Returns None if it looks right, else a description."""
    try:
        status, hdrs, data = http_request(
            port, "POST", CHAT_PATH, body=body, headers=headers, timeout=timeout
        )
    except OSError as exc:
        return f"request failed: {exc}"
    snippet = data[:600].decode("utf-8", "replace")
    if status != 200:
        return f"HTTP {status}: {snippet}"
    for name in require_headers:
        if name.lower() not in hdrs:
            return f"response lacks the {name} header (headers: {sorted(hdrs)}): {snippet}"
    if stream:
        text = data.decode("utf-8", "replace")
        if "text/event-stream" not in hdrs.get("content-type", ""):
            ctype = hdrs.get("content-type")
            return f"expected text/event-stream, got content-type {ctype!r}: {snippet}"
        if "data: [DONE]" not in text or "chat.completion.chunk" not in text:
            return f"stream lacks chat.completion.chunk events or data: [DONE]: {snippet}"
    else:
        try:
            obj = json.loads(data)
            obj["choices"][0]["message"]
        except (ValueError, KeyError, IndexError, TypeError):
            return f"not a chat.completion JSON body: {snippet}"
    return None


# --------------------------------------------------------------------------
# measurement


_CLK_TCK = os.sysconf("SC_CLK_TCK")


def _stat_fields(pid: int) -> list[str] | None:
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # Fields after "(comm)"; rest[0] is field 3 (state), so field n is rest[n - 3].
    return raw[raw.rindex(")") + 2 :].split()


def process_tree_cpu_seconds(pid: int) -> float:
    """utime+stime (all threads) of pid, its reaped children, and its live descendants."""

    def own(fields: list[str]) -> int:
        # utime (14), stime (15), cutime (16), cstime (17)
        return int(fields[11]) + int(fields[12]) + int(fields[13]) + int(fields[14])

    root = _stat_fields(pid)
    if root is None:
        return float("nan")
    ticks = own(root)
    children: dict[int, list[int]] = {}
    stats: dict[int, list[str]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        f = _stat_fields(int(entry))
        if f is None:
            continue
        stats[int(entry)] = f
        children.setdefault(int(f[1]), []).append(int(entry))
    todo = list(children.get(pid, []))
    while todo:
        child = todo.pop()
        ticks += own(stats[child])
        todo.extend(children.get(child, []))
    return ticks / _CLK_TCK


def wait_idle(
    pid: int, quiet_s: float = 0.3, max_wait_s: float = 30.0
) -> tuple[float, float, bool]:
    """Wait until pid's process tree stops using CPU (at most one clock tick in quiet_s).

    A closed-loop client that stops leaves its in-flight requests behind; a proxy
    may go on working on them after the run. Waiting here keeps that work out of
    the next run on the same CPU. Returns (CPU seconds used meanwhile, seconds
    waited, whether it went quiet).
    """
    t0 = time.monotonic()
    c0 = last = process_tree_cpu_seconds(pid)
    last_t = t0
    while True:
        time.sleep(0.1)
        now = time.monotonic()
        c = process_tree_cpu_seconds(pid)
        if c != c:  # NaN: the process is gone
            return 0.0, now - t0, False
        if c - last > 1.5 / _CLK_TCK:
            last, last_t = c, now
        elif now - last_t >= quiet_s:
            return c - c0, now - t0, True
        if now - t0 > max_wait_s:
            return c - c0, now - t0, False


# --------------------------------------------------------------------------
# Redis (--ratelimit redis)


def redis_client(url: str) -> Any:
    """A synchronous client of the `redis` package (a dependency of the gateway) for url."""
    try:
        import redis
    except ImportError as exc:
        raise BenchError("--ratelimit redis needs the `redis` package in this Python") from exc
    return redis.Redis.from_url(url, socket_timeout=5.0, socket_connect_timeout=5.0)


_LOOPBACK = {"127.0.0.1", "localhost", "::1"}


def _redis_host_port(url: str) -> tuple[str | None, int | None]:
    """Host and TCP port of a redis:// URL; (None, None) for a Unix socket."""
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    if parts.scheme == "unix":
        return None, None
    return parts.hostname, parts.port or 6379


def _glob_escape(text: str) -> str:
    return "".join("\\" + ch if ch in "*?[]\\" else ch for ch in text)


def redis_keys(client: Any, prefix: str) -> list[bytes]:
    """Every key under prefix in the client's database (SCAN, never KEYS)."""
    return list(client.scan_iter(match=_glob_escape(prefix) + "*", count=1000))


def delete_redis_keys(client: Any, prefix: str) -> int:
    """SCAN + DEL every key under prefix; returns how many were deleted."""
    deleted = 0
    keys = redis_keys(client, prefix)
    for i in range(0, len(keys), 500):
        deleted += int(client.delete(*keys[i : i + 500]))
    return deleted


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


def find_redis_server(port: int) -> int | None:
    """The pid of the redis-server process on this machine that listens on port, if any."""
    candidates = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            if Path(f"/proc/{entry}/comm").read_text().strip() == "redis-server":
                candidates.append(int(entry))
        except OSError:
            continue
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


def process_cpu_seconds(pid: int) -> float | None:
    """utime + stime of pid, all its threads (not reaped children: a BGSAVE is not a request)."""
    f = _stat_fields(pid)
    return None if f is None else (int(f[11]) + int(f[12])) / _CLK_TCK


class RedisWatch:
    """What Redis did during one run.

    The CPU time of redis-server (from /proc, when it runs on this machine; the benchmark
    does not pin it), the CPUs its main thread was seen on (sampled every interval_s), and
    its command counters from INFO (EVALSHA calls and the time Redis spent in them).
    """

    def __init__(self, client: Any, pid: int | None, interval_s: float = 0.05) -> None:
        self.client = client
        self.pid = pid
        self.interval_s = interval_s
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._seen: dict[int, int] = {}
        self._before: dict[str, Any] = {}

    def _snapshot(self) -> dict[str, Any]:
        try:
            info = self.client.info("stats", "commandstats")
        except Exception as exc:  # redis.RedisError, OSError
            raise BenchError(f"Redis stopped answering INFO: {exc}") from exc
        evalsha = info.get("cmdstat_evalsha") or {}
        return {
            "cpu_s": process_cpu_seconds(self.pid) if self.pid else None,
            "commands": int(info.get("total_commands_processed", 0)),
            "evalsha_calls": int(evalsha.get("calls", 0)),
            "evalsha_usec": int(evalsha.get("usec", 0)),
        }

    def start(self) -> None:
        self._seen = {}
        self._before = self._snapshot()
        if self.pid:
            self._stop.clear()
            self._thread = threading.Thread(target=self._sample, daemon=True)
            self._thread.start()

    def _sample(self) -> None:
        assert self.pid is not None
        while not self._stop.wait(self.interval_s):
            f = _stat_fields(self.pid)
            if f is None:
                return
            cpu = int(f[36])  # field 39, processor: the CPU it last ran on
            self._seen[cpu] = self._seen.get(cpu, 0) + 1

    def stop(self) -> dict[str, Any]:
        if self._thread is not None:
            self._stop.set()
            self._thread.join()
            self._thread = None
        a, b = self._snapshot(), self._before
        cpu = None if a["cpu_s"] is None or b["cpu_s"] is None else a["cpu_s"] - b["cpu_s"]
        return {
            "redis_server_cpu_s": cpu,
            "redis_server_cpus_seen": {str(k): v for k, v in sorted(self._seen.items())},
            # All commands Redis executed, those run inside scripts included, less our INFO.
            "redis_commands": a["commands"] - b["commands"] - 1,
            "redis_evalsha_calls": a["evalsha_calls"] - b["evalsha_calls"],
            "redis_evalsha_usec": a["evalsha_usec"] - b["evalsha_usec"],
        }


def run_loadgen(
    binary: Path,
    port: int,
    body_file: Path,
    headers: list[str],
    concurrency: int,
    duration: float,
    warmup: float,
    pin: Pinning,
    timeout_s: float = 15.0,
) -> dict[str, Any]:
    cmd = [
        *pin.aux(),
        str(binary),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--path",
        CHAT_PATH,
        "--body-file",
        str(body_file),
    ]
    for h in headers:
        cmd += ["--header", h]
    cmd += [
        "--concurrency", str(concurrency),
        "--duration-s", f"{duration:g}",
        "--warmup-s", f"{warmup:g}",
        "--timeout-s", f"{timeout_s:g}",
        "--json",
    ]  # fmt: skip
    try:
        res = subprocess.run(cmd, capture_output=True, text=True, timeout=warmup + duration + 60)
    except subprocess.TimeoutExpired as exc:
        raise BenchError(f"loadgen did not finish: {' '.join(cmd)}") from exc
    lines = [ln for ln in res.stdout.splitlines() if ln.startswith("{")]
    if res.returncode != 0 or not lines:
        raise BenchError(
            f"loadgen failed (rc={res.returncode}): {' '.join(cmd)}\n{res.stderr}{res.stdout}"
        )
    result: dict[str, Any] = json.loads(lines[-1])
    if res.stderr.strip():
        result["loadgen_stderr"] = res.stderr.strip()[:2000]
    return result


# --------------------------------------------------------------------------
# reporting


class Progress:
    def __init__(self, total: int) -> None:
        self.total = total
        self.done = 0
        self._bar: Any = None
        try:
            from tqdm import tqdm

            self._bar = tqdm(total=total, file=sys.stderr, unit="run", dynamic_ncols=True)
        except ImportError:
            pass

    def step(self, label: str, result: dict[str, Any]) -> None:
        self.done += 1
        summary = (
            f"{result['rps']:>9,.0f} req/s  p50 {result['lat_p50_ms']:7.3f} ms"
            f"  p99 {result['lat_p99_ms']:7.3f} ms"
        )
        if result.get("non_2xx") or result.get("errors"):
            summary += f"  non-2xx {result['non_2xx']} errors {result['errors']}"
        if self._bar is not None:
            self._bar.set_postfix_str(f"{label}: {summary.strip()}", refresh=False)
            self._bar.update(1)
        else:
            log(f"[{self.done:>{len(str(self.total))}}/{self.total}] {label:<36} {summary}")

    def write(self, msg: str) -> None:
        if self._bar is not None:
            self._bar.write(msg, file=sys.stderr)
        else:
            log(msg)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()


def _median(values: list[float | None]) -> float | None:
    vals = [v for v in values if v is not None and v == v]
    return statistics.median(vals) if vals else None


def summarize(
    runs: list[dict[str, Any]],
    cells: list[tuple[bool, int]],
    targets: list[str],
    variants: Sequence[str] = ("none",),
) -> list[dict[str, Any]]:
    summary = []
    for stream, conc in cells:
        row: dict[str, Any] = {"stream": stream, "concurrency": conc}
        for target in targets:
            rs = [
                r
                for r in runs
                if r["stream"] == stream and r["concurrency"] == conc and r["target"] == target
            ]
            if not rs:
                continue
            agg: dict[str, Any] = {"rounds": len(rs)}
            for key in (
                "rps",
                "lat_p50_ms",
                "lat_p90_ms",
                "lat_p99_ms",
                "lat_max_ms",
                "ttfb_p50_ms",
                "ttfb_p99_ms",
            ):
                agg[key] = _median([r[key] for r in rs])
            agg["non_2xx"] = sum(r["non_2xx"] for r in rs)
            agg["errors"] = sum(r["errors"] for r in rs)
            agg["requests"] = sum(r["requests"] for r in rs)
            agg["aux_cpu_utilization"] = _median([r.get("aux_cpu_utilization") for r in rs])
            if target != "direct":
                for key in (
                    "cpu_us_per_request",
                    "cpu_utilization",
                    "cpu_us_per_request_with_drain",
                    "drain_cpu_s",
                ):
                    agg[key] = _median([r.get(f"{target}_{key}") for r in rs])
            if target == gateway_target("redis"):
                for key in (
                    "redis_server_cpu_us_per_request",
                    "redis_server_cpu_utilization",
                    "redis_evalsha_per_request",
                    "redis_script_us_per_request",
                ):
                    agg[key] = _median([r.get(key) for r in rs])
            row[target] = agg
        d, g, lt = row.get("direct"), row.get("gateway"), row.get("litellm")
        if d and g:
            row["added_p50_ms"] = _sub(g["lat_p50_ms"], d["lat_p50_ms"])
            row["added_p99_ms"] = _sub(g["lat_p99_ms"], d["lat_p99_ms"])
            row["added_ttfb_p50_ms"] = _sub(g["ttfb_p50_ms"], d["ttfb_p50_ms"])
            row["throughput_ratio"] = (g["rps"] / d["rps"]) if d["rps"] else None
        if d and lt:
            row["litellm_added_p50_ms"] = _sub(lt["lat_p50_ms"], d["lat_p50_ms"])
            row["litellm_added_p99_ms"] = _sub(lt["lat_p99_ms"], d["lat_p99_ms"])
            row["litellm_throughput_ratio"] = (lt["rps"] / d["rps"]) if d["rps"] else None
        if g and lt:
            row["gw_litellm_throughput_ratio"] = (g["rps"] / lt["rps"]) if lt["rps"] else None
            gc, lc = g.get("cpu_us_per_request"), lt.get("cpu_us_per_request")
            row["litellm_gw_cpu_ratio"] = (lc / gc) if gc and lc else None
        if list(variants) != ["none"]:
            row["ratelimit"] = _ratelimit_summary(row, variants)
        summary.append(row)
    return summary


def _ratelimit_summary(row: dict[str, Any], variants: Sequence[str]) -> dict[str, Any]:
    """Per --ratelimit variant: what its gateway adds over direct, and over the one without."""
    d, none = row.get("direct"), row.get("gateway")
    out: dict[str, Any] = {}
    for variant in variants:
        a = row.get(gateway_target(variant))
        if not a:
            continue
        e: dict[str, Any] = {"target": gateway_target(variant)}
        if d:
            e["added_p50_ms"] = _sub(a["lat_p50_ms"], d["lat_p50_ms"])
            e["added_p99_ms"] = _sub(a["lat_p99_ms"], d["lat_p99_ms"])
        if none and variant != "none":
            e["added_vs_none_p50_ms"] = _sub(a["lat_p50_ms"], none["lat_p50_ms"])
            e["added_vs_none_p99_ms"] = _sub(a["lat_p99_ms"], none["lat_p99_ms"])
            e["added_vs_none_ttfb_p50_ms"] = _sub(a["ttfb_p50_ms"], none["ttfb_p50_ms"])
            e["added_vs_none_cpu_us_per_request"] = _sub(
                a.get("cpu_us_per_request"), none.get("cpu_us_per_request")
            )
            e["throughput_vs_none"] = (a["rps"] / none["rps"]) if none["rps"] else None
        if variant == "redis":
            e["redis_server_cpu_us_per_request"] = a.get("redis_server_cpu_us_per_request")
        out[variant] = e
    return out


def summarize_idle(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """CPU each proxy used while it was not the target (it should be ~0)."""
    out: dict[str, Any] = {}
    names = list(dict.fromkeys(n for r in runs for n in r.get("idle_cpu_s", {})))
    for name in names:
        rs = [r for r in runs if name in r.get("idle_cpu_s", {})]
        if not rs:
            continue
        cpu = sum(r["idle_cpu_s"][name] for r in rs)
        wall = sum(r["wall_s"] for r in rs)
        out[name] = {
            "runs": len(rs),
            "cpu_s": round(cpu, 3),
            "wall_s": round(wall, 3),
            "cpu_utilization": (cpu / wall) if wall > 0 else None,
        }
    return out


def _sub(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else a - b


def format_table(summary: list[dict[str, Any]], variants: Sequence[str] = ("none",)) -> str:
    """One line per cell; the LiteLLM columns appear only when it was measured.

    With --ratelimit variants other than just "none", one line per (cell, variant): the
    gateway columns are that variant's gateway; the direct and LiteLLM columns are shown on
    the cell's first line only.
    """
    with_litellm = any(row.get("litellm") for row in summary)
    by_variant = list(variants) != ["none"]
    with_redis = "redis" in variants

    def num(v: float | None, fmt: str) -> str:
        return "-" if v is None else format(v, fmt)

    def p50_p99(agg: dict[str, Any]) -> str:
        if not agg:
            return "-"
        return f"{num(agg.get('lat_p50_ms'), '.3f')} / {num(agg.get('lat_p99_ms'), '.3f')}"

    def cells(
        row: dict[str, Any], variant: str = "none", first: bool = True
    ) -> list[tuple[str, str]]:
        d = row.get("direct") or {}
        g = row.get(gateway_target(variant)) or {}
        lt = row.get("litellm") or {}
        rl = (row.get("ratelimit") or {}).get(variant) or {}
        g_rps, lt_rps = g.get("rps"), lt.get("rps")
        ratio = (g_rps / lt_rps) if g_rps is not None and lt_rps else None

        def shared(text: str) -> str:  # direct and LiteLLM figures: first line of a cell
            return text if first else ""

        out = [("mode", "stream" if row["stream"] else "json"), ("conc", str(row["concurrency"]))]
        if by_variant:
            out.append(("ratelimit", variant))
        out += [
            ("direct req/s", shared(num(d.get("rps"), ",.0f"))),
            ("gw req/s", num(g_rps, ",.0f")),
        ]
        if with_litellm:
            out.append(("litellm req/s", shared(num(lt_rps, ",.1f"))))
            out.append(("gw/litellm req/s", "-" if ratio is None else f"{ratio:.1f}x"))
        out += [("direct p50/p99 ms", shared(p50_p99(d))), ("gw p50/p99 ms", p50_p99(g))]
        if with_litellm:
            out.append(("litellm p50/p99 ms", shared(p50_p99(lt))))
        out.append(("added p50 ms", num(_sub(g.get("lat_p50_ms"), d.get("lat_p50_ms")), "+.3f")))
        if by_variant:
            out.append(("added vs none p50 ms", num(rl.get("added_vs_none_p50_ms"), "+.3f")))
        out += [
            ("gw TTFB p50 ms", num(g.get("ttfb_p50_ms"), ".3f") if row["stream"] else "-"),
            ("gw CPU us/req", num(g.get("cpu_us_per_request"), ",.0f")),
        ]
        if by_variant:
            out.append(
                (
                    "added vs none CPU us/req",
                    num(rl.get("added_vs_none_cpu_us_per_request"), "+,.0f"),
                )
            )
        if with_redis:
            out.append(("redis CPU us/req", num(g.get("redis_server_cpu_us_per_request"), ",.1f")))
        if with_litellm:
            out.append(("litellm CPU us/req", shared(num(lt.get("cpu_us_per_request"), ",.0f"))))
        counted = (d, g, lt) if first else (g,)
        out += [
            ("non-2xx", str(sum(a.get("non_2xx", 0) for a in counted))),
            ("errors", str(sum(a.get("errors", 0) for a in counted))),
        ]
        return out

    headers = [h for h, _text in cells({"stream": False, "concurrency": 0})]
    rows = [
        [text for _h, text in cells(row, variant, i == 0)]
        for row in summary
        for i, variant in enumerate(variants if by_variant else ["none"])
    ]
    left = 3 if by_variant else 2  # left-aligned leading columns
    widths = [
        max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)
    ]
    lines = [
        "  ".join(
            h.rjust(w) if i >= left else h.ljust(w)
            for i, (h, w) in enumerate(zip(headers, widths, strict=True))
        ),
        "  ".join("-" * w for w in widths),
    ]
    for r in rows:
        lines.append(
            "  ".join(
                c.rjust(w) if i >= left else c.ljust(w)
                for i, (c, w) in enumerate(zip(r, widths, strict=True))
            )
        )
    return "\n".join(lines)


def cpu_busy(interval: float = 0.5) -> dict[int, float]:
    """Fraction of each CPU that was busy (not idle/iowait) over interval seconds."""

    def snap() -> dict[int, tuple[int, int]]:
        out: dict[int, tuple[int, int]] = {}
        try:
            lines = Path("/proc/stat").read_text().splitlines()
        except OSError:
            return out
        for line in lines:
            parts = line.split()
            if not parts or not parts[0].startswith("cpu") or parts[0] == "cpu":
                continue
            vals = [int(v) for v in parts[1:9]]  # user nice system idle iowait irq softirq steal
            out[int(parts[0][3:])] = (sum(vals), vals[3] + vals[4])
        return out

    a = snap()
    time.sleep(interval)
    b = snap()
    busy: dict[int, float] = {}
    for cpu, (total_b, idle_b) in b.items():
        if cpu not in a:
            continue
        total = total_b - a[cpu][0]
        idle = idle_b - a[cpu][1]
        busy[cpu] = round(1.0 - idle / total, 3) if total > 0 else 0.0
    return busy


def machine_info() -> dict[str, Any]:
    cpu_model = None
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        load = os.getloadavg()
    except OSError:
        load = None
    return {
        "nproc": os.cpu_count(),
        "cpus_allowed": len(os.sched_getaffinity(0)),
        "cpu_model": cpu_model,
        "python": sys.version.split()[0],
        "python_implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "kernel": platform.release(),
        "loadavg_at_start": list(load) if load else None,
    }


def git_info() -> dict[str, Any]:
    def git(*args: str) -> str | None:
        try:
            res = subprocess.run(
                ["git", "-C", str(REPO_ROOT), *args], capture_output=True, text=True, timeout=10
            )
        except (OSError, subprocess.TimeoutExpired):
            return None
        return res.stdout.strip() if res.returncode == 0 else None

    commit = git("rev-parse", "HEAD")
    status = git("status", "--porcelain", "--untracked-files=no")
    return {"commit": commit, "dirty": bool(status) if status is not None and commit else None}


# --------------------------------------------------------------------------
# main


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="gateway_overhead.py",
        description="Benchmark the latency, throughput and CPU cost the gateway adds over "
        "calling the upstream directly.",
    )
    p.add_argument(
        "--quick", action="store_true", help="smoke test: 1 round of 2 s per cell (0.5 s warm-up)"
    )
    p.add_argument("--rounds", type=int, help="interleaved rounds per cell (default 3; --quick: 1)")
    p.add_argument(
        "--duration-s", type=float, help="measured seconds per run (default 5; --quick: 2)"
    )
    p.add_argument(
        "--warmup-s",
        type=float,
        help="unrecorded warm-up seconds per run (default 1; --quick: 0.5)",
    )
    p.add_argument(
        "--concurrency",
        default="1,16,64",
        help="comma-separated connection counts (default 1,16,64)",
    )
    p.add_argument(
        "--stream",
        choices=("both", "off", "on"),
        default="both",
        help="which request kinds to run (default both)",
    )
    p.add_argument(
        "--chunks",
        type=int,
        default=8,
        help="SSE data events per streamed mock response (default 8)",
    )
    p.add_argument(
        "--out",
        type=Path,
        help=f"results JSON (default {DEFAULT_OUT.relative_to(REPO_ROOT)}; "
        "not written with --direct-only unless given)",
    )
    p.add_argument(
        "--direct-only",
        action="store_true",
        help="benchmark only the mock upstream, without starting the gateway",
    )
    p.add_argument(
        "--litellm",
        nargs="?",
        const="",
        default=None,
        metavar="PATH",
        help="also benchmark LiteLLM's proxy, started from this `litellm` executable "
        f"(without PATH: ${LITELLM_ENV}, else {DEFAULT_LITELLM}); it runs on the gateway's "
        "CPU, measured in turn with the gateway",
    )
    p.add_argument(
        "--ratelimit",
        default="none",
        metavar="none,memory,redis",
        help="comma-separated rate-limit variants of the gateway, each its own process measured "
        "in turn: none (no `ratelimit` section), memory or redis (limits too high to refuse "
        "anything, on every request; default none)",
    )
    p.add_argument(
        "--redis-url",
        default=DEFAULT_REDIS_URL,
        help=f"Redis for --ratelimit redis (default {DEFAULT_REDIS_URL}); its keys get a "
        "random prefix and are deleted at the end",
    )
    p.add_argument(
        "--allow-errors",
        action="store_true",
        help="keep going when the pre-flight request through the gateway fails",
    )
    p.add_argument(
        "--gateway-cpus", default="0", help="taskset CPU list for the gateway (default 0)"
    )
    p.add_argument(
        "--aux-cpus", default="1", help="taskset CPU list for mock upstream + loadgen (default 1)"
    )
    p.add_argument("--no-pin", action="store_true", help="do not pin processes with taskset")
    p.add_argument(
        "--startup-timeout-s",
        type=float,
        default=30.0,
        help="seconds to wait for the gateway's /healthz and LiteLLM's /health/liveliness "
        "(default 30)",
    )
    p.add_argument(
        "--rebuild", action="store_true", help="recompile the C tools even if they look up to date"
    )
    args = p.parse_args(argv)
    args.rounds = args.rounds if args.rounds is not None else (1 if args.quick else 3)
    args.duration_s = (
        args.duration_s if args.duration_s is not None else (2.0 if args.quick else 5.0)
    )
    args.warmup_s = args.warmup_s if args.warmup_s is not None else (0.5 if args.quick else 1.0)
    try:
        args.concurrency_list = [int(x) for x in args.concurrency.split(",") if x.strip()]
    except ValueError:
        p.error(
            f"--concurrency must be a comma-separated list of integers, got {args.concurrency!r}"
        )
    if not args.concurrency_list or min(args.concurrency_list) < 1:
        p.error("--concurrency values must be >= 1")
    if args.rounds < 1 or args.duration_s <= 0 or args.warmup_s < 0 or args.chunks < 1:
        p.error("--rounds and --chunks must be >= 1, --duration-s > 0, --warmup-s >= 0")
    wanted = {v.strip() for v in args.ratelimit.split(",") if v.strip()}
    unknown = sorted(wanted - set(RATELIMIT_VARIANTS))
    if unknown or not wanted:
        p.error(
            f"--ratelimit takes a comma-separated list of {', '.join(RATELIMIT_VARIANTS)}; "
            f"got {args.ratelimit!r}"
        )
    # Always in this order within a cell: none, memory, redis.
    args.ratelimit_list = [v for v in RATELIMIT_VARIANTS if v in wanted]
    if args.direct_only and args.ratelimit_list != ["none"]:
        p.error("--ratelimit cannot be combined with --direct-only")
    if not args.redis_url.startswith(("redis://", "rediss://", "unix://")):
        p.error("--redis-url must start with redis://, rediss:// or unix://")
    if args.litellm is not None:
        if args.direct_only:
            p.error("--litellm cannot be combined with --direct-only")
        if args.litellm == "":
            args.litellm = os.environ.get(LITELLM_ENV) or str(DEFAULT_LITELLM)
        exe = Path(args.litellm).expanduser()
        if not (exe.is_file() and os.access(exe, os.X_OK)):
            p.error(
                f"--litellm: {exe} is not an executable file (install LiteLLM in its own "
                "virtualenv, see bench/README.md, and pass its bin/litellm)"
            )
        args.litellm = exe.absolute()
    return args


def main(argv: list[str] | None = None) -> int:
    try:
        args = parse_args(argv)
    except SystemExit as exc:  # argparse: --help or a usage error
        return int(exc.code or 0)

    # Ctrl-C and SIGTERM both end the run through the finally below. SIGINT is set
    # explicitly because a parent may have left it ignored (e.g. a background job).
    restore_signals: Callable[[], None] = lambda: None  # noqa: E731
    try:
        old_term = signal.signal(signal.SIGTERM, _raise_interrupt)
        old_int = signal.signal(signal.SIGINT, signal.default_int_handler)

        def restore_signals() -> None:
            signal.signal(signal.SIGTERM, old_term)
            signal.signal(signal.SIGINT, old_int)

    except ValueError:  # not the main thread
        pass

    children = Children()
    workdir = Path(tempfile.mkdtemp(prefix="sluice-bench-"))
    # Run after every child process has stopped (e.g. deleting the Redis keys).
    cleanups: list[Callable[[], None]] = []
    try:
        return _run(args, children, workdir, cleanups)
    except BenchError as exc:
        log(f"\nERROR: {exc}")
        return 1
    except KeyboardInterrupt:
        log("\ninterrupted; stopping child processes (no results written)")
        return 130
    finally:
        children.stop_all()
        for cleanup in cleanups:
            try:
                cleanup()
            except Exception as exc:  # report it, and still restore the rest
                log(f"warning: clean-up failed: {exc}")
        shutil.rmtree(workdir, ignore_errors=True)
        restore_signals()


def _raise_interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def _run(
    args: argparse.Namespace,
    children: Children,
    workdir: Path,
    cleanups: list[Callable[[], None]],
) -> int:
    tools = build_tools(force=args.rebuild)
    pin = Pinning(args.gateway_cpus, args.aux_cpus, enabled=not args.no_pin)
    if pin.note:
        log(f"warning: {pin.note}")

    streams = {"both": [False, True], "off": [False], "on": [True]}[args.stream]
    cells = [(s, c) for s in streams for c in args.concurrency_list]
    variants: list[str] = args.ratelimit_list
    if args.direct_only:
        targets = ["direct"]
    else:
        targets = ["direct", *(gateway_target(v) for v in variants)]
        if args.litellm is not None:
            targets.append("litellm")

    bodies: dict[bool, Path] = {}
    body_bytes: dict[bool, bytes] = {}
    for s in streams:
        body = dict(BASE_BODY, stream=True) if s else dict(BASE_BODY)
        body_bytes[s] = json.dumps(body, separators=(",", ":")).encode()
        bodies[s] = workdir / f"body_{'stream' if s else 'json'}.json"
        bodies[s].write_bytes(body_bytes[s])

    # One key for both proxies; LiteLLM wants its master key to start with "sk-".
    key = "sk-bench-" + secrets.token_hex(16)
    auth_header = f"Authorization: Bearer {key}"
    json_headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}

    mock_port = free_port()
    mock_proc = start_mock(tools["mock_upstream"], mock_port, args.chunks, pin, workdir, children)
    ports = {"direct": mock_port}
    log(f"mock upstream on 127.0.0.1:{mock_port} (cpu {pin.aux_cpus if pin.enabled else 'any'})")
    for s in streams:
        problem = check_endpoint(mock_port, body_bytes[s], json_headers, s)
        if problem:
            raise BenchError(
                f"mock upstream pre-flight ({'stream' if s else 'json'}) failed: {problem}"
            )

    # --ratelimit: the `ratelimit` section of each variant's policy, with one random key
    # prefix for this run (its Redis keys are deleted at the end).
    rl_prefix = f"sluice-bench:{secrets.token_hex(6)}:"
    rl_sections = {
        v: RATELIMIT_TEMPLATE.format(store=v, url=args.redis_url, prefix=rl_prefix)
        for v in variants
        if v != "none"
    }
    redis: Any = None
    redis_watch: RedisWatch | None = None
    redis_info: dict[str, Any] = {}
    if "redis" in variants:
        redis = redis_client(args.redis_url)
        try:
            redis.ping()
            version = redis.info("server").get("redis_version")
        except Exception as exc:  # redis.RedisError, OSError
            raise BenchError(f"Redis at {args.redis_url} does not answer: {exc}") from exc
        keys_deleted: list[int] = []

        def drop_keys() -> None:
            try:
                n = delete_redis_keys(redis, rl_prefix)
            except Exception as exc:  # redis.RedisError, OSError
                log(f"warning: could not delete the Redis keys under {rl_prefix!r}: {exc}")
                return
            finally:
                redis.close()
            keys_deleted.append(n)
            if n:
                log(f"deleted {n} Redis keys under {rl_prefix!r}")

        cleanups.append(drop_keys)
        host, port = _redis_host_port(args.redis_url)
        redis_pid = find_redis_server(port) if host in _LOOPBACK and port else None
        affinity = None
        if redis_pid is not None:
            try:
                affinity = sorted(os.sched_getaffinity(redis_pid))
            except OSError:
                pass
        redis_watch = RedisWatch(redis, redis_pid)
        redis_info = {
            "url": args.redis_url,
            "version": version,
            "server_pid": redis_pid,
            "server_cpus_allowed": affinity,
            "pinned_by_benchmark": False,
        }
        if redis_pid is None:
            log(
                f"warning: no redis-server process for {args.redis_url} found on this machine; "
                "Redis CPU time will not be reported"
            )
        else:
            log(
                f"Redis {version} at {args.redis_url}: redis-server pid {redis_pid}, not pinned "
                f"(allowed CPUs {','.join(map(str, affinity or []))}); key prefix {rl_prefix!r}"
            )

    # The proxies under test: name -> (process, its output file).
    servers: dict[str, tuple[subprocess.Popen[bytes], Path]] = {}
    gw_cmds: dict[str, list[str]] = {}
    if not args.direct_only:
        for variant in variants:
            name = gateway_target(variant)
            gw_port = free_port()
            what = "gateway" + ("" if variant == "none" else f" (ratelimit store: {variant})")
            log(
                f"starting {what} on 127.0.0.1:{gw_port} "
                f"(cpu {pin.gateway_cpus if pin.enabled else 'any'}) ..."
            )
            gw_proc, gw_cmds[name], gw_log = start_gateway(
                gw_port,
                mock_port,
                key,
                pin,
                workdir,
                children,
                args.startup_timeout_s,
                name=name,
                extra_policy=rl_sections.get(variant, ""),
            )
            servers[name] = (gw_proc, gw_log)
            ports[name] = gw_port
            log(f"{what} is up (pid {gw_proc.pid})")
            # With a limiter, every answer carries its headers: proof it is on the path.
            required = (RATE_HEADER,) if variant != "none" else ()
            problems = [
                (f"request through the {what} ({'stream' if s else 'json'}) failed", problem)
                for s in streams
                if (
                    problem := check_endpoint(
                        gw_port, body_bytes[s], json_headers, s, require_headers=required
                    )
                )
            ]
            if variant == "redis" and not problems and not redis_keys(redis, rl_prefix):
                problems.append((f"the {what}", f"wrote no keys under {rl_prefix!r} in Redis"))
            for msg, problem in problems:
                if not args.allow_errors:
                    raise BenchError(
                        f"{msg}: {problem}\n--- {name} output ---\n{tail(gw_log)}\n"
                        "(use --allow-errors to benchmark anyway)"
                    )
                log(f"warning: {msg}: {problem}")
    gw_cmd = next(iter(gw_cmds.values()), None)

    lt_cmd: list[str] | None = None
    lt_version: str | None = None
    if args.litellm is not None:
        lt_version = litellm_version(args.litellm)
        lt_port = free_port()
        log(
            f"starting LiteLLM {lt_version or '(version unknown)'} on 127.0.0.1:{lt_port} "
            f"(cpu {pin.gateway_cpus if pin.enabled else 'any'}; takes ~10 s) ..."
        )
        lt_proc, lt_cmd, lt_log = start_litellm(
            args.litellm, lt_port, mock_port, key, pin, workdir, children, args.startup_timeout_s
        )
        servers["litellm"] = (lt_proc, lt_log)
        ports["litellm"] = lt_port
        log(f"LiteLLM is up (pid {lt_proc.pid})")
        # Both kinds always, whatever --stream says: a LiteLLM that cannot serve
        # either is not worth comparing with.
        for s in (False, True):
            body = dict(BASE_BODY, stream=True) if s else dict(BASE_BODY)
            problem = check_endpoint(
                lt_port, json.dumps(body).encode(), json_headers, s, timeout=30.0
            )
            if problem:
                raise BenchError(
                    f"request through LiteLLM ({'stream' if s else 'json'}) failed: {problem}\n"
                    f"--- LiteLLM output ---\n{tail(lt_log)}"
                )

    # Let start-up and pre-flight work settle, so the noise check below and the
    # first run see idle proxies.
    for name, (proc, _log) in servers.items():
        _cpu, waited, quiet = wait_idle(proc.pid, quiet_s=0.5)
        if not quiet:
            log(f"warning: {name} still uses CPU {waited:.0f} s after start-up")

    # Our children are idle now, so any busy time here belongs to someone else.
    busy_before = cpu_busy()
    watched = (
        (_parse_cpu_list(pin.gateway_cpus) | _parse_cpu_list(pin.aux_cpus))
        if pin.enabled
        else set(busy_before)
    )
    noisy = {cpu: frac for cpu, frac in busy_before.items() if cpu in watched and frac > 0.10}
    if noisy:
        log(
            "warning: other processes are using the benchmark CPUs before the start ("
            + ", ".join(f"CPU {cpu} {frac:.0%} busy" for cpu, frac in sorted(noisy.items()))
            + "); the numbers will be noisy"
        )

    plan = [(rnd, s, c, t) for rnd in range(args.rounds) for (s, c) in cells for t in targets]
    per_run = args.warmup_s + args.duration_s
    est_s = sum(per_run + (0.6 if t in servers else 0.2) for *_x, t in plan)
    log(
        f"{len(plan)} runs x {per_run:g} s (rounds={args.rounds}, duration={args.duration_s:g} s, "
        f"warm-up={args.warmup_s:g} s): about {est_s / 60:.1f} min"
    )

    runs: list[dict[str, Any]] = []
    progress = Progress(len(plan))
    try:
        for rnd, s, c, target in plan:
            label = f"round {rnd + 1} {'stream' if s else 'json'} c={c} {target}"
            for name, (proc, out_path) in servers.items():
                if proc.poll() is not None:
                    raise BenchError(
                        f"{name} exited (rc={proc.returncode}) before: {label}\n{tail(out_path)}"
                    )
            if mock_proc.poll() is not None:
                raise BenchError(
                    f"mock upstream exited (rc={mock_proc.returncode}) before: {label}"
                )
            # Redis is watched in every run: in the others it should do nothing.
            if redis_watch is not None:
                redis_watch.start()
            redis_stats: dict[str, Any] = {}
            try:
                # Every proxy's CPU time, the target's and the idle ones'.
                server_cpu0 = {
                    name: process_tree_cpu_seconds(proc.pid) for name, (proc, _p) in servers.items()
                }
                mock_cpu0 = process_tree_cpu_seconds(mock_proc.pid)
                kids0 = os.times()
                t0 = time.monotonic()
                result = run_loadgen(
                    tools["loadgen"],
                    ports[target],
                    bodies[s],
                    [auth_header],
                    c,
                    args.duration_s,
                    args.warmup_s,
                    pin,
                    timeout_s=loadgen_timeout(target),
                )
                wall_s = time.monotonic() - t0
                kids1 = os.times()
                server_cpu = {
                    name: process_tree_cpu_seconds(proc.pid) - server_cpu0[name]
                    for name, (proc, _p) in servers.items()
                }
                mock_cpu_s = process_tree_cpu_seconds(mock_proc.pid) - mock_cpu0
            finally:
                if redis_watch is not None:
                    redis_stats = redis_watch.stop()
            # The CPU shared by mock and loadgen must stay far from saturation in
            # proxy runs, or the client side would limit what is measured.
            loadgen_cpu_s = (kids1.children_user - kids0.children_user) + (
                kids1.children_system - kids0.children_system
            )
            result.update(redis_stats)
            if target == gateway_target("redis"):
                done = result.get("requests_total", 0)
                r_cpu = redis_stats.get("redis_server_cpu_s")
                result["redis_server_cpu_us_per_request"] = (
                    r_cpu * 1e6 / done if r_cpu is not None and done else None
                )
                result["redis_server_cpu_utilization"] = (
                    r_cpu / wall_s if r_cpu is not None and wall_s > 0 else None
                )
                calls = redis_stats["redis_evalsha_calls"]
                result["redis_evalsha_per_request"] = calls / done if done else None
                result["redis_script_us_per_request"] = (
                    redis_stats["redis_evalsha_usec"] / done if done else None
                )
            elif redis_stats.get("redis_commands"):
                progress.write(
                    f"  warning: {label}: Redis executed {redis_stats['redis_commands']} commands "
                    "from other clients during this run"
                )
            result["wall_s"] = wall_s
            result["loadgen_cpu_s"] = loadgen_cpu_s
            result["mock_cpu_s"] = mock_cpu_s
            result["aux_cpu_utilization"] = (loadgen_cpu_s + mock_cpu_s) / wall_s
            result["idle_cpu_s"] = {n: v for n, v in server_cpu.items() if n != target}
            if target in servers:
                cpu_s = server_cpu[target]
                done = result.get("requests_total", 0)
                # Requests the load generator abandoned at the end may still be
                # worked on; wait until the proxy is quiet before the next run.
                drain_cpu_s, drain_s, quiet = wait_idle(servers[target][0].pid)
                in_flight = result.get("in_flight_at_end", 0)
                result[f"{target}_cpu_s"] = cpu_s
                result[f"{target}_cpu_utilization"] = cpu_s / wall_s if wall_s > 0 else None
                result[f"{target}_cpu_us_per_request"] = cpu_s * 1e6 / done if done else None
                result[f"{target}_drain_cpu_s"] = drain_cpu_s
                result[f"{target}_drain_s"] = drain_s
                result[f"{target}_cpu_us_per_request_with_drain"] = (
                    (cpu_s + drain_cpu_s) * 1e6 / (done + in_flight) if done + in_flight else None
                )
                if not quiet:
                    progress.write(
                        f"  warning: {label}: {target} still busy {drain_s:.0f} s after the run"
                    )
            result.update(round=rnd + 1, stream=s, concurrency=c, target=target)
            runs.append(result)
            progress.step(label, result)
            if result.get("loadgen_stderr") and (result["non_2xx"] or result["errors"]):
                progress.write(f"  {label}: {result['loadgen_stderr'][:600]}")
            if target in servers and result["aux_cpu_utilization"] > 0.8:
                progress.write(
                    f"  warning: {label}: mock+loadgen used {result['aux_cpu_utilization']:.0%} "
                    "of their CPU; the client side may be limiting this run"
                )
            for name, idle_s in result["idle_cpu_s"].items():
                if wall_s > 0 and idle_s / wall_s > 0.02:
                    progress.write(
                        f"  warning: {label}: {name} used {idle_s / wall_s:.1%} of a CPU while idle"
                    )
    finally:
        progress.close()

    # A limiter whose store failed admits requests uncounted (on_store_error: open) and
    # logs it: such a run did not measure the store.
    store_errors: dict[str, bool] = {}
    for variant in rl_sections:
        name = gateway_target(variant)
        logged = "rate-limit store unavailable" in tail(servers[name][1], 1_000_000)
        store_errors[variant] = logged
        if logged:
            log(f"warning: {name} logged 'rate-limit store unavailable'; see its runs with care")
    redis_summary: dict[str, Any] | None = None
    if redis_watch is not None:
        # Every gateway is idle now: nothing writes under the prefix any more.
        cleanups.remove(drop_keys)
        drop_keys()
        redis_summary = dict(
            redis_info, **summarize_redis(runs, gateway_target("redis")), keys_deleted=keys_deleted
        )

    summary = summarize(runs, cells, targets, variants)
    idle = summarize_idle(runs)
    table = format_table(summary, variants)
    if pin.enabled:
        gws = "gateway" + ("" if variants == ["none"] else f"s (ratelimit {', '.join(variants)})")
        in_turn = " (measured in turn)" if len(servers) > 1 else ""
        pin_desc = (
            f"{gws}{' and LiteLLM' if 'litellm' in servers else ''}{in_turn} "
            f"on CPU {pin.gateway_cpus}, mock+loadgen on CPU {pin.aux_cpus}"
        )
    else:
        pin_desc = "unpinned"
    print()
    print(
        f"Gateway overhead: {args.rounds} round(s) x {args.duration_s:g} s per cell "
        f"(+{args.warmup_s:g} s warm-up), "
        f"medians over rounds; {pin_desc}; mock sends {args.chunks} SSE events per stream"
        + (f"; LiteLLM {lt_version or '(version unknown)'}" if "litellm" in servers else "")
    )
    print(table)
    if redis_summary is not None:
        print(_redis_line(redis_summary))
    if idle:
        print(
            "Idle proxies (CPU used while another target was measured): "
            + ", ".join(
                f"{name} {v['cpu_utilization']:.2%} of a CPU over {v['wall_s']:.0f} s"
                for name, v in idle.items()
                if v["cpu_utilization"] is not None
            )
        )
    total_bad = sum(r["non_2xx"] + r["errors"] for r in runs)
    if total_bad:
        print(
            f"\nWARNING: {total_bad} non-2xx responses or errors; "
            "see loadgen_stderr in the JSON runs"
        )

    out: Path | None = (
        args.out if args.out is not None else (None if args.direct_only else DEFAULT_OUT)
    )
    if out is None:
        log("\n(--direct-only: results not written; pass --out FILE to save them)")
        return 0
    out = out if out.is_absolute() else Path.cwd() / out
    doc = {
        "benchmark": "gateway_overhead",
        "schema_version": 1,
        "date": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "git": git_info(),
        "machine": dict(machine_info(), cpu_busy_before_start=busy_before),
        "config": {
            "rounds": args.rounds,
            "duration_s": args.duration_s,
            "warmup_s": args.warmup_s,
            "concurrency": args.concurrency_list,
            "stream": streams,
            "mock_sse_events": args.chunks,
            "quick": args.quick,
            "direct_only": args.direct_only,
            "pinning": pin.describe(),
            "path": CHAT_PATH,
            "bodies": {("stream" if s else "json"): body_bytes[s].decode() for s in streams},
            "gateway_command": _redact_cmd(gw_cmd, workdir) if gw_cmd else None,
            "ratelimit": {
                "variants": variants,
                "targets": {v: gateway_target(v) for v in variants},
                "policy_sections": rl_sections,
                "gateway_commands": {n: _redact_cmd(c, workdir) for n, c in gw_cmds.items()},
                "store_errors_logged": store_errors,
            },
            "litellm": (
                {
                    "version": lt_version,
                    "executable": str(args.litellm),
                    "command": _redact_cmd(lt_cmd, workdir) if lt_cmd else None,
                    "config": LITELLM_CONFIG_TEMPLATE.format(
                        model=MODEL, mock_port="<mock port>", master_key="<bench key>"
                    ),
                    "env": {"LITELLM_LOCAL_MODEL_COST_MAP": "True", "LITELLM_LOG": "ERROR"},
                    "cpus": pin.gateway_cpus if pin.enabled else None,
                }
                if "litellm" in servers
                else None
            ),
            "loadgen_timeout_s": {t: loadgen_timeout(t) for t in targets},
            "order": "for each round, for each cell: " + " then ".join(targets),
        },
        "summary": summary,
        "idle_proxies": idle,
        "redis_server": redis_summary,
        "runs": runs,
        "table": table.splitlines(),
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_text(json.dumps(doc, indent=2) + "\n")
    os.replace(tmp, out)
    try:
        shown: Path | str = out.relative_to(Path.cwd())
    except ValueError:
        shown = out
    log(f"\nwrote {shown}")
    return 0


def summarize_redis(runs: list[dict[str, Any]], redis_target: str) -> dict[str, Any]:
    """What Redis did in the Redis variant's runs, and in all the others (should be nothing)."""
    mine = [r for r in runs if r["target"] == redis_target]
    others = [r for r in runs if r["target"] != redis_target]

    def total(rs: list[dict[str, Any]], key: str) -> float | None:
        vals = [r.get(key) for r in rs]
        if not vals or any(v is None for v in vals):
            return None
        return float(sum(v for v in vals if v is not None))

    done = sum(r.get("requests_total", 0) for r in mine)
    cpu = total(mine, "redis_server_cpu_s")
    seen: dict[str, int] = {}
    for r in mine:
        for k, n in r.get("redis_server_cpus_seen", {}).items():
            seen[k] = seen.get(k, 0) + n
    n_seen = sum(seen.values())
    other_cpu = total(others, "redis_server_cpu_s")
    other_wall = sum(r["wall_s"] for r in others)
    return {
        "runs": len(mine),
        "requests": done,
        "cpu_s": cpu,
        "cpu_us_per_request": cpu * 1e6 / done if cpu is not None and done else None,
        "evalsha_per_request": total(mine, "redis_evalsha_calls") / done if done else None,
        "script_us_per_request": total(mine, "redis_evalsha_usec") / done if done else None,
        # Share of samples (every 50 ms) that found its main thread last run on each CPU.
        "cpus_seen": {k: n / n_seen for k, n in sorted(seen.items())} if n_seen else {},
        "other_runs_cpu_utilization": (
            other_cpu / other_wall if other_cpu is not None and other_wall > 0 else None
        ),
        "other_runs_commands": sum(r.get("redis_commands", 0) for r in others),
    }


def _redis_line(info: dict[str, Any]) -> str:
    def f(v: float | None, fmt: str) -> str:
        return "-" if v is None else format(v, fmt)

    where = ", ".join(f"CPU {k} {v:.0%}" for k, v in info["cpus_seen"].items()) or "unknown"
    allowed = info.get("server_cpus_allowed")
    return (
        f"Redis {info.get('version')} (redis-server pid {info.get('server_pid')}, not pinned, "
        f"allowed CPUs {','.join(map(str, allowed)) if allowed else '?'}): over all redis runs "
        f"{f(info['cpu_us_per_request'], '.1f')} us of its CPU per request "
        f"({f(info['evalsha_per_request'], '.2f')} EVALSHA per request, "
        f"{f(info['script_us_per_request'], '.1f')} us in scripts); its main thread was seen on "
        f"{where}; in the other runs it used "
        f"{f(info['other_runs_cpu_utilization'], '.2%')} of a CPU and ran "
        f"{info['other_runs_commands']} commands from other clients"
    )


def _redact_cmd(cmd: list[str], workdir: Path) -> list[str]:
    """The command with the temporary policy path made generic."""
    return [a.replace(str(workdir), "<tmp>") for a in cmd]


if __name__ == "__main__":
    sys.exit(main())
