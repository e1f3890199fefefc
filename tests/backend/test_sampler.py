"""Sampler: greedy, temperature, top-k, top-p, min-p, penalties, suppression and logprobs against
plain references; seeded rows reproducible and independent of whatever else is in the batch."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from typing import Any

import pytest
import torch

from backend import sampler as sampler_module
from backend.sampler import Sampler, SampleRow
from backend.sampling_params import SamplingParams

DRAWS = 10_000


def make_row(
    generator: torch.Generator | None = None,
    prompt: Sequence[int] = (),
    output: Sequence[int] = (),
    suppress: Sequence[int] = (),
    **params: Any,
) -> SampleRow:
    return SampleRow(SamplingParams(**params), generator, prompt, output, suppress)


def random_logits(rows: int, vocab: int, seed: int, scale: float = 2.0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(rows, vocab, generator=generator) * scale


def draw_counts(
    logits_row: torch.Tensor, draws: int = DRAWS, batch: int = DRAWS, **params: Any
) -> list[int]:
    """Samples `draws` times from one row of logits; returns how often each token came up."""
    sampler, row, counts = Sampler(seed=1234), make_row(**params), Counter[int]()
    for start in range(0, draws, batch):
        size = min(batch, draws - start)
        logits = logits_row.unsqueeze(0).expand(size, -1).contiguous()
        counts.update(sampler(logits, [row] * size).token_ids)
    return [counts[token] for token in range(logits_row.shape[0])]


def chi_square_ok(counts: list[int], probs: list[float]) -> bool:
    """Pearson's test at the 0.1% level over the tokens with non-zero expected probability."""
    total = sum(counts)
    cells = [(c, p * total) for c, p in zip(counts, probs, strict=True) if p > 0]
    statistic = sum((c - e) ** 2 / e for c, e in cells)
    dof = len(cells) - 1
    if dof == 0:
        return True
    # Wilson-Hilferty approximation of the chi-square quantile; z = 3.09 is the 99.9th percentile.
    h = 2 / (9 * dof)
    return statistic < dof * (1 - h + 3.09 * math.sqrt(h)) ** 3


def softmax(values: Sequence[float]) -> list[float]:
    top = max(values)
    exps = [math.exp(v - top) if v != -math.inf else 0.0 for v in values]
    return [e / sum(exps) for e in exps]


def reference_nucleus(probs: Sequence[float], top_p: float) -> set[int]:
    """The smallest set of most likely tokens whose mass reaches top_p."""
    order = sorted(range(len(probs)), key=lambda t: -probs[t])
    kept, mass = set(), 0.0
    for token in order:
        kept.add(token)
        mass += probs[token]
        if mass >= top_p:
            break
    # The reference is only meaningful when float32 rounding cannot move the boundary.
    assert abs(mass - top_p) > 1e-4 and abs(mass - probs[order[len(kept) - 1]] - top_p) > 1e-4
    return kept


def reference_penalised(
    logits: Sequence[float], prompt: Sequence[int], output: Sequence[int], params: SamplingParams
) -> list[float]:
    seen, counts, penalised = set(prompt) | set(output), Counter(output), []
    for token, value in enumerate(logits):
        if token in seen:
            penalty = params.repetition_penalty
            value = value / penalty if value > 0 else value * penalty
        value -= params.presence_penalty * (counts[token] > 0)
        value -= params.frequency_penalty * counts[token]
        penalised.append(value)
    return penalised


def test_greedy_rows_take_the_argmax_with_ties_to_the_lowest_id() -> None:
    logits = random_logits(8, 100, seed=0)
    logits[3, [17, 42, 90]] = 50.0
    result = Sampler()(logits, [make_row(temperature=0.0) for _ in range(8)])
    assert result.token_ids == logits.argmax(dim=-1).tolist()
    assert result.token_ids[3] == 17
    assert result.logprobs is None and result.top_logprobs is None


def test_greedy_with_logprobs_still_takes_the_argmax() -> None:
    logits = random_logits(4, 100, seed=1)
    result = Sampler()(logits, [make_row(temperature=0.0, logprobs=2) for _ in range(4)])
    assert result.token_ids == logits.argmax(dim=-1).tolist()


def test_top_k_one_is_greedy_whatever_the_temperature() -> None:
    logits = random_logits(16, 50, seed=2, scale=0.1)
    logits[5, [3, 4]] = 9.0
    rows = [make_row(temperature=2.0, top_k=1) for _ in range(16)]
    rows[7] = make_row(Sampler().generator_for(9), temperature=5.0, top_k=1)
    assert Sampler()(logits, rows).token_ids == logits.argmax(dim=-1).tolist()
    assert Sampler()(logits, rows).token_ids[5] == 3


