"""Bad input never earns a 5xx: schema-based and property-based fuzzing of the live gateway.

Three layers, all against the gateway as a real uvicorn server on loopback in front of the mock
upstream (conftest's `gateway` fixture for schemathesis, one module-wide twin for the rest):

* schemathesis reads the gateway's own /openapi.json and sends positive (schema-valid) and
  negative (schema-violating) cases to every operation; a share of the bodies is pinned to a
  model the gateway knows, so those requests get past routing and reach the mock upstream;
* a fixed list of well-typed but hostile inputs (huge numbers, deep nesting, invalid UTF-8,
  NaN/Infinity tokens, non-object bodies, oversize bodies, wrong content types...);
* plain hypothesis: arbitrary JSON values and arbitrary bytes POSTed to the inference endpoints.

Every answer must be below 500 and, when it is an error, an OpenAI-shaped error body.
"""

from __future__ import annotations

import json
import socket
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis.generation.meta import TestPhase

from gateway.api.schemas import ChatCompletionRequest, CompletionRequest, EmbeddingRequest
from gateway.app import create_app
from gateway.config.loader import parse_policy
from tests.conftest import ALICE_KEY, KEYS_ENV, policy_yaml
from tests.support.mock_upstream import MockUpstream
from tests.support.servers import ServerThread

AUTH = {"Authorization": f"Bearer {ALICE_KEY}"}
AUTH_LINE = f"authorization: Bearer {ALICE_KEY}\r\n".encode()
KNOWN_MODEL = "gpt-echo"  # routed to the mock upstream's `echo` behaviour: 200 for valid requests
INFERENCE_PATHS = ["/v1/chat/completions", "/v1/completions", "/v1/embeddings"]
MAX_BODY_BYTES = 65536  # server.max_body_bytes in tests/conftest.py's policy
FUZZ_EXAMPLES = 100  # fuzzing phase, per operation, positive and negative together


def assert_client_answer(status: int, content: bytes, what: str, method: str = "POST") -> None:
    """No 5xx, and every 4xx carries `{"error": {"message", "type", "param", "code"}}`."""
    assert status < 500, f"{what}: HTTP {status} for a client's input: {content[:500]!r}"
    if status < 400 or method == "HEAD":
        return
    try:
        payload = json.loads(content)
    except ValueError:
        pytest.fail(f"{what}: HTTP {status} with a non-JSON error body: {content[:500]!r}")
    error = payload.get("error") if isinstance(payload, dict) else None
    assert isinstance(error, dict), f"{what}: HTTP {status}, not an OpenAI error body: {payload!r}"
    assert isinstance(error.get("message"), str) and error["message"], f"{what}: {payload!r}"
    assert isinstance(error.get("type"), str), f"{what}: {payload!r}"
    assert "param" in error and (error["param"] is None or isinstance(error["param"], str)), payload
    assert "code" in error and (error["code"] is None or isinstance(error["code"], str)), payload


# --- 1. schemathesis against /openapi.json ------------------------------------------------------
#
# The schema is read at collection time from the gateway app's own /openapi.json (in process,
# since `schemathesis.pytest.from_fixture` does not work with this pytest: it sets
# `Function._nodeid`, which pytest 9.2 no longer has); `test_served_openapi_is_the_fuzzed_one`
# checks that the live server serves the same document. Every case goes to the live server.


def pin_known_model(context: schemathesis.HookContext, body: Any) -> st.SearchStrategy[Any]:
    """`flatmap_body` hook (fuzzing phase): about half the object bodies name a routed model."""
    if not isinstance(body, dict):
        return st.just(body)
    return st.booleans().map(lambda pin: {**body, "model": KNOWN_MODEL} if pin else body)


def pin_model_in_coverage(
    context: schemathesis.HookContext, case: schemathesis.Case
) -> schemathesis.Case:
    """`map_case` hook: the coverage phase's cases skip body hooks; pin their (string) model.

    A model the case itself mangled (empty, not a string) stays as generated.
    """
    body = case.body
    if (
        case.meta is not None
        and case.meta.phase.name is TestPhase.COVERAGE
        and isinstance(body, dict)
        and isinstance(body.get("model"), str)
        and body["model"]
    ):
        case.body = {**body, "model": KNOWN_MODEL}
    return case


