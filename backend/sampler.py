"""Sampler: turns one engine step's logits into one token per row, vectorised over the rows.
Order: penalties -> suppression -> logprobs -> temperature -> top-k -> top-p -> min-p -> draw."""

from __future__ import annotations

import hashlib
import itertools
from array import array
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from backend.sampling_params import SamplingParams

_NEG_INF = float("-inf")
# top_p without top_k looks for its nucleus among this many tokens before sorting them all.
_TOP_P_CANDIDATES = 1024


@dataclass(slots=True)
class SampleRow:
    """One row of logits to sample from, with what the penalties and suppression need to know.

    `generator` is the sequence's own (`Sampler.generator_for`) when its request set a seed;
    None draws from the sampler's shared generator, even if `params.seed` is set.
    """

    params: SamplingParams
    generator: torch.Generator | None
    prompt_token_ids: Sequence[int]
    output_token_ids: Sequence[int]
    suppress_token_ids: Sequence[int] = ()


@dataclass(slots=True)
class SampleResult:
    """One token per row; logprobs only when some row asked for them (see Sampler)."""

    token_ids: list[int]
    logprobs: list[float] | None
    top_logprobs: list[list[tuple[int, float]]] | None


class Sampler:
    """Samples a batch of rows in one call; holds the shared generators for unseeded rows.

    Logprobs (the sampled token's and the top-k) are the log_softmax of the logits after the
    penalties and suppression but BEFORE temperature, top-k, top-p and min-p: the model's own
    distribution as the request's penalties shaped it, whatever the sampling knobs (vLLM's "raw"
    logprobs, except that penalties and suppression are already applied). Suppressed tokens have
    logprob -inf.

    Greedy rows (temperature 0 or top_k 1) take the argmax of the penalised logits; ties go to the
    lowest token id, as torch.argmax does. Random rows draw by inverse CDF: one uniform u per row,
    the first token whose cumulative probability exceeds u. A row with its own generator draws
    exactly one number from it per step, so its tokens depend only on its seed, its logits and its
    params, never on the rest of the batch. Rows without one share one draw from the sampler's
    generator for the logits' device. (An exponential race, argmax(probs / q), needs `vocab` draws
    per row; on the CPU those cost more than all the rest of the sampler.)
    """

    def __init__(self, seed: int | None = None) -> None:
        self._seed = seed
        self._shared: dict[torch.device, torch.Generator] = {}

    def generator_for(self, seed: int, sequence: int = 0) -> torch.Generator:
        """A fresh CPU generator for a request that set `seed`; pass it in that request's rows.

        With n > 1, give sequence i its own `generator_for(seed, i)`: the n choices then differ
        from each other, and sequence 0 draws exactly what an n = 1 request with that seed draws.
        """
        if sequence:
            key = f"{seed}:{sequence}".encode()
            seed = int.from_bytes(hashlib.blake2b(key, digest_size=8).digest(), "little")
        generator = torch.Generator(device="cpu")
        generator.manual_seed(seed)
        return generator

    def __call__(self, logits: torch.Tensor, rows: Sequence[SampleRow]) -> SampleResult:
        # logits: [len(rows), vocab], any float dtype, any device; never modified.
        if logits.dim() != 2 or logits.shape[0] != len(rows):
            raise ValueError(f"logits must be [{len(rows)}, vocab], got {list(logits.shape)}")
        if all(_plain_greedy(row) for row in rows):
            return SampleResult(logits.argmax(dim=-1).tolist(), None, None)

        edits = any(row.params.has_penalties or row.suppress_token_ids for row in rows)
        logits = logits.to(torch.float32, copy=edits).contiguous()
        _apply_penalties(logits, rows)
        _apply_suppression(logits, rows)
        logprobs = None
        if any(row.params.logprobs is not None for row in rows):
            logprobs = torch.log_softmax(logits, dim=-1)

        random_rows = [i for i, row in enumerate(rows) if not row.params.greedy]
        if len(random_rows) == len(rows):
            token_ids = self._draw(logits if edits else logits.clone(), rows)
        else:
            token_ids = logits.argmax(dim=-1)
            if random_rows:
                index = torch.tensor(random_rows, device=logits.device)
                token_ids[index] = self._draw(logits[index], [rows[i] for i in random_rows])
        if logprobs is None:
            return SampleResult(token_ids.tolist(), None, None)
        return _with_logprobs(token_ids, logprobs, rows)

    def _draw(self, logits: torch.Tensor, rows: Sequence[SampleRow]) -> torch.Tensor:
        # logits: [rows, vocab] private copy, scaled and filtered in place -> [rows] token ids
        logits.div_(_column(rows, "temperature", logits.device))
        _apply_top_k_top_p(logits, rows)
        probs = logits.softmax(dim=-1)
        _apply_min_p(probs, rows)
        cdf = probs.cumsum_(dim=-1)
        total = cdf[:, -1:]
        # The first token whose cdf exceeds u * total: the cdf is flat over zero probabilities,
        # so those are never picked. u * total can round up to total; the largest float below it
        # still lands on a token with non-zero probability.
        target = torch.minimum(
            self._uniforms(rows, logits.device) * total,
            torch.nextafter(total, torch.zeros_like(total)),
        )
        return torch.searchsorted(cdf, target, right=True).squeeze(1)

    def _uniforms(self, rows: Sequence[SampleRow], device: torch.device) -> torch.Tensor:
        # -> [rows, 1] U[0, 1): one shared draw for the unseeded rows, one each for seeded rows.
        seeded = [i for i, row in enumerate(rows) if row.generator is not None]
        shared = self._generator(device)
        if not seeded:
            return torch.rand((len(rows), 1), generator=shared, device=device)
        u = torch.empty((len(rows), 1), device=device)
        unseeded = [i for i, row in enumerate(rows) if row.generator is None]
        if unseeded:
            u[torch.tensor(unseeded, device=device)] = torch.rand(
                (len(unseeded), 1), generator=shared, device=device
            )
        generators = [row.generator for row in rows if row.generator is not None]
        draws = [torch.rand(1, generator=g, device=g.device) for g in generators]
        u[torch.tensor(seeded, device=device)] = torch.stack(draws).to(device)
        return u

    def _generator(self, device: torch.device) -> torch.Generator:
        generator = self._shared.get(device)
        if generator is None:
            generator = torch.Generator(device=device)
            if self._seed is None:
                generator.seed()
            else:
                generator.manual_seed(self._seed)
            self._shared[device] = generator
        return generator


