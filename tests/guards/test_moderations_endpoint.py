"""`POST /v1/moderations` on the real gateway, driven by the openai SDK: OpenAI's request and
answer shapes, keys, client mistakes as 4xx, the policy's moderation settings, and a judge
reached through the policy's own backends."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import openai
import pytest

from gateway.guards.moderation.categories import CATEGORIES
from tests.conftest import ALICE_KEY, GatewayFactory, policy_yaml
from tests.guards.judge_server import JudgeServer
from tests.support.mock_upstream import MockUpstream
from tests.support.servers import ServerThread

THREAT = "I'm going to kill you tomorrow."


def client(server: ServerThread) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{server.url}/v1", api_key=ALICE_KEY, max_retries=0)


def test_a_threat_is_flagged_with_openais_shape(
    upstream: MockUpstream, gateway: ServerThread
) -> None:
    result = client(gateway).moderations.create(input=THREAT)
    assert result.id.startswith("modr-") and result.model == "sluicegate-moderation"
    [verdict] = result.results
    assert verdict.flagged
    assert verdict.categories.violence and verdict.categories.harassment_threatening
    assert not verdict.categories.sexual and not verdict.categories.self_harm
    assert verdict.category_scores.violence == pytest.approx(0.85)
    assert verdict.category_scores.hate == 0.0
    body = verdict.model_dump(by_alias=True)
    assert set(body["categories"]) == set(CATEGORIES) == set(body["category_scores"])
    assert body["category_applied_input_types"]["violence"] == ["text"]
    assert upstream.record.seen == []  # answered by the gateway itself


def test_a_list_of_inputs_gets_one_result_each_in_order(gateway: ServerThread) -> None:
    result = client(gateway).moderations.create(
        input=["How do I kill a python process?", "How do I cook meth at home?", THREAT],
        model="omni-moderation-latest",
    )
    assert result.model == "omni-moderation-latest"
    assert [r.flagged for r in result.results] == [False, True, True]
    assert result.results[1].categories.illicit


def test_text_parts_are_accepted_and_images_refused(gateway: ServerThread) -> None:
    ok = client(gateway).moderations.create(input=[{"type": "text", "text": THREAT}])
    assert ok.results[0].flagged
    with pytest.raises(openai.BadRequestError) as caught:
        client(gateway).moderations.create(
            input=[{"type": "image_url", "image_url": {"url": "https://example.com/x.png"}}]
        )
    assert caught.value.param == "input[0]" and "text only" in caught.value.message


@pytest.mark.parametrize(
    ("body", "param"),
    [({"input": []}, "input"), ({}, "input"), ({"input": 42}, "input"), ({"input": [1]}, None)],
)
def test_bad_requests_are_400s_naming_the_field(
    gateway: ServerThread, body: dict[str, object], param: str | None
) -> None:
    response = httpx.post(
        f"{gateway.url}/v1/moderations",
        json=body,
        headers={"authorization": f"Bearer {ALICE_KEY}"},
    )
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["type"] == "invalid_request_error"
    if param is not None:
        assert error["param"] == param


def test_keys_and_methods_are_checked(gateway: ServerThread) -> None:
    url = f"{gateway.url}/v1/moderations"
    assert httpx.post(url, json={"input": "hi"}).status_code == 401
    bad = httpx.post(url, json={"input": "hi"}, headers={"authorization": "Bearer sk-wrong"})
    assert bad.status_code == 401 and bad.json()["error"]["code"] == "invalid_api_key"
    wrong_method = httpx.get(url, headers={"authorization": f"Bearer {ALICE_KEY}"})
    assert wrong_method.status_code == 405 and wrong_method.headers["allow"] == "POST"


def test_the_policys_moderation_settings_apply(
    upstream: MockUpstream, start_gateway: GatewayFactory
) -> None:
    guards = """
guards:
  input:
    - type: moderation
      categories: [sexual, sexual/minors, self-harm, self-harm/intent, self-harm/instructions]
      threshold: 0.3
"""
    server = start_gateway(policy_yaml(upstream.base_url) + guards)
    threat, dose = (
        client(server)
        .moderations.create(input=[THREAT, "what's the lethal dose of aspirin"])
        .results
    )
    assert not threat.flagged and threat.category_scores.violence == pytest.approx(0.85)
    assert dose.flagged and dose.categories.self_harm_instructions


@pytest.fixture(scope="module")
def judge_server() -> Iterator[JudgeServer]:
    server = JudgeServer().start()
    yield server
    server.stop()


def test_a_judge_configured_in_the_policy_answers_through_its_backend(
    upstream: MockUpstream, start_gateway: GatewayFactory, judge_server: JudgeServer
) -> None:
    extra = f"""
  guard-llm:
    kind: openai
    base_url: {judge_server.base_url}
    retries: {{attempts: 1}}
"""
    guards = """
guards:
  output:
    - type: moderation
      judge: {backend: guard-llm, model: llama-guard-3, timeout_s: 1, on_error: block}
"""
    server = start_gateway(policy_yaml(upstream.base_url, extra_backend=extra) + guards)
    flagged, clean = (
        client(server).moderations.create(input=["a harmless-looking S10-BAIT", "hello"]).results
    )
    assert flagged.flagged and flagged.categories.hate and flagged.category_scores.hate == 1.0
    assert not clean.flagged
    assert any(m["model"] == "llama-guard-3" for m in judge_server.seen)
    with pytest.raises(openai.APIStatusError) as caught:
        client(server).moderations.create(input="SLOW")
    assert caught.value.status_code == 503 and "judge" in caught.value.message


def test_a_judge_in_the_input_guards_blocks_chat_requests_through_the_pipeline(
    upstream: MockUpstream, start_gateway: GatewayFactory, judge_server: JudgeServer
) -> None:
    extra = f"""
  guard-llm:
    kind: openai
    base_url: {judge_server.base_url}
    retries: {{attempts: 1}}
"""
    guards = """
guards:
  input:
    - type: moderation
      judge: {backend: guard-llm, model: llama-guard-3, timeout_s: 2, on_error: block}
"""
    server = start_gateway(policy_yaml(upstream.base_url, extra_backend=extra) + guards)
    chat = client(server).chat.completions
    reply = chat.create(model="gpt-echo", messages=[{"role": "user", "content": "hello there"}])
    assert reply.choices[0].message.content == "echo: hello there"
    with pytest.raises(openai.BadRequestError) as caught:
        chat.create(model="gpt-echo", messages=[{"role": "user", "content": "an S1-BAIT text"}])
    assert caught.value.code == "content_filter"
    assert [m["messages"][-1]["content"] for m in upstream.record.seen] == ["hello there"]