def test_sampler_does_not_modify_the_logits() -> None:
    logits = random_logits(3, 40, seed=3)
    before = logits.clone()
    rows = [
        make_row(temperature=0.5, top_p=0.5, top_k=5),
        make_row(output=[1, 2], suppress=[0], repetition_penalty=2.0, temperature=0.0),
        make_row(min_p=0.2, logprobs=3),
    ]
    Sampler()(logits, rows)
    Sampler()(logits, rows[:1] + rows[2:] + rows[:1])
    assert torch.equal(logits, before)


def test_logits_of_the_wrong_shape_are_rejected() -> None:
    with pytest.raises(ValueError, match="logits must be"):
        Sampler()(torch.zeros(3, 10), [make_row()])


@pytest.mark.parametrize("top_p", [0.3, 0.6, 0.85])
def test_top_p_samples_only_the_nucleus_in_proportion(top_p: float) -> None:
    logits = random_logits(1, 24, seed=4)[0]
    probs = softmax(logits.tolist())
    nucleus = reference_nucleus(probs, top_p)
    counts = draw_counts(logits, top_p=top_p)
    assert {token for token, c in enumerate(counts) if c} == nucleus
    mass = sum(probs[t] for t in nucleus)
    expected = [probs[t] / mass if t in nucleus else 0.0 for t in range(len(probs))]
    assert chi_square_ok(counts, expected)


@pytest.mark.parametrize(
    ("spread", "top_p"),
    [(4.0, 0.8), (0.3, 0.88)],
    ids=["nucleus-among-the-first-candidates", "nucleus-needs-the-whole-vocabulary"],
)
def test_top_p_samples_the_whole_nucleus_beyond_the_first_candidates(
    spread: float, top_p: float, monkeypatch: pytest.MonkeyPatch
) -> None:
    # top_p first looks among the best _TOP_P_CANDIDATES tokens (1024); 64 of 400 keeps it quick.
    monkeypatch.setattr(sampler_module, "_TOP_P_CANDIDATES", 64)
    vocab = 400
    logits = random_logits(1, vocab, seed=14, scale=spread)[0]
    probs = softmax(logits.tolist())
    nucleus = reference_nucleus(probs, top_p)
    assert (len(nucleus) < 64) == (spread > 1)
    counts = draw_counts(logits, draws=30 * len(nucleus), top_p=top_p)
    picked = {token for token, c in enumerate(counts) if c}
    assert picked == nucleus  # every nucleus token is expected at least a few times
    mass = sum(probs[t] for t in nucleus)
    assert chi_square_ok(counts, [probs[t] / mass if t in nucleus else 0.0 for t in range(vocab)])


def test_top_k_samples_only_the_k_most_likely_in_proportion() -> None:
    logits = random_logits(1, 30, seed=5)[0]
    probs = softmax(logits.tolist())
    top = set(sorted(range(30), key=lambda t: -probs[t])[:6])
    counts = draw_counts(logits, top_k=6)
    assert {token for token, c in enumerate(counts) if c} == top
    mass = sum(probs[t] for t in top)
    assert chi_square_ok(counts, [probs[t] / mass if t in top else 0.0 for t in range(30)])


def test_top_k_then_top_p_takes_the_nucleus_of_the_top_k() -> None:
    logits = torch.tensor([4.0, 3.0, 2.9, 2.8, 0.0, -1.0])
    probs = softmax(logits.tolist()[:3])  # after top_k=3, renormalised: ~[0.58, 0.21, 0.19]
    counts = draw_counts(logits, draws=4000, top_k=3, top_p=0.7)
    assert {token for token, c in enumerate(counts) if c} == reference_nucleus(probs, 0.7)


def test_min_p_drops_tokens_below_a_fraction_of_the_top_one() -> None:
    logits = random_logits(1, 24, seed=6)[0]
    probs = softmax(logits.tolist())
    kept = {t for t, p in enumerate(probs) if p >= 0.15 * max(probs)}
    assert 1 < len(kept) < 24
    counts = draw_counts(logits, min_p=0.15)
    assert {token for token, c in enumerate(counts) if c} == kept
    mass = sum(probs[t] for t in kept)
    assert chi_square_ok(counts, [probs[t] / mass if t in kept else 0.0 for t in range(24)])