def _load_schema() -> schemathesis.BaseSchema:
    env = dict(KEYS_ENV)
    # Only /openapi.json is read from this app: the upstream is never contacted.
    app = create_app(parse_policy(policy_yaml("http://127.0.0.1:9/v1"), "fuzz.yaml", env), env=env)
    config = schemathesis.Config.from_dict(
        {
            "headers": AUTH,
            "request-timeout": 15,
            "output": {"sanitization": {"enabled": False}},  # show failing bodies whole
            "generation": {"mode": "all", "max-examples": FUZZ_EXAMPLES, "database": "none"},
            "phases": {
                "examples": {"enabled": True},
                "coverage": {"enabled": True},
                "fuzzing": {"enabled": True},
                "stateful": {"enabled": False},
            },
        }
    )
    schema = schemathesis.openapi.from_asgi("/openapi.json", app, config=config)
    schema.app = None  # cases go over the network to the `gateway` fixture, never in process
    schema.hook("flatmap_body")(pin_known_model)
    schema.hook("map_case")(pin_model_in_coverage)
    return schema


SCHEMA = _load_schema()
REACHED_UPSTREAM: Counter[str] = Counter()


def test_served_openapi_is_the_fuzzed_one(gateway: ServerThread) -> None:
    served = httpx.get(f"{gateway.url}/openapi.json", timeout=10).json()
    assert served == SCHEMA.raw_schema
    assert {op.ok().label for op in SCHEMA.get_all_operations()} >= {
        f"POST {path}" for path in INFERENCE_PATHS
    }


@SCHEMA.parametrize()
@settings(deadline=None, suppress_health_check=list(HealthCheck))
def test_openapi_fuzz_no_5xx(case: schemathesis.Case, gateway: ServerThread) -> None:
    response = case.call(base_url=gateway.url)
    what = f"{case.method} {case.path}\n{case.as_curl_command()}"
    assert_client_answer(response.status_code, response.content, what, case.method.upper())
    if response.status_code == 200 and case.path in INFERENCE_PATHS:
        REACHED_UPSTREAM[case.path] += 1


def test_openapi_fuzz_reached_upstream() -> None:
    """The pinned model made the run above exercise the whole path, not just routing."""
    if not REACHED_UPSTREAM:
        pytest.skip("counts what test_openapi_fuzz_no_5xx did; run the module as a whole")
    thin = {path: REACHED_UPSTREAM[path] for path in INFERENCE_PATHS if REACHED_UPSTREAM[path] < 5}
    assert not thin, f"too few fuzz cases got a 200 from the upstream: {thin}"


# Sections 2 and 3 send many independent requests: one gateway (built exactly like conftest's
# `gateway` fixture) and one client serve the whole module, rather than two servers per case.


@pytest.fixture(scope="module")
def shared_gateway() -> Iterator[ServerThread]:
    upstream = MockUpstream().start()
    env = dict(KEYS_ENV)
    policy = parse_policy(policy_yaml(upstream.base_url), "test-policy.yaml", env)
    server = ServerThread(create_app(policy, env=env)).start()
    yield server
    server.stop()
    upstream.stop()


@pytest.fixture(scope="module")
def client(shared_gateway: ServerThread) -> Iterator[httpx.Client]:
    headers = {**AUTH, "content-type": "application/json"}
    with httpx.Client(base_url=shared_gateway.url, headers=headers, timeout=15) as client:
        yield client


# --- 2. well-typed but hostile inputs -----------------------------------------------------------


def _chat(**extra: Any) -> dict[str, Any]:
    return {"model": KNOWN_MODEL, "messages": [{"role": "user", "content": "hi"}], **extra}


def _raw_chat(tail: bytes) -> bytes:
    """A valid chat request with a raw (possibly non-standard) JSON member spliced in."""
    return b'{"model":"gpt-echo","messages":[{"role":"user","content":"hi"}],' + tail + b"}"


def _nested(depth: int) -> bytes:
    return b"[" * depth + b"]" * depth