def _plain_greedy(row: SampleRow) -> bool:
    params = row.params
    return (
        params.greedy
        and params.logprobs is None
        and not params.has_penalties
        and not row.suppress_token_ids
    )


def _column(rows: Sequence[SampleRow], name: str, device: torch.device) -> torch.Tensor:
    # -> [rows, 1] float32 of one SamplingParams field, to broadcast over the vocabulary.
    values = [float(getattr(row.params, name)) for row in rows]
    return torch.tensor(values, dtype=torch.float32, device=device).unsqueeze(1)


def _distinct_pairs(
    row_ids: Sequence[int], sequences: Sequence[Sequence[int]], vocab: int, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor]:
    # -> (row * vocab + token for each distinct (row, token) pair, its count), both [pairs].
    lengths = torch.tensor([len(tokens) for tokens in sequences], dtype=torch.long)
    # array('q') reads Python ints several times faster than torch.tensor(list) does.
    flat = array("q", itertools.chain.from_iterable(sequences))
    tokens = torch.frombuffer(flat, dtype=torch.long) if flat else torch.empty(0, dtype=torch.long)
    row_of = torch.repeat_interleave(torch.tensor(row_ids, dtype=torch.long), lengths)
    keep = (tokens >= 0) & (tokens < vocab)
    pairs, counts = torch.unique(row_of[keep] * vocab + tokens[keep], return_counts=True)
    return pairs.to(device), counts.to(device=device, dtype=torch.float32)