@pytest.mark.parametrize("temperature", [0.5, 1.0, 2.0])
def test_temperature_scales_the_logits_before_sampling(temperature: float) -> None:
    logits = random_logits(1, 12, seed=7, scale=1.0)[0]
    counts = draw_counts(logits, temperature=temperature)
    scaled = softmax([v / temperature for v in logits.tolist()])
    assert chi_square_ok(counts, scaled)
    if temperature != 1.0:
        assert not chi_square_ok(counts, softmax(logits.tolist()))


def test_low_temperature_concentrates_on_the_top_token() -> None:
    logits = random_logits(1, 100, seed=8)[0]
    counts = draw_counts(logits, draws=2000, temperature=0.01)
    assert counts[int(logits.argmax())] == 2000


PENALTY_CASES = [
    {"repetition_penalty": 1.7},
    {"repetition_penalty": 0.6},
    {"presence_penalty": 1.5},
    {"frequency_penalty": -0.8},
    {"repetition_penalty": 1.3, "presence_penalty": -1.0, "frequency_penalty": 0.7},
]


@pytest.mark.parametrize("penalties", PENALTY_CASES)
def test_penalties_match_a_plain_python_reference(penalties: dict[str, Any]) -> None:
    vocab = 20
    logits = random_logits(4, vocab, seed=9)
    generator = torch.Generator().manual_seed(10)
    prompts = [torch.randint(0, vocab, (n,), generator=generator).tolist() for n in (0, 5, 9, 3)]
    outputs = [torch.randint(0, vocab, (n,), generator=generator).tolist() for n in (7, 0, 12, 4)]
    rows = [
        make_row(prompt=p, output=o, temperature=0.0, logprobs=vocab, **penalties)
        for p, o in zip(prompts, outputs, strict=True)
    ]
    result = Sampler()(logits, rows)
    assert result.top_logprobs is not None and result.logprobs is not None
    for i, row in enumerate(rows):
        penalised = reference_penalised(logits[i].tolist(), prompts[i], outputs[i], row.params)
        reference = [math.log(p) for p in softmax(penalised)]
        got = dict(result.top_logprobs[i])
        assert got.keys() == set(range(vocab))
        assert [got[t] for t in range(vocab)] == pytest.approx(reference, abs=1e-4)
        assert result.token_ids[i] == max(range(vocab), key=lambda t: penalised[t])
        if outputs[i]:  # the penalty must have changed something for the check to mean anything
            unpenalised = torch.log_softmax(logits[i], dim=-1).tolist()
            assert reference != pytest.approx(unpenalised, abs=1e-3)


def test_penalties_on_one_row_leave_the_others_alone() -> None:
    logits = random_logits(2, 20, seed=11)
    rows = [
        make_row(output=[1, 1, 2], frequency_penalty=2.0, logprobs=20),
        make_row(output=[1, 1, 2], logprobs=20),
    ]
    top = Sampler()(logits, rows).top_logprobs
    assert top is not None
    plain = dict(top[1])
    assert [plain[t] for t in range(20)] == pytest.approx(
        torch.log_softmax(logits[1], -1).tolist(), abs=1e-5
    )


def test_logprobs_are_the_log_softmax_before_temperature_sorted_descending() -> None:
    logits = random_logits(3, 64, seed=12)
    rows = [
        make_row(temperature=0.3, top_k=4, logprobs=5),
        make_row(temperature=0.0, logprobs=0),
        make_row(temperature=1.0),
    ]
    result = Sampler(seed=0)(logits, rows)
    assert result.logprobs is not None and result.top_logprobs is not None
    reference = torch.log_softmax(logits.double(), dim=-1)
    for i, token in enumerate(result.token_ids):
        assert result.logprobs[i] == pytest.approx(float(reference[i, token]), abs=1e-5)
    ids = reference[0].argsort(descending=True)[:5].tolist()
    assert [t for t, _ in result.top_logprobs[0]] == ids
    assert [lp for _, lp in result.top_logprobs[0]] == pytest.approx(
        reference[0, ids].tolist(), abs=1e-5
    )
    values = [lp for _, lp in result.top_logprobs[0]]
    assert values == sorted(values, reverse=True)
    assert result.top_logprobs[1] == [] and result.top_logprobs[2] == []


def test_suppressed_tokens_are_never_sampled() -> None:
    vocab = 16
    logits = torch.zeros(vocab)
    logits[[2, 7]] = 10.0
    counts = draw_counts(logits, draws=4000, suppress=[2, 7, 99])
    assert counts[2] == counts[7] == 0
    assert all(counts[t] > 0 for t in range(vocab) if t not in (2, 7))
    greedy = Sampler()(logits.unsqueeze(0), [make_row(suppress=[2], temperature=0.0, logprobs=1)])
    assert greedy.token_ids == [7]
    assert greedy.top_logprobs is not None and greedy.top_logprobs[0][0][0] == 7