def _nested_objects(depth: int) -> dict[str, Any]:
    value: dict[str, Any] = {}
    for _ in range(depth):
        value = {"q": value}
    return value


HUGE_INT = 10**40
LONG_DIGITS = b"9" * 4000  # still a Python int, but far beyond 64 bits and beyond a double
TOO_MANY_DIGITS = b"9" * 5000  # beyond Python's default int/str conversion limit


HOSTILE: list[tuple[str, str, bytes, dict[str, str], int | None]] = [
    # id, path, body, extra headers, expected status (None: anything below 500)
    ("empty-body", "/v1/chat/completions", b"", {}, 400),
    ("whitespace-body", "/v1/chat/completions", b"  \r\n\t ", {}, 400),
    ("top-level-array", "/v1/chat/completions", b"[1, 2, 3]", {}, 400),
    ("top-level-string", "/v1/completions", b'"hello"', {}, 400),
    ("top-level-number", "/v1/embeddings", b"42", {}, 400),
    ("top-level-null", "/v1/embeddings", b"null", {}, 400),
    ("top-level-true", "/v1/completions", b"true", {}, 400),
    (
        "invalid-utf8",
        "/v1/chat/completions",
        b'{"model":"gpt-echo","messages":[{"role":"user","content":"\xff\xfe\xc3"}]}',
        {},
        400,
    ),
    ("invalid-utf8-key", "/v1/chat/completions", _raw_chat(b'"\xc0\xaf":1'), {}, 400),
    (
        "lone-surrogate-escape",
        "/v1/completions",
        b'{"model":"gpt-echo","prompt":"\\ud800"}',
        {},
        400,
    ),
    ("utf8-bom", "/v1/completions", b'\xef\xbb\xbf{"model":"gpt-echo","prompt":"x"}', {}, 400),
    ("nul-after-document", "/v1/completions", b'{"model":"gpt-echo","prompt":"x"}\x00', {}, 400),
    ("trailing-garbage", "/v1/completions", b'{"model":"gpt-echo","prompt":"x"} {}', {}, 400),
    ("truncated-json", "/v1/completions", b'{"model":"gpt-echo","prompt":"x', {}, 400),
    (
        "duplicate-keys",
        "/v1/completions",
        b'{"model":"nope","prompt":"x","model":"gpt-echo"}',
        {},
        None,
    ),
    ("nan-known-field", "/v1/chat/completions", _raw_chat(b'"temperature":NaN'), {}, 400),
    ("infinity-known-field", "/v1/chat/completions", _raw_chat(b'"top_p":Infinity'), {}, 400),
    (
        "neg-infinity-known-field",
        "/v1/completions",
        b'{"model":"gpt-echo","prompt":"x","presence_penalty":-Infinity}',
        {},
        400,
    ),
    ("nan-unknown-field", "/v1/chat/completions", _raw_chat(b'"x_extra":NaN'), {}, 400),
    (
        "infinity-unknown-field",
        "/v1/completions",
        b'{"model":"gpt-echo","prompt":"x","x_extra":[Infinity,-Infinity]}',
        {},
        400,
    ),
    (
        "nan-unknown-field-and-bad-field",
        "/v1/completions",
        b'{"model":"gpt-echo","prompt":5,"x_extra":NaN}',
        {},
        400,
    ),
    (
        "nan-unknown-model",
        "/v1/chat/completions",
        b'{"model":"nope","messages":[{"role":"user","content":"hi"}],"x":NaN}',
        {},
        404,
    ),
    (
        "overflowing-float-unknown-field",
        "/v1/chat/completions",
        _raw_chat(b'"x_extra":1e400'),
        {},
        400,
    ),
    (
        "overflowing-float-known-field",
        "/v1/chat/completions",
        _raw_chat(b'"temperature":-1e400'),
        {},
        400,
    ),
    ("huge-int-n", "/v1/chat/completions", json.dumps(_chat(n=HUGE_INT)).encode(), {}, 400),
    (
        "huge-int-n-400-digits",
        "/v1/completions",
        b'{"model":"gpt-echo","prompt":"x","n":1' + b"0" * 400 + b"}",
        {},
        400,
    ),
    (
        "huge-int-max-tokens",
        "/v1/chat/completions",
        json.dumps(_chat(max_tokens=HUGE_INT)).encode(),
        {},
        None,
    ),
    (
        "huge-negative-seed",
        "/v1/chat/completions",
        json.dumps(_chat(seed=-HUGE_INT)).encode(),
        {},
        None,
    ),
    (
        "seed-2-pow-64",
        "/v1/completions",
        json.dumps({"model": KNOWN_MODEL, "prompt": "x", "seed": 2**64}).encode(),
        {},
        None,
    ),
    (
        "long-digit-int-unknown-field",
        "/v1/completions",
        b'{"model":"gpt-echo","prompt":"x","x_extra":' + LONG_DIGITS + b"}",
        {},
        400,
    ),
    (
        "long-digit-int-known-field",
        "/v1/completions",
        b'{"model":"gpt-echo","prompt":"x","best_of":' + LONG_DIGITS + b"}",
        {},
        400,
    ),
    (
        "too-many-digits",
        "/v1/completions",
        b'{"model":"gpt-echo","prompt":"x","x_extra":' + TOO_MANY_DIGITS + b"}",
        {},
        400,
    ),
    (
        "huge-float-temperature",
        "/v1/chat/completions",
        json.dumps(_chat(temperature=1.7e308)).encode(),
        {},
        400,
    ),
    (
        "huge-token-ids",
        "/v1/embeddings",
        json.dumps({"model": KNOWN_MODEL, "input": [HUGE_INT, -HUGE_INT]}).encode(),
        {},
        None,
    ),
    ("bool-for-int", "/v1/chat/completions", json.dumps(_chat(n=True)).encode(), {}, 400),
    ("deep-nesting-top-level", "/v1/chat/completions", _nested(20000), {}, 400),
    (
        "deep-nesting-object",
        "/v1/chat/completions",
        b'{"a":' * 10000 + b"1" + b"}" * 10000,
        {},
        400,
    ),
    (
        "deep-nesting-unknown-field",
        "/v1/chat/completions",
        _raw_chat(b'"x_extra":' + _nested(5000)),
        {},
        400,
    ),
    (
        "moderate-nesting-unknown-field",
        "/v1/chat/completions",
        _raw_chat(b'"x_extra":' + _nested(120)),
        {},
        None,
    ),
    (
        "deep-nesting-messages",
        "/v1/chat/completions",
        b'{"model":"gpt-echo","messages":' + _nested(5000) + b"}",
        {},
        400,
    ),
    (
        "deep-nesting-tool-parameters",
        "/v1/chat/completions",
        json.dumps(
            _chat(
                tools=[
                    {
                        "type": "function",
                        "function": {"name": "f", "parameters": {"p": _nested_objects(150)}},
                    }
                ]
            )
        ).encode(),
        {},
        None,
    ),
    (
        "messages-not-a-list",
        "/v1/chat/completions",
        json.dumps({"model": KNOWN_MODEL, "messages": {"role": "user"}}).encode(),
        {},
        400,
    ),
    (
        "message-not-an-object",
        "/v1/chat/completions",
        json.dumps({"model": KNOWN_MODEL, "messages": [None, 1, "x", []]}).encode(),
        {},
        400,
    ),
    (
        "unknown-role",
        "/v1/chat/completions",
        json.dumps(
            {"model": KNOWN_MODEL, "messages": [{"role": "robot", "content": "x"}]}
        ).encode(),
        {},
        400,
    ),
    (
        "model-not-a-string",
        "/v1/embeddings",
        json.dumps({"model": ["x"], "input": "x"}).encode(),
        {},
        400,
    ),
    ("model-empty", "/v1/embeddings", json.dumps({"model": "", "input": "x"}).encode(), {}, 400),
    (
        "model-huge",
        "/v1/embeddings",
        json.dumps({"model": "m" * 60000, "input": "x"}).encode(),
        {},
        404,
    ),
    (
        "model-control-chars",
        "/v1/embeddings",
        json.dumps({"model": "\x00\n\r\u2028\U0010ffff", "input": "x"}).encode(),
        {},
        404,
    ),
    (
        "stream-not-bool",
        "/v1/completions",
        json.dumps({"model": KNOWN_MODEL, "prompt": "x", "stream": "yes"}).encode(),
        {},
        400,
    ),
    (
        "body-at-limit",
        "/v1/completions",
        (lambda b: b + b" " * (MAX_BODY_BYTES - len(b)))(
            json.dumps({"model": KNOWN_MODEL, "prompt": "x"}).encode()
        ),
        {},
        200,
    ),
    (
        "body-over-limit",
        "/v1/chat/completions",
        json.dumps(_chat(pad="x" * MAX_BODY_BYTES)).encode(),
        {},
        413,
    ),
    ("body-over-limit-not-json", "/v1/embeddings", b"\xff" * (MAX_BODY_BYTES + 1), {}, 413),
    (
        "content-type-text-plain",
        "/v1/completions",
        json.dumps({"model": KNOWN_MODEL, "prompt": "x"}).encode(),
        {"content-type": "text/plain"},
        None,
    ),
    (
        "content-type-form",
        "/v1/completions",
        b"model=gpt-echo&prompt=x",
        {"content-type": "application/x-www-form-urlencoded"},
        400,
    ),
    (
        "content-type-multipart",
        "/v1/completions",
        b'--b\r\nContent-Disposition: form-data; name="model"\r\n\r\ngpt-echo\r\n--b--\r\n',
        {"content-type": "multipart/form-data; boundary=b"},
        400,
    ),
    (
        "content-type-garbage",
        "/v1/embeddings",
        json.dumps({"model": KNOWN_MODEL, "input": "x"}).encode(),
        {"content-type": "nonsense/garbage; charset=klingon; ;;=x"},
        None,
    ),
    (
        "content-encoding-gzip-lie",
        "/v1/embeddings",
        b"\x1f\x8b not really gzip",
        {"content-encoding": "gzip"},
        400,
    ),
    ("path-like-request-id", "/v1/embeddings", b"{}", {"x-request-id": "../../etc"}, 400),
    (
        "hostile-request-id",
        "/v1/embeddings",
        json.dumps({"model": KNOWN_MODEL, "input": "x"}).encode(),
        {"x-request-id": "a" * 5000},
        200,
    ),
]


