"""The whole loop on a real gateway: requests through the openai SDK land in experiment arms,
clients score them with `POST /v1/feedback`, and `sluice experiments report` reads both back
from the audit log the gateway wrote."""

from __future__ import annotations

from pathlib import Path

import httpx
import openai
import orjson

from gateway.cli import main
from tests.conftest import ALICE_KEY, GatewayFactory
from tests.support.mock_upstream import MockUpstream

USERS = 40


def policy(upstream_url: str, audit_dir: Path) -> str:
    return f"""
auth:
  keys:
    - {{id: alice, tenant: acme, key_env: ALICE_KEY}}
backends:
  a: {{kind: openai, base_url: {upstream_url}}}
  b: {{kind: openai, base_url: {upstream_url}}}
models:
  m: {{backend: a, model: echo}}
experiments:
  checkout:
    model: m
    sticky_by: user
    arms:
      control: {{backend: a, model: echo, weight: 1}}
      treatment: {{backend: b, model: echo, weight: 1}}
audit: {{dir: '{audit_dir}', fsync: none}}
"""


def test_requests_and_feedback_come_back_in_the_report(
    upstream: MockUpstream, start_gateway: GatewayFactory, tmp_path: Path, capsys
) -> None:
    audit_dir = tmp_path / "audit"
    text = policy(upstream.base_url, audit_dir)
    server = start_gateway(text)
    sdk = openai.OpenAI(base_url=f"{server.url}/v1", api_key=ALICE_KEY, max_retries=0)
    arms: dict[str, int] = {"control": 0, "treatment": 0}
    with httpx.Client(base_url=server.url, timeout=10) as http:
        for n in range(USERS):
            raw = sdk.chat.completions.with_raw_response.create(
                model="m", messages=[{"role": "user", "content": "hi"}], user=f"user-{n}"
            )
            arm = raw.headers["x-sluice-arm"]
            arms[arm] += 1
            score = 1.0 if arm == "treatment" else -1.0 + (n % 2)  # control: -1 or 0
            answer = http.post(
                "/v1/feedback",
                json={"request_id": raw.headers["x-request-id"], "score": score},
                headers={"authorization": f"Bearer {ALICE_KEY}"},
            )
            assert answer.status_code == 202
    server.stop()
    assert arms["control"] and arms["treatment"]

    policy_file = tmp_path / "policy.yaml"
    policy_file.write_text(text)
    argv = ["experiments", "report", "checkout", "--dir", str(audit_dir), "--format", "json"]
    assert main([*argv, "--config", str(policy_file)]) == 0
    report = orjson.loads(capsys.readouterr().out)

    by_arm = {arm["arm"]: arm for arm in report["arms"]}
    assert {name: arm["requests"] for name, arm in by_arm.items()} == arms
    assert by_arm["control"]["backends"] == {"a": arms["control"]}
    assert by_arm["treatment"]["backends"] == {"b": arms["treatment"]}
    assert by_arm["treatment"]["feedback"] == {
        "n": arms["treatment"],
        "mean": {"value": 1.0, "ci": [1.0, 1.0]},
    }
    assert by_arm["control"]["feedback"]["n"] == arms["control"]
    assert by_arm["control"]["feedback"]["mean"]["value"] < 0
    assert report["feedback"] == {"records": USERS, "matched": USERS}
    assert report["sample_ratio"]["weights"] == {"control": 1.0, "treatment": 1.0}
    assert report["sample_ratio"]["weights_source"] == "configured"
    assert all(arm["errors"] == 0 and arm["latency_ms"]["n"] for arm in report["arms"])
    assert main(["audit", "verify", "--dir", str(audit_dir)]) == 0
