"""Schema-based fuzzing: schemathesis sends cases built from /openapi.json to every operation.

The schema is the gateway's own. Positive (schema-valid) and negative (schema-violating) cases go
to the gateway as a real uvicorn server on loopback in front of the mock upstream (the `gateway`
fixture of tests/conftest.py); a share of the bodies is pinned to a model the gateway knows, so
those requests get past routing and reach the mock upstream. Every answer must be below 500 and,
when it is an error, an OpenAI error body.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from schemathesis.generation.meta import TestPhase

from gateway.app import create_app
from gateway.config.loader import parse_policy
from tests.conftest import KEYS_ENV, policy_yaml
from tests.support.fuzz_target import AUTH, INFERENCE_PATHS, KNOWN_MODEL, assert_client_answer
from tests.support.servers import ServerThread

FUZZ_EXAMPLES = 100  # fuzzing phase, per operation, positive and negative together

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