@pytest.mark.parametrize(
    ("path", "body", "headers", "expected"),
    [pytest.param(p, b, h, e, id=i) for i, p, b, h, e in HOSTILE],
)
def test_hostile_input(
    client: httpx.Client, path: str, body: bytes, headers: dict[str, str], expected: int | None
) -> None:
    response = client.post(path, content=body, headers=headers)
    assert_client_answer(response.status_code, response.content, f"POST {path} {body[:200]!r}")
    if expected is not None:
        assert response.status_code == expected, response.text[:500]


def _chunks(total: int, size: int = 8192) -> Iterator[bytes]:
    yield b'{"model":"gpt-echo","prompt":"'
    sent = 0
    while sent < total:
        yield b"x" * size
        sent += size
    yield b'"}'


@pytest.mark.parametrize(
    ("method", "path", "headers", "content", "expected"),
    [
        pytest.param(
            "POST",
            "/v1/completions",
            {},
            lambda: _chunks(MAX_BODY_BYTES * 4),
            413,
            id="chunked-body-over-limit",
        ),
        pytest.param(
            "POST", "/v1/completions", {}, lambda: _chunks(1024), 200, id="chunked-body-under-limit"
        ),
        pytest.param(
            "POST",
            "/v1/chat/completions",
            {"authorization": ""},
            lambda: b"{}",
            401,
            id="empty-authorization",
        ),
        pytest.param(
            "POST",
            "/v1/chat/completions",
            {"authorization": "Basic Zm9vOmJhcg=="},
            lambda: b"{}",
            401,
            id="basic-authorization",
        ),
        pytest.param(
            "POST",
            "/v1/chat/completions",
            {"authorization": "Bearer"},
            lambda: b"{}",
            401,
            id="bearer-without-key",
        ),
        pytest.param(
            "POST",
            "/v1/chat/completions",
            {"authorization": f"Bearer {ALICE_KEY}x"},
            lambda: b"{}",
            401,
            id="wrong-key",
        ),
        pytest.param(
            "POST",
            "/v1/chat/completions",
            {"authorization": b"Bearer \xff\xfe\x80"},
            lambda: b"{}",
            401,
            id="non-ascii-bearer",
        ),
        pytest.param("GET", "/v1/chat/completions", {}, lambda: b"", 405, id="get-inference"),
        pytest.param("DELETE", "/v1/embeddings", {}, lambda: b"", 405, id="delete-inference"),
        pytest.param("PUT", "/v1/models", {}, lambda: b"{}", 405, id="put-models"),
        pytest.param("POST", "/openapi.json", {}, lambda: b"{}", 405, id="post-openapi"),
        pytest.param("GET", "/v1/../../etc/passwd", {}, lambda: b"", 404, id="path-traversal"),
        pytest.param(
            "POST", "/v1/chat/completions/extra", {}, lambda: b"{}", 404, id="unknown-path"
        ),
    ],
)
def test_hostile_request(
    shared_gateway: ServerThread,
    method: str,
    path: str,
    headers: dict[str, str],
    content: Callable[[], Any],
    expected: int,
) -> None:
    base = {} if "authorization" in headers else AUTH
    with httpx.Client(base_url=shared_gateway.url, headers=base, timeout=15) as client:
        response = client.request(method, path, content=content(), headers=headers)
    assert_client_answer(response.status_code, response.content, f"{method} {path}", method)
    assert response.status_code == expected, response.text[:500]


