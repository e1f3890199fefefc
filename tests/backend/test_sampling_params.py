"""SamplingParams validation: every field rejects wrong types and out-of-range values by name.
Also the normalisations (stop as a string, ints for floats) and the greedy property."""

from __future__ import annotations

from typing import Any

import pytest

from backend.sampling_params import InvalidSamplingParams, SamplingParams

NAN = float("nan")
INF = float("inf")

BAD_VALUES: list[tuple[str, Any]] = [
    ("n", 0),
    ("n", 129),
    ("n", True),
    ("n", 1.0),
    ("max_tokens", 0),
    ("max_tokens", -1),
    ("max_tokens", True),
    ("max_tokens", 2.5),
    ("min_tokens", -1),
    ("min_tokens", False),
    ("temperature", -0.1),
    ("temperature", 100.5),
    ("temperature", NAN),
    ("temperature", INF),
    ("temperature", True),
    ("temperature", "1"),
    ("top_p", 0.0),
    ("top_p", 1.5),
    ("top_p", -0.5),
    ("top_p", NAN),
    ("top_p", INF),
    ("top_p", True),
    ("top_k", -2),
    ("top_k", 1.0),
    ("top_k", True),
    ("min_p", -0.01),
    ("min_p", 1.01),
    ("min_p", NAN),
    ("repetition_penalty", 0.0),
    ("repetition_penalty", -1.0),
    ("repetition_penalty", 100.01),
    ("repetition_penalty", INF),
    ("repetition_penalty", NAN),
    ("presence_penalty", 2.5),
    ("presence_penalty", -2.01),
    ("presence_penalty", NAN),
    ("presence_penalty", -INF),
    ("frequency_penalty", 2.01),
    ("frequency_penalty", -3),
    ("frequency_penalty", NAN),
    ("frequency_penalty", False),
    ("seed", True),
    ("seed", 1.5),
    ("seed", 2**64),
    ("seed", -(2**63) - 1),
    ("stop", [""]),
    ("stop", ""),
    ("stop", ["x" * 257]),
    ("stop", [f"s{i}" for i in range(17)]),
    ("stop", [1]),
    ("stop", 5),
    ("stop_token_ids", [-1]),
    ("stop_token_ids", [True]),
    ("stop_token_ids", [1.0]),
    ("stop_token_ids", 7),
    ("ignore_eos", 1),
    ("include_stop_str_in_output", "yes"),
    ("skip_special_tokens", None),
    ("logprobs", -1),
    ("logprobs", 21),
    ("logprobs", True),
    ("logprobs", 1.0),
]


@pytest.mark.parametrize(
    ("name", "value"), BAD_VALUES, ids=[f"{n}={v!r:.20}" for n, v in BAD_VALUES]
)
def test_invalid_value_is_rejected_naming_the_field(name: str, value: Any) -> None:
    with pytest.raises(InvalidSamplingParams) as caught:
        SamplingParams(**{name: value})
    assert caught.value.field == name
    assert str(caught.value).startswith(name)
    assert isinstance(caught.value, ValueError)


def test_message_names_the_allowed_range() -> None:
    with pytest.raises(InvalidSamplingParams, match=r"^top_p must be in \(0, 1\], got 1\.5$"):
        SamplingParams(top_p=1.5)
    with pytest.raises(InvalidSamplingParams, match=r"temperature must be in \[0, 100\], got nan"):
        SamplingParams(temperature=NAN)
    with pytest.raises(InvalidSamplingParams, match=r"n must be \[1, 128\], got 0"):
        SamplingParams(n=0)


def test_min_tokens_above_max_tokens_is_rejected() -> None:
    with pytest.raises(InvalidSamplingParams, match="min_tokens") as caught:
        SamplingParams(max_tokens=4, min_tokens=5)
    assert caught.value.field == "min_tokens"
    SamplingParams(max_tokens=None, min_tokens=5)
    SamplingParams(max_tokens=5, min_tokens=5)


@pytest.mark.parametrize(
    "kwargs",
    [
        {},
        {"n": 128, "max_tokens": None, "temperature": 0, "top_p": 1e-9, "top_k": -1},
        {"temperature": 100, "top_k": 1, "min_p": 1.0, "repetition_penalty": 100},
        {"presence_penalty": -2, "frequency_penalty": 2.0, "seed": -(2**63)},
        {"seed": 2**64 - 1, "logprobs": 0, "stop": ["x" * 256] * 16, "stop_token_ids": [0, 5]},
        {"logprobs": 20, "ignore_eos": True, "skip_special_tokens": False},
    ],
)
def test_edges_of_every_range_are_accepted(kwargs: dict[str, Any]) -> None:
    SamplingParams(**kwargs)


def test_stop_string_is_normalised_to_a_list() -> None:
    assert SamplingParams(stop="###").stop == ["###"]  # type: ignore[arg-type]
    assert SamplingParams(stop=("a", "b")).stop == ["a", "b"]  # type: ignore[arg-type]
    assert SamplingParams(stop_token_ids=(3, 4)).stop_token_ids == [3, 4]  # type: ignore[arg-type]


def test_integer_floats_become_floats() -> None:
    params = SamplingParams(temperature=0, top_p=1, presence_penalty=1)
    assert isinstance(params.temperature, float)
    assert isinstance(params.top_p, float)
    assert isinstance(params.presence_penalty, float)


def test_defaults_are_not_shared_between_instances() -> None:
    first, second = SamplingParams(), SamplingParams()
    first.stop.append("x")
    assert second.stop == []


@pytest.mark.parametrize(
    ("kwargs", "greedy"),
    [
        ({"temperature": 0.0}, True),
        ({"top_k": 1}, True),
        ({"temperature": 0.7, "top_k": 1}, True),
        ({"temperature": 1e-6}, False),
        ({}, False),
        ({"top_k": 2, "temperature": 0.5}, False),
    ],
)
def test_greedy_means_temperature_zero_or_top_k_one(kwargs: dict[str, Any], greedy: bool) -> None:
    assert SamplingParams(**kwargs).greedy is greedy
