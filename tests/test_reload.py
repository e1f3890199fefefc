"""Policy reload: SIGHUP and file changes swap the policy in; broken files never do.

The subprocess tests run `python -m gateway serve` for real; the others run the app in-process.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import signal
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from gateway.app import create_app
from gateway.config.loader import parse_policy
from gateway.service import Gateway
from tests.conftest import ALICE_KEY, KEYS_ENV, policy_yaml
from tests.support.mock_upstream import MockUpstream
from tests.support.processes import GatewayProcess, wait_until
from tests.support.servers import ServerThread

AUTH = {"authorization": f"Bearer {ALICE_KEY}"}


def policy_for(upstream_url: str, models: list[str]) -> str:
    routes = "\n".join(f"  {name}: {{backend: mock, model: echo}}" for name in models)
    return f"""\
server: {{drain_timeout_s: 1}}
auth:
  keys:
    - {{id: alice, tenant: acme, key_env: ALICE_KEY}}
backends:
  mock:
    kind: openai
    base_url: {upstream_url}
models:
{routes}
"""


BROKEN_YAML = """\
auth:
  keys:
    - {id: alice, tenant: acme, key_env: ALICE_KEY}
backends:
  mock: {kind: openai, base_url: "http://127.0.0.1:9/v1"
models:
  m1: {backend: mock}
"""
BROKEN_LINE = 6  # where YAML notices the unclosed flow mapping of line 5


def replace_atomically(path: Path, text: str) -> None:
    """How editors and deploy tools write: a new file renamed over the old one."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def point_symlink(link: Path, target: Path) -> None:
    """`ln -sfn target link`, atomically."""
    tmp = link.with_name(f".{link.name}.new")
    os.symlink(target, tmp)
    os.replace(tmp, link)


@pytest.fixture
def serve() -> Iterator[Callable[[Path], GatewayProcess]]:
    started: list[GatewayProcess] = []

    def start(config: Path) -> GatewayProcess:
        process = GatewayProcess(config, KEYS_ENV)
        started.append(process)
        process.wait_healthy()
        return process

    yield start
    for process in started:
        process.stop()


def test_sighup_reloads_and_a_broken_file_keeps_the_old_policy(
    upstream: MockUpstream, serve: Callable[[Path], GatewayProcess], tmp_path: Path
) -> None:
    # Laid out like a Kubernetes ConfigMap volume: the policy's folder is a symlink that
    # deploys swap atomically. No file watch sees that swap, so only SIGHUP can apply it.
    for version, text in [
        ("v1", policy_for(upstream.base_url, ["m1"])),
        ("v2", policy_for(upstream.base_url, ["m1", "m2"])),
        ("v3", BROKEN_YAML),
    ]:
        (tmp_path / version).mkdir()
        (tmp_path / version / "policy.yaml").write_text(text, encoding="utf-8")
    current = tmp_path / "current"
    current.symlink_to(tmp_path / "v1")
    gateway = serve(current / "policy.yaml")
    assert gateway.models() == ["m1"]

    # (a) a new model arrives with SIGHUP
    point_symlink(current, tmp_path / "v2")
    gateway.proc.send_signal(signal.SIGHUP)
    wait_until(lambda: "m2" in gateway.models(), "SIGHUP added m2")
    assert gateway.models() == ["m1", "m2"]
    gateway.wait_for_stderr(r"policy reloaded from \S+ \(SIGHUP\)")
    assert gateway.chat("m2").json()["choices"][0]["message"]["content"] == "echo: hi"

    # (b) a broken file is refused with its line; the gateway keeps the policy it had
    point_symlink(current, tmp_path / "v3")
    gateway.proc.send_signal(signal.SIGHUP)
    gateway.wait_for_stderr(
        r"policy reload \(SIGHUP\) refused; the current policy stays:\n"
        rf"\S+/current/policy.yaml:{BROKEN_LINE}: <top>: invalid YAML"
    )
    assert gateway.proc.poll() is None
    assert gateway.models() == ["m1", "m2"]
    response = gateway.chat("m2")
    assert response.status_code == 200, response.text


def test_a_changed_file_is_picked_up_without_sighup(
    upstream: MockUpstream, serve: Callable[[Path], GatewayProcess], tmp_path: Path
) -> None:
    path = tmp_path / "policy.yaml"
    path.write_text(policy_for(upstream.base_url, ["m1", "m2"]), encoding="utf-8")
    gateway = serve(path)
    assert gateway.models() == ["m1", "m2"]

    # (c) written the way editors do: a temporary file renamed over the policy
    replace_atomically(path, policy_for(upstream.base_url, ["m1", "m2", "m3"]))
    wait_until(lambda: "m3" in gateway.models(), "the file watch added m3")
    gateway.wait_for_stderr(r"policy reloaded from \S+ \(file changed\)")

    # a broken file written in place is refused as well, and m3 keeps working
    path.write_text(BROKEN_YAML, encoding="utf-8")
    # (the pattern names the line, so a refusal of a half-written file would not match)
    gateway.wait_for_stderr(
        r"policy reload \(file changed\) refused; the current policy stays:\n"
        rf"{re.escape(str(path))}:{BROKEN_LINE}: <top>: invalid YAML"
    )
    assert gateway.models() == ["m1", "m2", "m3"]
    assert gateway.chat("m3").status_code == 200


def test_the_file_watch_follows_a_swapped_symlink(
    upstream: MockUpstream, serve: Callable[[Path], GatewayProcess], tmp_path: Path
) -> None:
    # `ln -sfn policy-v2.yaml policy.yaml`: the link is replaced, the file it named is untouched.
    (tmp_path / "policy-v1.yaml").write_text(policy_for(upstream.base_url, ["m1"]), "utf-8")
    (tmp_path / "policy-v2.yaml").write_text(policy_for(upstream.base_url, ["m1", "m2"]), "utf-8")
    link = tmp_path / "policy.yaml"
    link.symlink_to("policy-v1.yaml")
    gateway = serve(link)
    assert gateway.models() == ["m1"]

    point_symlink(link, Path("policy-v2.yaml"))
    wait_until(lambda: "m2" in gateway.models(), "the file watch followed the new link")


# In-process: the app runs in a ServerThread, so SIGHUP is not available and the file watch
# does the reloading.


@dataclass
class Reloading:
    server: ServerThread
    path: Path
    gateway: Gateway


@pytest.fixture
def start_reloading_gateway(tmp_path: Path) -> Iterator[Callable[..., Reloading]]:
    started: list[ServerThread] = []

    def start(text: str, bind_host: str | None = None) -> Reloading:
        path = tmp_path / "policy.yaml"
        path.write_text(text, encoding="utf-8")
        policy = parse_policy(text, str(path), KEYS_ENV)
        app = create_app(policy, policy_path=path, env=KEYS_ENV, bind_host=bind_host)
        server = ServerThread(app).start()
        started.append(server)
        return Reloading(server, path, app.state)  # type: ignore[attr-defined]

    yield start
    for server in started:
        server.stop()


def test_requests_in_flight_finish_under_the_old_policy(
    upstream: MockUpstream, start_reloading_gateway: Callable[..., Reloading]
) -> None:
    # Generous timeouts: only the test's own release may end the held stream.
    started = start_reloading_gateway(
        policy_yaml(upstream.base_url, read_s=60).replace("total_s: 10", "total_s: 120")
    )
    server, path, gateway = started.server, started.path, started.gateway
    old_client = gateway.runtime.upstreams["mock"]
    body = {"model": "gpt-hold", "stream": True, "messages": [{"role": "user", "content": "x"}]}

    with (
        httpx.Client(base_url=server.url, headers=AUTH, timeout=10) as client,
        client.stream("POST", "/v1/chat/completions", json=body) as stream,
    ):
        assert stream.status_code == 200
        lines = stream.iter_lines()
        received = [next(lines)]
        while "first" not in received[-1]:
            received.append(next(lines))
        assert upstream.record.first_chunks_sent.wait(5)

        # The new policy drops gpt-hold and changes the backend, so its client is retired too.
        new_text = policy_yaml(upstream.base_url, read_s=61).replace("total_s: 10", "total_s: 120")
        new_text = new_text.replace("  gpt-hold: {backend: mock, model: 'hold'}\n", "")
        assert "gpt-hold" not in new_text
        replace_atomically(path, new_text)

        def hold_is_gone() -> bool:
            listed = client.get("/v1/models").json()["data"]
            return "gpt-hold" not in {m["id"] for m in listed}

        wait_until(hold_is_gone, "the reloaded policy no longer routes gpt-hold", timeout=30)
        assert gateway.runtime.upstreams["mock"] is not old_client

        upstream.record.release.set()
        received.extend(lines)

    events = [line for line in received if line.startswith("data: ")]
    assert events[-1] == "data: [DONE]"
    assert '"content":" last"' in "".join(events)
    assert not any('"error"' in event for event in events)
    assert not upstream.record.stream_cancelled.is_set()


def test_reload_refuses_auth_none_on_a_public_bind(
    upstream: MockUpstream,
    start_reloading_gateway: Callable[..., Reloading],
    caplog: pytest.LogCaptureFixture,
) -> None:
    text = policy_for(upstream.base_url, ["m1"])
    started = start_reloading_gateway(text, bind_host="0.0.0.0")
    server, path, gateway = started.server, started.path, started.gateway
    opened = policy_for(upstream.base_url, ["m1", "m2"])
    opened = opened[: opened.index("auth:")] + "auth: none\n" + opened[opened.index("backends:") :]

    with caplog.at_level(logging.WARNING, logger="sluicegate.reload"):
        replace_atomically(path, opened)
        wait_until(
            lambda: any("auth: none is only allowed" in r.getMessage() for r in caplog.records),
            "the reload was refused",
        )
    assert gateway.policy.auth.mode == "keys"
    assert httpx.get(f"{server.url}/v1/models", timeout=5).status_code == 401


# Unit level: Gateway.swap and the retired upstream clients.

SWAP_POLICY = """\
server: {{drain_timeout_s: {drain}}}
auth: none
backends:
  up: {{kind: openai, base_url: "http://127.0.0.1:9/v1", timeouts: {{read_s: {read_s}}}}}
models:
{models}
"""


def swap_policy(drain: float, read_s: float = 5, models: tuple[str, ...] = ("m1",)):
    routes = "\n".join(f"  {m}: {{backend: up}}" for m in models)
    return parse_policy(SWAP_POLICY.format(drain=drain, read_s=read_s, models=routes), "s.yaml", {})


async def test_swap_closes_retired_clients_only_after_the_drain_timeout() -> None:
    drain = 0.3
    gateway = Gateway(swap_policy(drain), {})
    loop = asyncio.get_running_loop()
    retired = gateway.runtime.upstreams["up"]
    closed_at: list[float] = []
    closed = asyncio.Event()
    real_aclose = retired.aclose

    async def aclose() -> None:
        closed_at.append(loop.time())
        await real_aclose()
        closed.set()

    retired.aclose = aclose  # type: ignore[method-assign]
    swapped_at = loop.time()
    gateway.swap(swap_policy(drain, read_s=6))
    try:
        assert gateway.runtime.upstreams["up"] is not retired
        await asyncio.sleep(0)
        assert closed_at == []
        await asyncio.wait_for(closed.wait(), timeout=5)
        assert len(closed_at) == 1
        assert closed_at[0] - swapped_at >= drain
    finally:
        await gateway.aclose()


async def test_swap_keeps_unchanged_clients() -> None:
    gateway = Gateway(swap_policy(0), {})
    before = gateway.runtime
    gateway.swap(swap_policy(0, models=("m1", "m2")))
    try:
        assert set(gateway.runtime.routes) == {"m1", "m2"}
        assert gateway.runtime.upstreams["up"] is before.upstreams["up"]
        assert before.retired(gateway.runtime) == []
        assert before.routes["m1"].upstream is gateway.runtime.routes["m1"].upstream
    finally:
        await gateway.aclose()