def other_rows(sampler: Sampler) -> list[SampleRow]:
    """Seven rows of every kind to surround the row under test."""
    return [
        make_row(temperature=0.0),
        make_row(temperature=0.9, top_p=0.5),
        make_row(sampler.generator_for(7), temperature=1.3, top_k=20, logprobs=3),
        make_row(output=[1, 2, 3, 3], presence_penalty=1.0, suppress=[0, 5]),
        make_row(sampler.generator_for(8), min_p=0.05, repetition_penalty=1.2, prompt=[4]),
        make_row(temperature=0.0, frequency_penalty=0.5, output=[9]),
        make_row(temperature=2.0, top_k=200, top_p=0.9, min_p=0.1),
    ]


ROW_UNDER_TEST = [
    {"temperature": 0.8, "top_p": 0.9, "top_k": 200, "repetition_penalty": 1.1},
    {"temperature": 1.5, "top_p": 0.95, "frequency_penalty": 0.3},
    {"top_p": 0.5, "min_p": 0.001},
    {"temperature": 0.7},
]


def seeded_tokens(seed: int, params: dict[str, Any], position: int | None) -> list[int]:
    """Tokens drawn by one seeded row, alone (position None) or at `position` in a batch of 8."""
    sampler = Sampler()
    row = make_row(sampler.generator_for(seed), prompt=[1, 2], **params)
    tokens: list[int] = []
    for step in range(6):
        batch = [row] if position is None else other_rows(sampler)
        if position is not None:
            batch.insert(position, row)
        logits = random_logits(len(batch), 2000, seed=100 + step)
        logits[batch.index(row)] = random_logits(1, 2000, seed=step, scale=1.0 + step)[0]
        token = sampler(logits, batch).token_ids[batch.index(row)]
        row.output_token_ids = [*row.output_token_ids, token]
        tokens.append(token)
    return tokens


@pytest.mark.parametrize("params", ROW_UNDER_TEST)
def test_seeded_row_is_the_same_alone_and_in_a_mixed_batch(params: dict[str, Any]) -> None:
    alone = seeded_tokens(42, params, None)
    assert seeded_tokens(42, params, 0) == alone
    assert seeded_tokens(42, params, 4) == alone
    assert seeded_tokens(42, params, 7) == alone
    assert seeded_tokens(43, params, None) != alone


def test_same_seed_same_draws_across_samplers_and_different_seeds_differ() -> None:
    logits = torch.zeros(1, 1000)
    runs = []
    for seed, shared_seed in ((5, 1), (5, 2), (6, 1)):
        sampler = Sampler(seed=shared_seed)
        row = make_row(sampler.generator_for(seed))
        runs.append([sampler(logits, [row]).token_ids[0] for _ in range(10)])
    assert runs[0] == runs[1]
    assert runs[0] != runs[2]


def test_unseeded_rows_follow_the_sampler_seed() -> None:
    logits = torch.zeros(4, 1000)

    def run(seed: int) -> list[int]:
        sampler = Sampler(seed=seed)
        return [t for _ in range(3) for t in sampler(logits, [make_row()] * 4).token_ids]

    assert run(3) == run(3)
    assert run(3) != run(4)


def test_seeded_draws_follow_the_probabilities() -> None:
    logits = random_logits(1, 10, seed=13, scale=1.0)
    sampler = Sampler()
    row = make_row(sampler.generator_for(0))
    counts = Counter(sampler(logits, [row]).token_ids[0] for _ in range(3000))
    assert chi_square_ok([counts[t] for t in range(10)], softmax(logits[0].tolist()))


def test_each_of_n_sequences_gets_its_own_reproducible_stream() -> None:
    logits = torch.zeros(1, 1000)

    def tokens(seed: int, sequence: int) -> list[int]:
        sampler = Sampler()
        row = make_row(sampler.generator_for(seed, sequence))
        return [sampler(logits, [row]).token_ids[0] for _ in range(8)]

    first = tokens(5, 0)
    assert tokens(5, 1) == tokens(5, 1)
    assert len({tuple(first), tuple(tokens(5, 1)), tuple(tokens(5, 2)), tuple(tokens(6, 1))}) == 4
    plain = Sampler()
    row = make_row(plain.generator_for(5))
    assert [plain(logits, [row]).token_ids[0] for _ in range(8)] == first
