"""Property-based fuzzing: arbitrary JSON values and arbitrary bytes POSTed to the inference paths.

Plain hypothesis against the module-wide gateway; every answer below 500 and, when it is an
error, an OpenAI error body.
"""

from __future__ import annotations

import json
from typing import Any

import httpx
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.api.schemas import ChatCompletionRequest, CompletionRequest, EmbeddingRequest
from tests.support.fuzz_target import INFERENCE_PATHS, KNOWN_MODEL, assert_client_answer

# Mostly ordinary text; now and then any code point at all, lone surrogates included (json.dumps
# escapes those as \udXXX, which no strict JSON parser accepts).
any_text = st.one_of(
    st.text(max_size=20),
    st.text(max_size=20),
    st.text(st.characters(exclude_categories=()), max_size=5),
)
json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(min_value=2**63 - 2, max_value=2**80),
    st.floats(allow_nan=False, allow_infinity=False),
    st.floats(),  # NaN and ±inf: json.dumps writes the non-JSON tokens NaN/Infinity
    any_text,
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(any_text, inner, max_size=4),
    max_leaves=25,
)

# A valid request for each endpoint; `near_valid` overwrites a few of its fields (known ones or
# not) with arbitrary JSON, so many bodies pass validation and routing and reach the upstream.
VALID = {
    "/v1/chat/completions": (
        ChatCompletionRequest,
        {"model": KNOWN_MODEL, "messages": [{"role": "user", "content": "hi"}]},
    ),
    "/v1/completions": (CompletionRequest, {"model": KNOWN_MODEL, "prompt": "hi"}),
    "/v1/embeddings": (EmbeddingRequest, {"model": KNOWN_MODEL, "input": "hi"}),
}


def near_valid(path: str) -> st.SearchStrategy[dict[str, Any]]:
    schema, valid = VALID[path]
    names = st.sampled_from(sorted(schema.model_fields)) | st.sampled_from(["x_extra", "metadata"])
    changes = st.dictionaries(names, json_values, max_size=3)
    return changes.map(lambda changed: {**valid, **changed})


bodies = st.sampled_from(INFERENCE_PATHS).flatmap(
    lambda path: st.tuples(st.just(path), json_values | near_valid(path))
)
HYPOTHESIS_SETTINGS = settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


def _post(client: httpx.Client, path: str, body: bytes) -> None:
    response = client.post(path, content=body)
    assert_client_answer(response.status_code, response.content, f"POST {path} {body[:300]!r}")


@HYPOTHESIS_SETTINGS
@given(case=bodies)
def test_arbitrary_json_values(client: httpx.Client, case: tuple[str, Any]) -> None:
    path, value = case
    _post(client, path, json.dumps(value).encode())


@HYPOTHESIS_SETTINGS
@given(
    path=st.sampled_from(INFERENCE_PATHS),
    prefix=st.sampled_from([b"", b"{", b'{"model":"gpt-echo",', b'{"model":"gpt-echo","prompt":']),
    tail=st.binary(max_size=200),
)
def test_arbitrary_bytes(client: httpx.Client, path: str, prefix: bytes, tail: bytes) -> None:
    _post(client, path, prefix + tail)
