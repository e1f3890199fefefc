"""Experiments end to end: sticky arm assignment with the arm in `x-sluice-arm` (whole answers,
streams, errors) and in the audit record; a canary rolled back by its error rate; weights set by
hand through the admin endpoint and `sluice experiments`."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from gateway.cli import main
from tests.conftest import ALICE_KEY, BOB_KEY, GatewayFactory
from tests.routing.conftest import backend
from tests.routing.test_shadow import records
from tests.support.mock_upstream import MockUpstream
from tests.support.servers import ServerThread

OPS_KEY = "sk-test-ops-0123456789"
ENV = {"OPS_KEY": OPS_KEY}


def policy(a: str, b: str, experiments: str, audit_dir: Path | None = None) -> str:
    audit = f"audit: {{dir: '{audit_dir}', fsync: none}}\n" if audit_dir else ""
    return f"""
auth:
  keys:
    - {{id: alice, tenant: acme, key_env: ALICE_KEY}}
    - {{id: bob, tenant: beta, key_env: BOB_KEY}}
    - {{id: ops, tenant: acme, key_env: OPS_KEY, admin: true}}
backends:
  a:
{backend(a)}
  b:
{backend(b)}
models:
  m: {{backend: a, model: echo}}
  broken: {{backend: a, model: error-500}}
experiments:
{experiments}
{audit}"""


AB = """\
  ab:
    model: m
    arms: {control: {backend: a, model: echo}, treatment: {backend: b, model: echo, weight: 1}}
  ab-broken:
    model: broken
    arms: {x: {backend: a, model: error-500}, y: {backend: b, model: error-500}}
"""


def chat(gateway: ServerThread, user: str, model: str = "m", **extra: object) -> httpx.Response:
    body = {"model": model, "messages": [{"role": "user", "content": user}], "user": user, **extra}
    return httpx.post(
        f"{gateway.url}/v1/chat/completions",
        json=body,
        headers={"authorization": f"Bearer {ALICE_KEY}"},
        timeout=10,
    )


def test_callers_stay_in_their_arm_which_the_response_and_audit_name(
    mocks: Callable[[], MockUpstream], start_gateway: GatewayFactory, tmp_path: Path
) -> None:
    a, b = mocks(), mocks()
    gateway = start_gateway(policy(a.base_url, b.base_url, AB, tmp_path), ENV)
    users = [f"user-{n}" for n in range(24)]
    arms = {user: chat(gateway, user).headers["x-sluice-arm"] for user in users}
    assert set(arms.values()) == {"control", "treatment"}
    # The arm decided where the request went.
    assert {s["user"] for s in a.record.seen} == {u for u, arm in arms.items() if arm == "control"}
    assert {s["user"] for s in b.record.seen} == {
        u for u, arm in arms.items() if arm == "treatment"
    }
    # Sticky: the same user again, streamed this time, lands in the same arm.
    for user in users[:6]:
        with httpx.stream(
            "POST",
            f"{gateway.url}/v1/chat/completions",
            json={
                "model": "m",
                "messages": [{"role": "user", "content": "x"}],
                "user": user,
                "stream": True,
            },
            headers={"authorization": f"Bearer {ALICE_KEY}"},
            timeout=10,
        ) as stream:
            assert stream.headers["x-sluice-arm"] == arms[user]
            assert "[DONE]" in stream.read().decode()
    # Errors carry the arm too.
    failed = chat(gateway, "user-0", model="broken")
    assert failed.status_code == 502 and failed.headers["x-sluice-arm"] in {"x", "y"}
    gateway.stop()
    logged = records(tmp_path)
    in_ab = [r for r in logged if r["experiment"] == "ab"]
    assert len(in_ab) == len(users) + 6
    for record in in_ab:
        assert record["arm"] == arms[record["personal"]["user"]]
        assert record["route"]["backend"] == ("a" if record["arm"] == "control" else "b")
        assert record["route"]["attempts"] == 1
    assert logged[-1]["experiment"] == "ab-broken" and logged[-1]["arm"] in {"x", "y"}


def test_the_split_follows_the_weights_by_api_key(
    mocks: Callable[[], MockUpstream], start_gateway: GatewayFactory
) -> None:
    a, b = mocks(), mocks()
    by_key = AB.replace("    model: m\n", "    model: m\n    sticky_by: api_key\n", 1)
    gateway = start_gateway(policy(a.base_url, b.base_url, by_key), ENV)
    seen = Counter()
    for key in (ALICE_KEY, BOB_KEY):
        for n in range(3):
            response = httpx.post(
                f"{gateway.url}/v1/chat/completions",
                json={"model": "m", "messages": [{"role": "user", "content": "x"}], "user": f"{n}"},
                headers={"authorization": f"Bearer {key}"},
                timeout=10,
            )
            seen[(key, response.headers["x-sluice-arm"])] += 1
    # Every request of one key went to one arm, whatever the user field said.
    assert sorted(seen.values()) == [3, 3]


CANARY = """\
  canary-test:
    model: m
    sticky_by: header:x-session-id
    arms: {stable: {backend: a, model: echo}, canary: {backend: b, model: error-500}}
    canary:
      arm: canary
      schedule: [{after_s: 0, weight: 100}]
      rollback: {max_error_rate: 0.5, min_requests: 3, window_s: 60}
