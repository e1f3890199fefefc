"""Shadow traffic end to end: a slow or failing shadow backend neither changes nor delays the
primary's answers (the same run without a shadow is the reference), copies in flight are capped,
and both answers' comparison lands in the audit record."""

from __future__ import annotations

import random
from collections.abc import Callable
from pathlib import Path

import httpx
import orjson
from scipy.stats import binomtest

from gateway.audit.segment import SEGMENT_NAME
from gateway.config.routing import ShadowConfig
from gateway.routing.shadow import ShadowRunner, answer_text
from tests.conftest import ALICE_KEY, GatewayFactory
from tests.routing.conftest import backend, sdk, streamed_text
from tests.support.mock_upstream import MockUpstream
from tests.support.processes import wait_until
from tests.support.servers import ServerThread, free_port

PROMPTS = [f"question {n}" for n in range(4)]


def policy(primary: str, audit_dir: Path, shadow: str | None = None, extra: str = "") -> str:
    copy = f", shadow: {{{shadow}}}" if shadow is not None else ""
    return f"""
auth:
  keys: [{{id: alice, tenant: acme, key_env: ALICE_KEY}}]
backends:
  main:
{backend(primary)}
{extra}
models:
  m: {{backend: main, model: echo{copy}}}
audit: {{dir: '{audit_dir}', fsync: none}}
"""


def candidate(url: str) -> str:
    # The shadow backend may be slow: its own generous timeouts, one attempt.
    return (
        f"  candidate:\n    kind: openai\n    base_url: {url}\n    retries: {{attempts: 1}}\n"
        "    timeouts: {connect_s: 1, read_s: 30, total_s: 60}\n"
    )


def run(gateway: ServerThread) -> list[str]:
    """The primary's answers to the same requests, whole and streamed, in order."""
    client = sdk(gateway)
    answers = []
    for n, prompt in enumerate(PROMPTS):
        messages = [{"role": "user", "content": prompt}]
        headers = {"x-request-id": f"req-{n}"}
        if n % 2:
            stream = client.chat.completions.create(
                model="m", messages=messages, stream=True, extra_headers=headers
            )
            answers.append(streamed_text(stream))
        else:
            answer = client.chat.completions.create(
                model="m", messages=messages, extra_headers=headers
            )
            answers.append(answer.choices[0].message.content or "")
    return answers


def records(directory: Path) -> list[dict]:
    out = []
    for path in sorted(p for p in directory.iterdir() if SEGMENT_NAME.match(p.name)):
        for line in path.read_bytes().splitlines():
            entry = orjson.loads(line)
            if entry.get("type") != "seal":
                out.append(entry)
    return out


def test_a_held_shadow_neither_changes_nor_delays_the_primary(
    mocks: Callable[[], MockUpstream], start_gateway: GatewayFactory, tmp_path: Path
) -> None:
    reference_upstream = mocks()
    reference = run(start_gateway(policy(reference_upstream.base_url, tmp_path / "plain")))

    primary, shadow = mocks(), mocks()
    audit_dir = tmp_path / "shadowed"
    copy = "backend: candidate, model: hold, sample_rate: 1, timeout_s: 20, max_concurrency: 10"
    gateway = start_gateway(policy(primary.base_url, audit_dir, copy, candidate(shadow.base_url)))
    answers = run(gateway)

    # Same answers, same requests upstream, as without the shadow.
    assert answers == reference
    assert len(primary.record.seen) == len(reference_upstream.record.seen) == len(PROMPTS)
    # Every copy reached the shadow backend, and every one of them is still held there: each
    # primary answer arrived before its copy's (ordering, not timing).
    wait_until(lambda: len(shadow.record.seen) == len(PROMPTS), "every copy arrived")
    assert not shadow.record.release.is_set()
    assert [s["model"] for s in shadow.record.seen] == ["hold"] * len(PROMPTS)
    assert {h["x-request-id"] for h in shadow.record.headers} == {
        f"req-{n}-shadow" for n in range(len(PROMPTS))
    }

    shadow.record.release.set()
    gateway.stop()  # the records wait for their copies; stopping drains them
    by_id = {r["request_id"]: r for r in records(audit_dir)}
    assert set(by_id) == {f"req-{n}" for n in range(len(PROMPTS))}
    whole, streamed = by_id["req-0"]["shadow"], by_id["req-1"]["shadow"]
    assert whole["backend"] == "candidate" and whole["model"] == "hold"
    assert whole["status"] == 200 and whole["exact_match"] is True  # held, then the same echo
    assert whole["length"] == whole["primary_length"] == len("echo: question 0")
    assert whole["latency_ms"] > 0 and whole["ttft_ms"] is None
    # A held stream answers "first last": a different text, measured from its first chunk.
    assert streamed["status"] == 200 and streamed["exact_match"] is False
    assert streamed["length"] == len("first last") and streamed["ttft_ms"] is not None
    assert by_id["req-1"]["outcome"] == "ok" and by_id["req-1"]["status"] == 200


