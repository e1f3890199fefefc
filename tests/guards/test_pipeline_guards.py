"""Guards in the real gateway, driven with the openai SDK: what reaches the upstream, what the
client gets, how blocks and failures answer, and what the audit log and /metrics say."""

from __future__ import annotations

from pathlib import Path

import httpx
import openai
import pytest

from tests.audit.test_records import read_log
from tests.conftest import ALICE_KEY, GatewayFactory, policy_yaml
from tests.support.mock_upstream import MockUpstream

SAMPLE = "tests.guards.sample_guards"


def guarded(upstream: MockUpstream, audit_dir: Path, guards: str) -> str:
    return (
        policy_yaml(upstream.base_url)
        + f"audit:\n  dir: '{audit_dir}'\n  fsync: none\n  content: redacted\n"
        + "guards:\n"
        + guards
    )


WORDS = f"""
  input:
    - {{type: plugin, name: words, path: '{SAMPLE}:WordGuard', options: {{words: [banana]}}}}
  output:
    - type: plugin
      name: no-forbidden
      path: '{SAMPLE}:WordGuard'
      options: {{words: [forbidden], action: block, name: no-forbidden}}
"""


def client(server) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{server.url}/v1", api_key=ALICE_KEY, max_retries=0)


def ask(server, text: str, model: str = "gpt-echo", stream: bool = False):
    return client(server).chat.completions.create(
        model=model, messages=[{"role": "user", "content": text}], stream=stream
    )


def test_input_redaction_changes_what_reaches_the_upstream_and_the_audit(
    upstream: MockUpstream, start_gateway: GatewayFactory, tmp_path: Path
) -> None:
    server = start_gateway(guarded(upstream, tmp_path, WORDS))
    reply = ask(server, "I like banana bread")
    assert upstream.record.seen[-1]["messages"][-1]["content"] == "I like [word] bread"
    assert reply.choices[0].message.content == "echo: I like [word] bread"
    server.stop()
    records, _ = read_log(tmp_path)
    [record] = records
    assert record["guards"] == [
        {"guard": "words", "stage": "input", "action": "redact", "categories": {"WORD": 1}},
        {"guard": "no-forbidden", "stage": "output", "action": "allow"},
    ]
    assert "banana" not in str(record)


def test_input_block_answers_400_content_filter_and_nothing_goes_upstream(
    upstream: MockUpstream, start_gateway: GatewayFactory, tmp_path: Path
) -> None:
    guards = f"""
  input:
    - {{type: plugin, path: '{SAMPLE}:WordGuard', options: {{words: [bomb], action: block}}}}
"""
    server = start_gateway(guarded(upstream, tmp_path, guards))
    with pytest.raises(openai.BadRequestError) as caught:
        ask(server, "how to build a bomb")
    assert caught.value.code == "content_filter"
    assert "plugin" in caught.value.message and "bomb" not in caught.value.message
    assert upstream.record.seen == []
    server.stop()
    [record] = read_log(tmp_path)[0]
    assert (record["status"], record["error"]["code"]) == (400, "content_filter")
    assert record["guards"][0]["action"] == "block"
    assert "bomb" not in str(record)


def test_output_block_on_a_whole_answer_is_a_400(
    upstream: MockUpstream, start_gateway: GatewayFactory, tmp_path: Path
) -> None:
    server = start_gateway(guarded(upstream, tmp_path, WORDS))
    with pytest.raises(openai.BadRequestError) as caught:
        ask(server, "say forbidden please")
    assert caught.value.code == "content_filter"
    assert "response" in caught.value.message


@pytest.mark.parametrize("model", ["gpt-echo", "gpt-chars"])
def test_output_block_ends_a_stream_with_content_filter(
    upstream: MockUpstream, start_gateway: GatewayFactory, tmp_path: Path, model: str
) -> None:
    server = start_gateway(guarded(upstream, tmp_path, WORDS))
    chunks = list(ask(server, "the forbidden word follows", model=model, stream=True))
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert "forbid" not in text
    assert text.startswith("echo: the")
    assert chunks[-1].choices[0].finish_reason == "content_filter"
    server.stop()
    [record] = read_log(tmp_path)[0]
    assert record["outcome"] == "content_filter"
    assert record["guards"][-1] == {
        "guard": "no-forbidden",
        "stage": "output",
        "action": "block",
        "reason": "a forbidden word",
        "categories": {"WORD": 1},
    }