def _apply_penalties(logits: torch.Tensor, rows: Sequence[SampleRow]) -> None:
    # logits: [rows, vocab] contiguous; only the (row, token) pairs seen so far are touched.
    chosen = [i for i, row in enumerate(rows) if row.params.has_penalties]
    if not chosen:
        return
    device, vocab, flat = logits.device, logits.shape[1], logits.view(-1)
    if any(rows[i].params.repetition_penalty != 1.0 for i in chosen):
        # HF/vLLM: every token seen in the prompt or the output is pulled towards zero.
        sequences = [rows[i].prompt_token_ids for i in chosen]
        sequences += [rows[i].output_token_ids for i in chosen]
        seen, _ = _distinct_pairs(chosen + chosen, sequences, vocab, device)
        penalty = _column(rows, "repetition_penalty", device).squeeze(1)[seen // vocab]
        values = flat[seen]
        flat[seen] = torch.where(values > 0, values / penalty, values * penalty)
    if all(
        rows[i].params.presence_penalty == rows[i].params.frequency_penalty == 0 for i in chosen
    ):
        return
    outputs = [rows[i].output_token_ids for i in chosen]
    pairs, counts = _distinct_pairs(chosen, outputs, vocab, device)
    if pairs.numel():
        # OpenAI: presence once per token that occurred in the output, frequency per occurrence.
        row_of = pairs // vocab
        presence = _column(rows, "presence_penalty", device).squeeze(1)[row_of]
        frequency = _column(rows, "frequency_penalty", device).squeeze(1)[row_of]
        flat[pairs] = flat[pairs] - (presence + frequency * counts)


def _apply_suppression(logits: torch.Tensor, rows: Sequence[SampleRow]) -> None:
    # logits: [rows, vocab] contiguous; suppressed (row, token) pairs set to -inf in place.
    vocab = logits.shape[1]
    flat = [
        i * vocab + token
        for i, row in enumerate(rows)
        for token in row.suppress_token_ids
        if 0 <= token < vocab
    ]
    if flat:
        logits.view(-1).index_fill_(0, torch.tensor(flat, device=logits.device), _NEG_INF)


def _apply_top_k_top_p(logits: torch.Tensor, rows: Sequence[SampleRow]) -> None:
    # logits: [rows, vocab] temperature-scaled; tokens outside top-k / the nucleus set to -inf.
    # Rows are grouped by how many candidates they look at, so that a row's arithmetic (and so
    # its token) does not depend on what else is in the batch.
    vocab = logits.shape[1]
    groups: dict[int, list[int]] = {}
    for i, row in enumerate(rows):
        top_k = row.params.top_k if 0 < row.params.top_k < vocab else 0
        if top_k or row.params.top_p < 1.0:
            groups.setdefault(top_k or min(vocab, _TOP_P_CANDIDATES), []).append(i)
    for width, chosen in groups.items():
        _keep_top(logits, rows, chosen, width)


def _keep_top(
    logits: torch.Tensor, rows: Sequence[SampleRow], chosen: list[int], width: int
) -> None:
    # Keeps the top `width` tokens of each chosen row (its top_k, if it has one), cut to the
    # nucleus: each token whose more likely tokens hold less than top_p of the mass. With a
    # top_k, top_p applies to the renormalised top k; without, to the whole vocabulary.
    device, vocab = logits.device, logits.shape[1]
    subset = [rows[i] for i in chosen]
    index = torch.tensor(chosen, device=device)
    candidates = logits[index]
    if width < vocab:
        values, ids = candidates.topk(width, dim=-1)
    else:  # a stable sort breaks ties by lowest token id, as argmax does
        values, ids = candidates.sort(dim=-1, descending=True, stable=True)
    top_k_rows = [0 < row.params.top_k < vocab for row in subset]
    has_top_k = torch.tensor(top_k_rows, device=device).unsqueeze(1)
    norm = values.logsumexp(dim=-1, keepdim=True)
    if not all(top_k_rows):
        norm = torch.where(has_top_k, norm, candidates.logsumexp(dim=-1, keepdim=True))
    probs = (values - norm).exp_()
    mass = probs.cumsum(dim=-1)
    top_p = _column(subset, "top_p", device)
    drop = (mass - probs >= top_p) & (top_p < 1.0)
    keep = torch.zeros_like(candidates, dtype=torch.bool).scatter_(-1, ids, ~drop)
    filtered = candidates.masked_fill_(~keep, _NEG_INF)
    # A row whose nucleus does not fit among the candidates starts again on the whole vocabulary.
    short = ((mass[:, -1:] < top_p) & ~has_top_k).squeeze(1) if width < vocab else None
    if short is None or not bool(short.any()):
        logits[index] = filtered
        return
    logits[index[~short]] = filtered[~short]
    redo = [chosen[i] for i in short.nonzero().squeeze(1).tolist()]
    _keep_top(logits, rows, redo, vocab)


def _apply_min_p(probs: torch.Tensor, rows: Sequence[SampleRow]) -> None:
    # probs: [rows, vocab]; tokens under min_p times the row's top probability set to 0 in place.
    if not any(row.params.min_p > 0.0 for row in rows):
        return
    threshold = probs.amax(dim=-1, keepdim=True) * _column(rows, "min_p", probs.device)
    probs.masked_fill_(probs < threshold, 0.0)


def _with_logprobs(
    token_ids: torch.Tensor, logprobs: torch.Tensor, rows: Sequence[SampleRow]
) -> SampleResult:
    # token_ids: [rows]; logprobs: [rows, vocab] log_softmax of the penalised logits.
    sampled = logprobs.gather(1, token_ids.unsqueeze(1)).squeeze(1).tolist()
    wanted = [row.params.logprobs or 0 for row in rows]
    top: list[list[tuple[int, float]]] = [[] for _ in rows]
    k = min(max(wanted), logprobs.shape[1])
    if k > 0:
        values, ids = logprobs.topk(k, dim=-1)
        values_list, ids_list = values.tolist(), ids.tolist()
        for i, n in enumerate(wanted):
            top[i] = list(zip(ids_list[i][:n], values_list[i][:n], strict=True))
    return SampleResult(token_ids.tolist(), sampled, top)