def test_a_failing_shadow_changes_nothing_for_the_client(
    mocks: Callable[[], MockUpstream], start_gateway: GatewayFactory, tmp_path: Path
) -> None:
    primary, broken = mocks(), mocks()
    refused = f"http://127.0.0.1:{free_port()}/v1"
    extra = candidate(broken.base_url) + candidate(refused).replace("candidate", "gone")
    reference = run(start_gateway(policy(mocks().base_url, tmp_path / "plain")))
    for target, code in (("candidate, model: error-500", 502), ("gone", 503)):
        audit_dir = tmp_path / target.split(",")[0]
        copy = f"backend: {target}, sample_rate: 1, timeout_s: 5"
        gateway = start_gateway(policy(primary.base_url, audit_dir, copy, extra))
        assert run(gateway) == reference
        gateway.stop()
        shadows = [r["shadow"] for r in records(audit_dir)]
        assert len(shadows) == len(PROMPTS)
        assert all(s["status"] == code and s["exact_match"] is None for s in shadows), shadows


def test_a_shadow_past_its_timeout_is_recorded_as_such(
    mocks: Callable[[], MockUpstream], start_gateway: GatewayFactory, tmp_path: Path
) -> None:
    primary, slow = mocks(), mocks()
    copy = "backend: candidate, model: hold, sample_rate: 1, timeout_s: 0.2"
    gateway = start_gateway(policy(primary.base_url, tmp_path, copy, candidate(slow.base_url)))
    answer = sdk(gateway).chat.completions.create(
        model="m", messages=[{"role": "user", "content": "x"}]
    )
    assert answer.choices[0].message.content == "echo: x"
    gateway.stop()
    (record,) = records(tmp_path)
    assert record["shadow"]["status"] == 504 and record["shadow"]["error"] == "shadow_timeout"


def test_copies_in_flight_are_capped_and_the_rest_dropped_and_counted(
    mocks: Callable[[], MockUpstream], start_gateway: GatewayFactory, tmp_path: Path
) -> None:
    primary, shadow = mocks(), mocks()
    copy = "backend: candidate, model: hold, sample_rate: 1, timeout_s: 20, max_concurrency: 2"
    gateway = start_gateway(policy(primary.base_url, tmp_path, copy, candidate(shadow.base_url)))
    answers = run(gateway)
    assert answers == [f"echo: {p}" for p in PROMPTS]
    wait_until(lambda: len(shadow.record.seen) == 2, "two copies arrived")
    metrics = httpx.get(f"{gateway.url}/metrics", timeout=5).text
    assert 'sluice_shadow_requests_total{backend="candidate",model="m",outcome="dropped"} 2.0' in (
        metrics
    )
    assert 'sluice_shadow_in_flight{backend="candidate",model="m"} 2.0' in metrics
    shadow.record.release.set()
    gateway.stop()
    assert len(shadow.record.seen) == 2
    assert sum(r["shadow"] is not None for r in records(tmp_path)) == 2


def test_a_zero_sample_rate_sends_no_copies(
    mocks: Callable[[], MockUpstream], start_gateway: GatewayFactory, tmp_path: Path
) -> None:
    primary, shadow = mocks(), mocks()
    copy = "backend: candidate, model: echo, sample_rate: 0, timeout_s: 5"
    gateway = start_gateway(policy(primary.base_url, tmp_path, copy, candidate(shadow.base_url)))
    body = {"model": "m", "messages": [{"role": "user", "content": "x"}]}
    for _ in range(5):
        response = httpx.post(
            f"{gateway.url}/v1/chat/completions",
            json=body,
            headers={"authorization": f"Bearer {ALICE_KEY}"},
            timeout=10,
        )
        assert response.status_code == 200
    assert shadow.record.seen == []


def test_sampling_copies_the_configured_share(monkeypatch) -> None:
    monkeypatch.setattr(random, "random", random.Random(7).random)
    runner = ShadowRunner(ShadowConfig(backend="b", sample_rate=0.1), None, "m")  # type: ignore[arg-type]
    copies = sum(runner.sample() for _ in range(10_000))
    assert binomtest(copies, 10_000, 0.1).pvalue > 0.001


def test_answer_text_reads_whole_answers_and_streams_alike() -> None:
    whole = orjson.dumps(
        {
            "choices": [
                {"index": 1, "message": {"content": "b"}},
                {"index": 0, "message": {"content": "a"}},
            ]
        }
    )
    assert answer_text(whole, streamed=False) == "a\nb"
    assert answer_text(b'{"choices": [{"index": 0, "text": "done"}]}', streamed=False) == "done"
    events = (
        b'data: {"choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}}]}\n\n'
        b'data: {"choices": [{"index": 0, "delta": {"content": "he"}}]}\n\n'
        b'data: {"choices": [{"index": 0, "delta": {"content": "llo"}}]}\n\n'
        b"data: [DONE]\n\n"
    )
    assert answer_text(events, streamed=True) == "hello"
    assert answer_text(b'{"data": [{"embedding": [0.1]}]}', streamed=False) is None
