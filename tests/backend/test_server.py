"""`sluice backend serve` on loopback with the embedded SmolLM2, driven by the official openai SDK.

Answers match the offline `LLM` token for token; client mistakes are 400s naming the field;
a client that goes away mid-answer gets its request aborted and every KV block back.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import openai
import pytest

from backend import LLM, AsyncEngine, EngineConfig, SamplingParams
from backend.outputs import GenerationResult
from backend.server import create_app
from gateway.cli import main
from tests.support.processes import wait_until
from tests.support.servers import ServerThread

MODEL = "smollm2"
MESSAGES = [{"role": "user", "content": "What is the capital of France?"}]
PROMPT = "The three primary colours are"
MAX_TOKENS = 12
MAX_MODEL_LEN = 256
GREEDY = SamplingParams(max_tokens=MAX_TOKENS, temperature=0.0)


@dataclass
class Served:
    server: ServerThread
    engine: AsyncEngine
    llm: LLM
    chat: GenerationResult  # LLM.chat of MESSAGES, greedy
    completion: GenerationResult  # LLM.generate of PROMPT, greedy

    @property
    def client(self) -> openai.OpenAI:
        return openai.OpenAI(base_url=f"{self.server.url}/v1", api_key="unused", max_retries=0)

    def post(self, path: str, content: bytes) -> httpx.Response:
        return httpx.post(f"{self.server.url}/v1{path}", content=content, timeout=30)

    def finished(self) -> dict[str, float]:
        """Requests the engine finished so far, by finish reason (from /metrics)."""
        text = httpx.get(f"{self.server.url}/metrics").text
        out = {}
        for line in text.splitlines():
            if line.startswith("sluice:request_success_total{"):
                reason = line.split('finished_reason="', 1)[1].split('"', 1)[0]
                out[reason] = float(line.rsplit(" ", 1)[1])
        return out

    def all_blocks_free(self) -> bool:
        blocks = self.engine.engine.block_manager
        return self.engine.engine.num_requests == 0 and blocks.num_free_blocks == blocks.num_blocks


@pytest.fixture(scope="module")
def served(smollm2_folder: Path) -> Iterator[Served]:
    # The reference answers come from the same engine, driven offline before it starts serving.
    llm = LLM(str(smollm2_folder), kv_cache_gb=0.1, max_model_len=MAX_MODEL_LEN, num_threads=1)
    (chat,) = llm.chat([MESSAGES], GREEDY, use_tqdm=False)
    (completion,) = llm.generate([PROMPT], GREEDY, use_tqdm=False)
    engine = AsyncEngine(llm.engine)
    app = create_app(EngineConfig(model=str(smollm2_folder)), model_name=MODEL, engine=engine)
    server = ServerThread(app).start()
    yield Served(server, engine, llm, chat, completion)
    server.stop()
    asyncio.run(engine.aclose())


def test_chat_greedy_answer_equals_llm_chat(served: Served) -> None:
    reply = served.client.chat.completions.create(
        model=MODEL,
        messages=MESSAGES,
        max_tokens=MAX_TOKENS,
        temperature=0,
    )
    choice = reply.choices[0]
    assert choice.message.role == "assistant"
    assert choice.message.content == served.chat.text
    assert choice.finish_reason == served.chat.finish_reason
    assert reply.id.startswith("chatcmpl-") and reply.model == MODEL
    assert reply.object == "chat.completion"
    prompt_tokens = len(served.llm.tokenizer.apply_chat_template(MESSAGES))
    assert reply.usage is not None
    assert reply.usage.prompt_tokens == prompt_tokens
    assert reply.usage.completion_tokens == len(served.chat.token_ids)
    assert reply.usage.total_tokens == prompt_tokens + len(served.chat.token_ids)


def test_chat_stream_chunks_concatenate_to_the_whole_answer(served: Served) -> None:
    chunks = list(
        served.client.chat.completions.create(
            model=MODEL,
            messages=MESSAGES,
            max_tokens=MAX_TOKENS,
            temperature=0,
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == served.chat.text
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices]
    assert finishes[-1] == served.chat.finish_reason and not any(finishes[:-1])
    last = chunks[-1]
    assert last.choices == [] and last.usage is not None
    assert last.usage.completion_tokens == len(served.chat.token_ids)
    assert all(c.id == chunks[0].id and c.object == "chat.completion.chunk" for c in chunks)


def test_completion_plain_and_streamed_equal_llm_generate(served: Served) -> None:
    reply = served.client.completions.create(
        model=MODEL, prompt=PROMPT, max_tokens=MAX_TOKENS, temperature=0
    )
    assert reply.object == "text_completion" and reply.id.startswith("cmpl-")
    assert reply.choices[0].text == served.completion.text
    assert reply.usage is not None
    assert reply.usage.prompt_tokens == len(served.llm.tokenizer.encode(PROMPT))
    streamed = served.client.completions.create(
        model=MODEL, prompt=PROMPT, max_tokens=MAX_TOKENS, temperature=0, stream=True
    )
    assert "".join(c.choices[0].text for c in streamed) == served.completion.text


def test_completion_takes_token_ids_and_echoes(served: Served) -> None:
    ids = served.llm.tokenizer.encode(PROMPT)
    reply = served.client.completions.create(
        model=MODEL, prompt=ids, max_tokens=MAX_TOKENS, temperature=0, echo=True
    )
    assert reply.choices[0].text.endswith(served.completion.text)
    assert reply.choices[0].text.startswith(PROMPT)


def test_n_2_gives_two_choices_counted_in_usage(served: Served) -> None:
    reply = served.client.chat.completions.create(
        model=MODEL,
        messages=MESSAGES,
        max_tokens=8,
        n=2,
        seed=7,
    )
    assert [c.index for c in reply.choices] == [0, 1]
    assert all(c.message.content for c in reply.choices)
    assert reply.usage is not None
    assert reply.usage.completion_tokens <= 16 and reply.usage.completion_tokens >= 2


def test_stop_string_ends_the_answer_before_it(served: Served) -> None:
    full = served.chat.text
    stop = full.split()[1]  # the second word of the greedy answer
    reply = served.client.chat.completions.create(
        model=MODEL,
        messages=MESSAGES,
        max_tokens=MAX_TOKENS,
        temperature=0,
        stop=[stop],
    )
    assert reply.choices[0].message.content == full[: full.index(stop)]
    assert reply.choices[0].finish_reason == "stop"


def test_chat_logprobs_have_openai_shape(served: Served) -> None:
    reply = served.client.chat.completions.create(
        model=MODEL,
        messages=MESSAGES,
        max_tokens=6,
        temperature=0,
        logprobs=True,
        top_logprobs=3,
    )
    choice = reply.choices[0]
    assert choice.logprobs is not None and choice.logprobs.content is not None
    entries = choice.logprobs.content
    assert reply.usage is not None and len(entries) == reply.usage.completion_tokens
    assert "".join(e.token for e in entries) == choice.message.content
    for entry in entries:
        assert entry.logprob <= 0 and entry.bytes == list(entry.token.encode())
        assert len(entry.top_logprobs) == 3
        # Greedy: the chosen token is the most likely one.
        assert entry.top_logprobs[0].token == entry.token
        assert entry.top_logprobs[0].logprob == pytest.approx(entry.logprob)


def test_completion_logprobs_have_legacy_shape(served: Served) -> None:
    reply = served.client.completions.create(
        model=MODEL, prompt=PROMPT, max_tokens=5, temperature=0, logprobs=2
    )
    logprobs = reply.choices[0].logprobs
    assert logprobs is not None and logprobs.tokens is not None
    assert logprobs.token_logprobs is not None and logprobs.top_logprobs is not None
    assert logprobs.text_offset is not None
    assert len(logprobs.tokens) == len(logprobs.token_logprobs) == 5
    assert all(len(top) == 2 for top in logprobs.top_logprobs)
    assert "".join(logprobs.tokens) == reply.choices[0].text
    assert logprobs.text_offset == [
        sum(len(t) for t in logprobs.tokens[:i]) for i in range(len(logprobs.tokens))
    ]


@pytest.mark.parametrize(
    ("kind", "body", "param"),
    [
        ("completions", {"prompt": ""}, "prompt"),
        ("completions", {"prompt": "hello " * (MAX_MODEL_LEN + 10)}, "prompt"),
        ("completions", {"prompt": ["one", "two"]}, "prompt"),
        ("completions", {"prompt": [10**9]}, "prompt"),
        ("completions", {"prompt": "hi", "temperature": -1}, "temperature"),
        ("completions", {"prompt": "hi", "max_tokens": "ten"}, "max_tokens"),
        ("chat", {"messages": []}, "messages"),
        ("chat", {"messages": [{"role": "robot", "content": "x"}]}, "messages[0].role"),
        ("chat", {"messages": MESSAGES, "top_p": 0}, "top_p"),
        ("chat", {"messages": MESSAGES, "max_completion_tokens": 0}, "max_completion_tokens"),
        ("chat", {"messages": MESSAGES, "top_logprobs": 2}, "top_logprobs"),
        (
            "chat",
            {
                "messages": [
                    {
                        "role": "user",
                        "content": [{"type": "image_url", "image_url": {"url": "x"}}],
                    }
                ]
            },
            "messages[0].content[0].type",
        ),
    ],
)
def test_client_mistakes_are_400_naming_the_field(
    served: Served, kind: str, body: dict, param: str
) -> None:
    client = served.client
    create = client.chat.completions.create if kind == "chat" else client.completions.create
    with pytest.raises(openai.BadRequestError) as caught:
        create(model=MODEL, stream=False, **body)
    assert caught.value.status_code == 400
    assert caught.value.param == param
    assert caught.value.message


def test_mistake_in_a_stream_is_a_400_not_a_broken_stream(served: Served) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        served.client.chat.completions.create(
            model=MODEL,
            messages=MESSAGES,
            temperature=-1,
            stream=True,
        )
    assert caught.value.param == "temperature"


@pytest.mark.parametrize(
    ("content", "words"),
    [
        (b'{"model": "smollm2", "prompt": ', "not valid JSON"),
        (b'{"model": "smollm2", "prompt": "\xff\xfe"}', "not valid UTF-8"),
        (b'["a list"]', "JSON object"),
    ],
)
def test_broken_bodies_are_400(served: Served, content: bytes, words: str) -> None:
    response = served.post("/completions", content)
    assert response.status_code == 400
    assert words in response.json()["error"]["message"]


def test_unknown_model_is_404(served: Served) -> None:
    with pytest.raises(openai.NotFoundError) as caught:
        served.client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
    assert caught.value.code == "model_not_found"


def test_models_health_and_metrics(served: Served) -> None:
    assert [m.id for m in served.client.models.list()] == [MODEL]
    assert httpx.get(f"{served.server.url}/health").json() == {"status": "ok"}
    metrics = httpx.get(f"{served.server.url}/metrics").text
    assert "sluice:num_requests_running{" in metrics
    assert "sluice:kv_cache_usage_perc{" in metrics
    generated = [
        line for line in metrics.splitlines() if line.startswith("sluice:generation_tokens")
    ]
    assert generated and float(generated[0].rsplit(" ", 1)[1]) > 0
    assert httpx.get(f"{served.server.url}/v1/nowhere").json()["error"]["code"] == "not_found"


def test_client_disconnect_mid_stream_frees_every_kv_block(served: Served) -> None:
    aborted = served.finished().get("abort", 0)
    body = {"model": MODEL, "messages": MESSAGES, "max_tokens": 200, "ignore_eos": True}
    url = f"{served.server.url}/v1/chat/completions"
    with httpx.stream("POST", url, json={**body, "stream": True}, timeout=30) as response:
        assert response.status_code == 200
        seen = []
        for line in response.iter_lines():
            if '"content":"' in line and '"role"' not in line:
                seen.append(line)
            if len(seen) == 2:
                break
        assert served.engine.engine.num_requests == 1  # still generating: 200 tokens take a while
    # Leaving the block closed the connection mid-stream.
    wait_until(
        lambda: served.all_blocks_free() and served.finished().get("abort") == aborted + 1,
        "the request is aborted and its KV blocks are free",
    )


def test_client_gone_before_a_whole_answer_aborts_it(served: Served) -> None:
    aborted = served.finished().get("abort", 0)
    body = {"model": MODEL, "prompt": PROMPT, "max_tokens": 200, "ignore_eos": True}
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(f"{served.server.url}/v1/completions", json=body, timeout=1.0)
    wait_until(
        lambda: served.all_blocks_free() and served.finished().get("abort") == aborted + 1,
        "the abandoned request is aborted and its KV blocks are free",
    )


def test_cli_refuses_a_missing_model_clearly(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["backend", "serve", "--model", "/nonexistent/model"]) == 2
    assert "/nonexistent/model" in capsys.readouterr().err
