#!/usr/bin/env python3
"""Measure what the Sluicegate gateway adds over calling the upstream directly.

A fast C mock of an OpenAI-compatible upstream (bench/mock_upstream.c) and a
closed-loop C load generator (bench/loadgen.c) share one CPU; the gateway gets
another CPU to itself. For every (stream, concurrency) cell the load generator
runs against the mock directly and against the gateway in front of it, in
interleaved rounds, and the medians over rounds are compared. With --litellm,
LiteLLM's proxy is started in front of the same mock, on the gateway's CPU, and
measured as a third target in the same rounds (only one of the two proxies is
under load at any time; the other sits idle).

    .venv/bin/python bench/gateway_overhead.py            # 3 rounds x 5 s per cell
    .venv/bin/python bench/gateway_overhead.py --quick    # 1 round x 2 s per cell
    .venv/bin/python bench/gateway_overhead.py --direct-only --quick
    .venv/bin/python bench/gateway_overhead.py --litellm  # also LiteLLM's proxy

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
import time
from collections.abc import Callable
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
LOADGEN_TIMEOUT_S = {"direct": 15.0, "gateway": 15.0, "litellm": 60.0}
# Proxies under test, in the order they run within a cell (after "direct").
SERVER_TARGETS = ("gateway", "litellm")

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


def start_gateway(
    port: int,
    mock_port: int,
    key: str,
    pin: Pinning,
    workdir: Path,
    children: Children,
    startup_timeout: float,
) -> tuple[subprocess.Popen[bytes], list[str], Path]:
    policy = workdir / "policy.yaml"
    policy.write_text(
        POLICY_TEMPLATE.format(gateway_port=port, mock_port=mock_port, key_env=KEY_ENV)
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
    out_path = workdir / "gateway.log"
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
    children.add("gateway", proc)
    wait_healthy("gateway", proc, cmd, out_path, port, "/healthz", startup_timeout)
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
    port: int, body: bytes, headers: dict[str, str], stream: bool, timeout: float = 15.0
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
    runs: list[dict[str, Any]], cells: list[tuple[bool, int]], targets: list[str]
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
            if target in SERVER_TARGETS:
                for key in (
                    "cpu_us_per_request",
                    "cpu_utilization",
                    "cpu_us_per_request_with_drain",
                    "drain_cpu_s",
                ):
                    agg[key] = _median([r.get(f"{target}_{key}") for r in rs])
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
        summary.append(row)
    return summary


def summarize_idle(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """CPU each proxy used while it was not the target (it should be ~0)."""
    out: dict[str, Any] = {}
    for name in SERVER_TARGETS:
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


def format_table(summary: list[dict[str, Any]]) -> str:
    """One line per cell; the LiteLLM columns appear only when it was measured."""
    with_litellm = any(row.get("litellm") for row in summary)

    def num(v: float | None, fmt: str) -> str:
        return "-" if v is None else format(v, fmt)

    def p50_p99(agg: dict[str, Any]) -> str:
        if not agg:
            return "-"
        return f"{num(agg.get('lat_p50_ms'), '.3f')} / {num(agg.get('lat_p99_ms'), '.3f')}"

    def cells(row: dict[str, Any]) -> list[tuple[str, str]]:
        d = row.get("direct") or {}
        g = row.get("gateway") or {}
        lt = row.get("litellm") or {}
        ratio = row.get("gw_litellm_throughput_ratio")
        out = [
            ("mode", "stream" if row["stream"] else "json"),
            ("conc", str(row["concurrency"])),
            ("direct req/s", num(d.get("rps"), ",.0f")),
            ("gw req/s", num(g.get("rps"), ",.0f")),
        ]
        if with_litellm:
            out.append(("litellm req/s", num(lt.get("rps"), ",.1f")))
            out.append(("gw/litellm req/s", "-" if ratio is None else f"{ratio:.1f}x"))
        out += [("direct p50/p99 ms", p50_p99(d)), ("gw p50/p99 ms", p50_p99(g))]
        if with_litellm:
            out.append(("litellm p50/p99 ms", p50_p99(lt)))
        out += [
            ("added p50 ms", num(row.get("added_p50_ms"), "+.3f")),
            ("gw TTFB p50 ms", num(g.get("ttfb_p50_ms"), ".3f") if row["stream"] else "-"),
            ("gw CPU us/req", num(g.get("cpu_us_per_request"), ",.0f")),
        ]
        if with_litellm:
            out.append(("litellm CPU us/req", num(lt.get("cpu_us_per_request"), ",.0f")))
        out += [
            ("non-2xx", str(sum(a.get("non_2xx", 0) for a in (d, g, lt)))),
            ("errors", str(sum(a.get("errors", 0) for a in (d, g, lt)))),
        ]
        return out

    headers = [h for h, _text in cells({"stream": False, "concurrency": 0})]
    rows = [[text for _h, text in cells(row)] for row in summary]
    widths = [
        max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)
    ]
    lines = [
        "  ".join(
            h.rjust(w) if i > 1 else h.ljust(w)
            for i, (h, w) in enumerate(zip(headers, widths, strict=True))
        ),
        "  ".join("-" * w for w in widths),
    ]
    for r in rows:
        lines.append(
            "  ".join(
                c.rjust(w) if i > 1 else c.ljust(w)
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
    try:
        return _run(args, children, workdir)
    except BenchError as exc:
        log(f"\nERROR: {exc}")
        return 1
    except KeyboardInterrupt:
        log("\ninterrupted; stopping child processes (no results written)")
        return 130
    finally:
        children.stop_all()
        shutil.rmtree(workdir, ignore_errors=True)
        restore_signals()


def _raise_interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def _run(args: argparse.Namespace, children: Children, workdir: Path) -> int:
    tools = build_tools(force=args.rebuild)
    pin = Pinning(args.gateway_cpus, args.aux_cpus, enabled=not args.no_pin)
    if pin.note:
        log(f"warning: {pin.note}")

    streams = {"both": [False, True], "off": [False], "on": [True]}[args.stream]
    cells = [(s, c) for s in streams for c in args.concurrency_list]
    if args.direct_only:
        targets = ["direct"]
    elif args.litellm is not None:
        targets = ["direct", "gateway", "litellm"]
    else:
        targets = ["direct", "gateway"]

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

    # The proxies under test: name -> (process, its output file).
    servers: dict[str, tuple[subprocess.Popen[bytes], Path]] = {}
    gw_cmd: list[str] | None = None
    if not args.direct_only:
        gw_port = free_port()
        log(
            f"starting gateway on 127.0.0.1:{gw_port} "
            f"(cpu {pin.gateway_cpus if pin.enabled else 'any'}) ..."
        )
        gw_proc, gw_cmd, gw_log = start_gateway(
            gw_port, mock_port, key, pin, workdir, children, args.startup_timeout_s
        )
        servers["gateway"] = (gw_proc, gw_log)
        ports["gateway"] = gw_port
        log(f"gateway is up (pid {gw_proc.pid})")
        for s in streams:
            problem = check_endpoint(gw_port, body_bytes[s], json_headers, s)
            if problem:
                msg = f"request through the gateway ({'stream' if s else 'json'}) failed: {problem}"
                if not args.allow_errors:
                    raise BenchError(
                        f"{msg}\n--- gateway output ---\n{tail(gw_log)}\n"
                        "(use --allow-errors to benchmark anyway)"
                    )
                log(f"warning: {msg}")

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
                timeout_s=LOADGEN_TIMEOUT_S[target],
            )
            wall_s = time.monotonic() - t0
            kids1 = os.times()
            server_cpu = {
                name: process_tree_cpu_seconds(proc.pid) - server_cpu0[name]
                for name, (proc, _p) in servers.items()
            }
            # The CPU shared by mock and loadgen must stay far from saturation in
            # proxy runs, or the client side would limit what is measured.
            loadgen_cpu_s = (kids1.children_user - kids0.children_user) + (
                kids1.children_system - kids0.children_system
            )
            mock_cpu_s = process_tree_cpu_seconds(mock_proc.pid) - mock_cpu0
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

    summary = summarize(runs, cells, targets)
    idle = summarize_idle(runs)
    table = format_table(summary)
    if pin.enabled:
        pin_desc = (
            f"gateway{' and LiteLLM (measured in turn)' if 'litellm' in servers else ''} "
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
            "loadgen_timeout_s": {t: LOADGEN_TIMEOUT_S[t] for t in targets},
            "order": "for each round, for each cell: " + " then ".join(targets),
        },
        "summary": summary,
        "idle_proxies": idle,
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


def _redact_cmd(cmd: list[str], workdir: Path) -> list[str]:
    """The command with the temporary policy path made generic."""
    return [a.replace(str(workdir), "<tmp>") for a in cmd]


if __name__ == "__main__":
    sys.exit(main())