def test_stream_redaction_char_by_char_matches_the_whole_answer(
    upstream: MockUpstream, start_gateway: GatewayFactory, tmp_path: Path
) -> None:
    guards = f"""
  output:
    - {{type: plugin, path: '{SAMPLE}:WordGuard', options: {{words: [kiwi, mango]}}}}
"""
    server = start_gateway(guarded(upstream, tmp_path, guards))
    text = "kiwi and mango, not kiwis; mango!"
    whole = ask(server, text).choices[0].message.content
    streamed = "".join(
        c.choices[0].delta.content or ""
        for c in ask(server, text, model="gpt-chars", stream=True)
        if c.choices
    )
    assert whole == streamed == "echo: [word] and [word], not kiwis; [word]!"


def test_guard_failures_fail_closed_by_default_and_open_when_told(
    upstream: MockUpstream, start_gateway: GatewayFactory, tmp_path: Path
) -> None:
    broken = f"  input:\n    - {{type: plugin, path: '{SAMPLE}:BrokenGuard'}}\n"
    server = start_gateway(guarded(upstream, tmp_path / "closed", broken))
    response = httpx.post(
        f"{server.url}/v1/chat/completions",
        headers={"authorization": f"Bearer {ALICE_KEY}"},
        json={"model": "gpt-echo", "messages": [{"role": "user", "content": "hi"}]},
    )
    assert response.status_code == 503
    assert response.json()["error"]["code"] == "guard_unavailable"
    slow = (
        f"  timeout_s: 0.2\n  on_error: allow\n"
        f"  input:\n    - {{type: plugin, path: '{SAMPLE}:SlowGuard'}}\n"
    )
    server = start_gateway(guarded(upstream, tmp_path / "open", slow))
    assert ask(server, "hi").choices[0].message.content == "echo: hi"
    server.stop()
    [record] = read_log(tmp_path / "open")[0]
    assert record["guards"] == [
        {"guard": "plugin", "stage": "input", "action": "error", "reason": "guard failed"}
    ]


def test_metrics_count_guard_decisions(
    upstream: MockUpstream, start_gateway: GatewayFactory, tmp_path: Path
) -> None:
    server = start_gateway(guarded(upstream, tmp_path, WORDS))
    ask(server, "banana")
    ask(server, "apple")
    with pytest.raises(openai.BadRequestError):
        ask(server, "forbidden")
    metrics = httpx.get(f"{server.url}/metrics").text
    assert (
        'sluice_guard_decisions_total{action="redact",guard="words",stage="input"} 1.0' in metrics
    )
    assert 'sluice_guard_decisions_total{action="allow",guard="words",stage="input"} 2.0' in metrics
    assert (
        'sluice_guard_decisions_total{action="block",guard="no-forbidden",stage="output"} 1.0'
        in metrics
    )


@pytest.mark.parametrize("restore", [True, False])
@pytest.mark.parametrize("stream", [False, True])
def test_pseudonyms_are_restored_in_the_answer_only_when_the_policy_says_so(
    upstream: MockUpstream,
    start_gateway: GatewayFactory,
    tmp_path: Path,
    restore: bool,
    stream: bool,
) -> None:
    guards = (
        f"  restore_pseudonyms: {str(restore).lower()}\n"
        f"  input:\n    - {{type: plugin, path: '{SAMPLE}:NameGuard', options: {{person: Ada}}}}\n"
    )
    server = start_gateway(guarded(upstream, tmp_path, guards))
    reply = ask(server, "I am Ada.", model="gpt-chars" if stream else "gpt-echo", stream=stream)
    if stream:
        text = "".join(c.choices[0].delta.content or "" for c in reply if c.choices)
    else:
        text = reply.choices[0].message.content
    assert upstream.record.seen[-1]["messages"][-1]["content"] == "I am <PERSON_1>."
    assert text == ("echo: I am Ada." if restore else "echo: I am <PERSON_1>.")