"""


def session(gateway: ServerThread, sid: str) -> httpx.Response:
    return httpx.post(
        f"{gateway.url}/v1/chat/completions",
        json={"model": "m", "messages": [{"role": "user", "content": "x"}]},
        headers={"authorization": f"Bearer {ALICE_KEY}", "x-session-id": sid},
        timeout=10,
    )


def admin(gateway: ServerThread, key: str | None = OPS_KEY, **body: object) -> httpx.Response:
    url = f"{gateway.url}/admin/experiments/canary-test"
    headers = {"authorization": f"Bearer {key}"} if key else {}
    if body:
        return httpx.post(url, json=body, headers=headers, timeout=10)
    return httpx.get(url, headers=headers, timeout=10)


def test_a_failing_canary_rolls_itself_back(
    mocks: Callable[[], MockUpstream], start_gateway: GatewayFactory
) -> None:
    a, b = mocks(), mocks()
    gateway = start_gateway(policy(a.base_url, b.base_url, CANARY), ENV)
    for n in range(3):  # all traffic on the canary, which fails
        response = session(gateway, f"s{n}")
        assert (response.status_code, response.headers["x-sluice-arm"]) == (502, "canary")
    status = admin(gateway).json()
    assert "error rate 100.0%" in status["canary"]["rolled_back"]
    assert status["arms"]["canary"]["share"] == 0
    for n in range(3):  # the same sessions now get the stable arm
        response = session(gateway, f"s{n}")
        assert (response.status_code, response.headers["x-sluice-arm"]) == (200, "stable")
    metrics = httpx.get(f"{gateway.url}/metrics", timeout=5).text
    assert 'sluice_canary_rolled_back{experiment="canary-test"} 1.0' in metrics
    assert 'sluice_experiment_arm_share{arm="stable",experiment="canary-test"} 1.0' in metrics


def test_the_admin_endpoint_needs_an_admin_key_and_checks_its_input(
    mocks: Callable[[], MockUpstream], start_gateway: GatewayFactory
) -> None:
    a, b = mocks(), mocks()
    gateway = start_gateway(policy(a.base_url, b.base_url, CANARY), ENV)
    assert admin(gateway, key=None).status_code == 401
    refused = admin(gateway, key=ALICE_KEY, arm="canary", weight=0)
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "admin_required"
    assert admin(gateway, arm="stable", weight=10).status_code == 400
    assert admin(gateway, arm="canary", weight=101).status_code == 400
    assert admin(gateway, arm="canary").status_code == 400
    assert admin(gateway, action="explode").status_code == 400
    missing = httpx.get(
        f"{gateway.url}/admin/experiments/nope",
        headers={"authorization": f"Bearer {OPS_KEY}"},
        timeout=5,
    )
    assert missing.status_code == 404 and "canary-test" in missing.json()["error"]["message"]
    changed = admin(gateway, arm="canary", weight=0)
    assert changed.status_code == 200
    assert changed.json()["canary"]["weight_set_by_hand"] == 0
    assert session(gateway, "s1").headers["x-sluice-arm"] == "stable"


def test_sluice_experiments_commands_drive_a_running_gateway(
    mocks: Callable[[], MockUpstream],
    start_gateway: GatewayFactory,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    a, b = mocks(), mocks()
    gateway = start_gateway(policy(a.base_url, b.base_url, CANARY), ENV)
    monkeypatch.setenv("OPS", OPS_KEY)
    common = ["--url", gateway.url, "--key-env", "OPS"]
    assert main(["experiments", "set-weight", "canary-test", "canary", "0", *common]) == 0
    assert "canary canary: 0% of traffic, set by hand" in capsys.readouterr().out
    assert session(gateway, "s").headers["x-sluice-arm"] == "stable"
    assert main(["experiments", "rollback", "canary-test", *common]) == 0
    assert "ROLLED BACK: rolled back by hand" in capsys.readouterr().out
    assert main(["experiments", "resume", "canary-test", *common, "--format", "json"]) == 0
    assert '"rolled_back": null' in capsys.readouterr().out
    assert session(gateway, "s").headers["x-sluice-arm"] == "canary"
    assert main(["experiments", "status", "nope", *common]) == 1
    assert "HTTP 404" in capsys.readouterr().err
    monkeypatch.delenv("OPS")
    assert main(["experiments", "status", "canary-test", *common]) == 2
