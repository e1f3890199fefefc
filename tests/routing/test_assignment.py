"""Arm assignment by weighted rendezvous hashing: the split, stickiness, minimal movement."""

from __future__ import annotations

from scipy.stats import binomtest, chisquare

from gateway.routing.assignment import Assigner, canary_weights

KEYS = [f"user-{n}".encode() for n in range(10_000)]
# Statistical tests here are deterministic (the hash is), so a tiny alpha only guards against
# a hash that is badly biased, never against bad luck on a rerun.
ALPHA = 0.001


def assign_all(assigner: Assigner, weights: list[float]) -> list[int]:
    return [assigner.choose(key, weights) for key in KEYS]


def test_split_over_10000_assignments_matches_the_weights() -> None:
    weights = [50.0, 30.0, 15.0, 5.0]
    arms = assign_all(Assigner("exp", ["a", "b", "c", "d"]), weights)
    observed = [arms.count(index) for index in range(4)]
    expected = [len(KEYS) * w / sum(weights) for w in weights]
    assert chisquare(observed, expected).pvalue > ALPHA, observed


def test_a_chi_square_test_catches_a_split_that_ignores_the_weights() -> None:
    # The same check run against the wrong weights must fail: the test can tell.
    arms = assign_all(Assigner("exp", ["a", "b"]), [50.0, 50.0])
    observed = [arms.count(0), arms.count(1)]
    assert chisquare(observed, [len(KEYS) * 0.6, len(KEYS) * 0.4]).pvalue < ALPHA


def test_a_caller_stays_in_its_arm_across_calls_and_processes() -> None:
    weights = [70.0, 30.0]
    first = assign_all(Assigner("exp", ["control", "treatment"]), weights)
    again = assign_all(Assigner("exp", ["control", "treatment"]), weights)
    assert first == again


def test_experiments_split_independently() -> None:
    one = assign_all(Assigner("exp-1", ["a", "b"]), [50.0, 50.0])
    two = assign_all(Assigner("exp-2", ["a", "b"]), [50.0, 50.0])
    same = sum(x == y for x, y in zip(one, two, strict=True))
    assert binomtest(same, len(KEYS), 0.5).pvalue > ALPHA


def test_raising_one_weight_moves_only_the_theoretical_minimum_into_that_arm() -> None:
    assigner = Assigner("exp", ["a", "b", "c"])
    before = assign_all(assigner, [50.0, 30.0, 20.0])
    after = assign_all(assigner, [50.0, 60.0, 20.0])  # b: 30% -> 46.15%
    moved = [(x, y) for x, y in zip(before, after, strict=True) if x != y]
    # Every key that moved went into b: none was shuffled between a and c.
    assert all(y == 1 for _, y in moved)
    # The least any assignment can move is the total variation distance of the two splits.
    old = [0.5, 0.3, 0.2]
    new = [50 / 130, 60 / 130, 20 / 130]
    minimum = sum(abs(p - q) for p, q in zip(old, new, strict=True)) / 2
    assert binomtest(len(moved), len(KEYS), minimum).pvalue > ALPHA, (len(moved), minimum)


def test_lowering_a_weight_moves_keys_only_out_of_that_arm() -> None:
    assigner = Assigner("exp", ["a", "b", "c"])
    before = assign_all(assigner, [40.0, 40.0, 20.0])
    after = assign_all(assigner, [40.0, 10.0, 20.0])
    moved = [(x, y) for x, y in zip(before, after, strict=True) if x != y]
    assert moved and all(x == 1 and y != 1 for x, y in moved)
    # The keys b lost are shared by a and c in proportion to their weights (2:1).
    to_a = sum(1 for _, y in moved if y == 0)
    assert binomtest(to_a, len(moved), 2 / 3).pvalue > ALPHA


def test_a_canary_ramp_only_moves_callers_into_the_canary() -> None:
    assigner = Assigner("exp", ["control", "canary"])
    base = {"control": 1.0, "canary": 1.0}
    previous = None
    for percent in (0.0, 5.0, 20.0, 50.0, 100.0):
        shares = canary_weights(base, "canary", percent)
        arms = assign_all(assigner, [shares["control"], shares["canary"]])
        in_canary = {i for i, arm in enumerate(arms) if arm == 1}
        if percent == 0:
            assert not in_canary
        else:
            assert binomtest(len(in_canary), len(KEYS), percent / 100).pvalue > ALPHA
        if previous is not None:
            assert previous <= in_canary  # nobody who was in the canary left it
        previous = in_canary


def test_canary_weights_share_the_rest_in_the_other_arms_proportions() -> None:
    shares = canary_weights({"a": 3.0, "b": 1.0, "canary": 7.0}, "canary", 20.0)
    assert shares == {"a": 60.0, "b": 20.0, "canary": 20.0}