def raw_exchange(gateway: ServerThread, request: bytes) -> tuple[int, bytes]:
    """Send bytes httpx refuses to send (lying headers, blank values); (status, body) back."""
    with socket.create_connection(("127.0.0.1", gateway.port), timeout=10) as sock:
        sock.sendall(request)
        chunks: list[bytes] = []
        while True:
            try:
                chunk = sock.recv(65536)
            except ConnectionResetError:
                break
            if not chunk:
                break
            chunks.append(chunk)
    head, _, body = b"".join(chunks).partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), body


def _raw_post(path: str, headers: bytes, body: bytes = b"{}") -> bytes:
    return (
        f"POST {path} HTTP/1.1\r\nhost: 127.0.0.1\r\nconnection: close\r\n".encode()
        + b"content-type: application/json\r\n"
        + headers
        + b"\r\n"
        + body
    )


@pytest.mark.parametrize(
    ("request_bytes", "expected"),
    [
        pytest.param(
            _raw_post("/v1/completions", AUTH_LINE + b"content-length: " + b"9" * 15 + b"\r\n"),
            413,
            id="content-length-claims-huge",
        ),
        pytest.param(
            _raw_post(
                "/v1/completions", AUTH_LINE + f"content-length: {MAX_BODY_BYTES + 1}\r\n".encode()
            ),
            413,
            id="content-length-over-limit-body-never-sent",
        ),
        pytest.param(
            _raw_post(
                "/v1/chat/completions", b"authorization: Bearer    \r\ncontent-length: 2\r\n"
            ),
            401,
            id="blank-bearer",
        ),
        pytest.param(
            _raw_post(
                "/v1/chat/completions", b"authorization: Bearer \xff\x00x\r\ncontent-length: 2\r\n"
            ),
            None,
            id="nul-in-bearer",  # the HTTP parser may refuse it first; it must not be a 5xx
        ),
    ],
)
def test_hostile_raw_http(
    shared_gateway: ServerThread, request_bytes: bytes, expected: int | None
) -> None:
    status, body = raw_exchange(shared_gateway, request_bytes)
    if expected is None:
        assert status < 500, body[:500]
        return
    assert_client_answer(status, body, repr(request_bytes[:200]))
    assert status == expected, body[:500]


# --- 3. plain hypothesis: arbitrary JSON and bytes ------------------------------------------------

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
    "/v1/chat/completions": (ChatCompletionRequest, _chat()),
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
