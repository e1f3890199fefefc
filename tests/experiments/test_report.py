"""`sluice experiments report` on seeded synthetic audit logs: it finds an injected effect, finds
none in A/A tests, flags a broken split, and its JSON and plot outputs are what the docs say."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest

from gateway.cli import main
from tests.experiments.synthetic import (
    Arm,
    experiment_records,
    feedback_record,
    request_record,
    write_log,
)

CONTROL = Arm("control")
SLOWER_AND_FLAKIER = Arm("treatment", latency_scale=1.2, error_rate=0.06)


def report(directory: Path, capsys: pytest.CaptureFixture[str], *argv: str) -> dict[str, Any]:
    """The JSON report, through the real command line."""
    code = main(["experiments", "report", "checkout", "--dir", str(directory), "--format", "json",
                 *argv])  # fmt: skip
    captured = capsys.readouterr()
    assert code == 0, captured.err
    parsed: dict[str, Any] = orjson.loads(captured.out)
    return parsed


def p_values(comparison: dict[str, Any]) -> dict[str, float]:
    return {
        "latency welch": comparison["latency_ms"]["tests"]["welch_t"]["p_value"],
        "latency mann-whitney": comparison["latency_ms"]["tests"]["mann_whitney_u"]["p_value"],
        "ttft mann-whitney": comparison["ttft_ms"]["tests"]["mann_whitney_u"]["p_value"],
        "error rate z": comparison["error_rate"]["tests"]["two_proportion_z"]["p_value"],
    }


def test_report_finds_slower_latency_and_higher_error_rate(tmp_path: Path, capsys) -> None:
    write_log(tmp_path, experiment_records(7, 6000, [CONTROL, SLOWER_AND_FLAKIER]))
    out = report(tmp_path, capsys, "--weights", "control=50,treatment=50")

    assert [arm["arm"] for arm in out["arms"]] == ["control", "treatment"]
    (comparison,) = out["comparisons"]
    assert comparison["arm"] == "treatment" and comparison["control"] == "control"
    assert all(p < 0.01 for p in p_values(comparison).values()), p_values(comparison)
    latency = comparison["latency_ms"]
    assert latency["value"] > 0 and 0.12 < latency["relative"] < 0.28
    assert latency["tests"]["mann_whitney_u"]["significant"] is True
    errors = comparison["error_rate"]
    low, high = errors["ci"]
    assert low < 0.04 < high  # the injected difference, 6% - 2%
    control, treatment = out["arms"]
    assert 0.01 < control["error_rate"]["value"] < 0.03 < 0.05 < treatment["error_rate"]["value"]
    # Percentiles move by the scale factor; their intervals hold the point estimate.
    for arm in out["arms"]:
        for q in ("p50", "p95", "p99"):
            estimate = arm["latency_ms"][q]
            assert estimate["ci"][0] <= estimate["value"] <= estimate["ci"][1]
    ratio = treatment["latency_ms"]["p50"]["value"] / control["latency_ms"]["p50"]["value"]
    assert 1.1 < ratio < 1.3
    assert out["sample_ratio"]["mismatch"] is False


def test_a_a_experiments_show_no_effect(tmp_path: Path, capsys) -> None:
    """Both arms drawn from one distribution, eight fixed seeds (so this cannot flake). No test
    comes near the p-values an effect gets (above), and p-values spread out over the seeds
    rather than piling up near 0: a report that finds effects in noise fails here."""
    found: dict[str, list[float]] = {}
    for seed in range(8):
        directory = tmp_path / f"seed-{seed}"
        directory.mkdir()
        write_log(directory, experiment_records(100 + seed, 1500, [CONTROL, Arm("treatment")]))
        out = report(directory, capsys)
        assert out["sample_ratio"]["weights_source"] == "equal"
        assert out["sample_ratio"]["mismatch"] is False
        for test, p in p_values(out["comparisons"][0]).items():
            found.setdefault(test, []).append(p)
    for test, ps in found.items():
        assert min(ps) > 0.001, (test, ps)
        # Under the null, 3 or more of 8 below 0.05 happens 0.6% of the time.
        assert sum(p < 0.05 for p in ps) <= 2, (test, ps)
        assert max(ps) > 0.3, (test, ps)


def test_sample_ratio_check_fires_on_a_broken_split(tmp_path: Path, capsys) -> None:
    assignment = ["control"] * 5500 + ["treatment"] * 4500
    write_log(tmp_path, experiment_records(3, 10_000, [CONTROL, Arm("treatment")], assignment))
    out = report(tmp_path, capsys, "--weights", "control=50,treatment=50")

    srm = out["sample_ratio"]
    assert srm["observed"] == {"control": 5500, "treatment": 4500}
    assert srm["expected"] == {"control": 5000.0, "treatment": 5000.0}
    assert srm["chi2"] == pytest.approx(100.0)
    assert srm["p_value"] < 1e-10 and srm["mismatch"] is True
    # The same split is what 55/45 weights promise: no mismatch then.
    assert (
        report(tmp_path, capsys, "--weights", "control=55,treatment=45")["sample_ratio"]["mismatch"]
        is False
    )
    assert main(["experiments", "report", "checkout", "--dir", str(tmp_path),
                 "--weights", "control=1,treatment=1"]) == 0  # fmt: skip
    assert "SAMPLE RATIO MISMATCH" in capsys.readouterr().out


def test_weights_come_from_the_policy_file(tmp_path: Path, capsys) -> None:
    assignment = ["control"] * 900 + ["treatment"] * 100
    logs = tmp_path / "audit"
    logs.mkdir()
    write_log(logs, experiment_records(4, 1000, [CONTROL, Arm("treatment")], assignment))
    policy = tmp_path / "policy.yaml"
    policy.write_text(
        "experiments:\n  checkout:\n    model: gpt-echo\n"
        "    arms:\n      - {name: control, weight: 90}\n      - {name: treatment, weight: 10}\n"
    )
    srm = report(logs, capsys, "--config", str(policy))["sample_ratio"]
    assert srm["weights"] == {"control": 90.0, "treatment": 10.0}
    assert srm["weights_source"] == "configured" and srm["mismatch"] is False
    # Equal weights assumed without a policy: 90/10 is then a glaring mismatch.
    assert report(logs, capsys)["sample_ratio"]["mismatch"] is True


def test_traffic_in_an_arm_without_weight_is_a_mismatch(tmp_path: Path, capsys) -> None:
    arms = [CONTROL, Arm("treatment"), Arm("stray", weight=0.01)]
    write_log(tmp_path, experiment_records(5, 3000, arms))
    srm = report(tmp_path, capsys, "--weights", "control=1,treatment=1")["sample_ratio"]
    assert srm["mismatch"] is True
    assert srm["problems"] and "stray" in srm["problems"][0]


def test_feedback_is_joined_to_arms_by_request_and_tenant(tmp_path: Path, capsys) -> None:
    records: list[dict[str, Any]] = []
    scores: dict[str, list[float]] = {"control": [], "treatment": []}
    for n in range(400):
        arm = "control" if n % 2 else "treatment"
        records.append(request_record(n, arm, 100.0 + n % 13))
        if n % 4 < 2:  # half the requests get feedback: treatment liked more
            score = (n % 3) * 0.25 + (0.5 if arm == "treatment" else 0.0)
            records.append(feedback_record(n, f"req-{n:07d}", score))
            scores[arm].append(score)
    records.append(feedback_record(900, "req-0000000", -1.0))  # corrects an earlier score
    scores["treatment"][0] = -1.0
    records.append(feedback_record(901, "req-0000002", -1.0, tenant="beta"))  # not its tenant
    records.append(feedback_record(902, "req-unknown", 1.0))  # names no request
    records.append(request_record(903, "control", 90.0, experiment="other"))
    write_log(tmp_path, records)
    out = report(tmp_path, capsys)

    control, treatment = out["arms"]
    for arm in (control, treatment):
        expected = scores[arm["arm"]]
        assert arm["feedback"]["n"] == len(expected) == 100
        assert arm["feedback"]["mean"]["value"] == pytest.approx(sum(expected) / 100)
    assert out["feedback"] == {"records": 203, "matched": 201}
    feedback = out["comparisons"][0]["feedback"]
    assert feedback["tests"]["welch_t"]["p_value"] < 0.01 and feedback["value"] > 0
    assert control["requests"] + treatment["requests"] == 400  # the "other" experiment is not


JSON_KEYS = {
    "version", "experiment", "window", "alpha", "control", "requests", "requests_without_arm",
    "arms", "comparisons", "sample_ratio", "feedback",
}  # fmt: skip
ARM_KEYS = {
    "arm", "backends", "requests", "share", "expected_share", "errors", "error_rate",
    "latency_ms", "ttft_ms", "tokens", "feedback", "shadow",
}  # fmt: skip


def test_json_output_has_the_documented_keys(tmp_path: Path, capsys) -> None:
    write_log(tmp_path, experiment_records(6, 600, [CONTROL, SLOWER_AND_FLAKIER]))
    out = report(tmp_path, capsys, "--since", "2026-11-25T12:01:00Z", "--until", "2026-11-26")

    assert set(out) == JSON_KEYS
    assert out["window"] == {"since": "2026-11-25T12:01:00Z", "until": "2026-11-26"}
    assert out["requests"] == 540  # one record a second from 12:00: the first minute is out
    for arm in out["arms"]:
        assert set(arm) == ARM_KEYS
        assert set(arm["latency_ms"]) == {"n", "mean", "p50", "p95", "p99"}
        assert set(arm["error_rate"]) == {"value", "ci"}
        assert arm["backends"] == {f"backend-{arm['arm']}": arm["requests"]}
    comparison = out["comparisons"][0]
    assert set(comparison) == {"arm", "control", "latency_ms", "ttft_ms", "error_rate", "feedback"}
    assert comparison["feedback"] is None  # no feedback in this log
    assert set(comparison["latency_ms"]) == {"value", "ci", "relative", "tests"}
    assert set(out["sample_ratio"]) == {
        "weights", "weights_source", "observed", "expected", "chi2", "p_value", "threshold",
        "mismatch", "problems",
    }  # fmt: skip


def test_text_output_and_plot(tmp_path: Path, capsys) -> None:
    logs = tmp_path / "audit"
    logs.mkdir()
    write_log(logs, experiment_records(8, 1000, [CONTROL, SLOWER_AND_FLAKIER]))
    plot = tmp_path / "latency.png"
    assert main(["experiments", "report", "checkout", "--dir", str(logs), "--plot", str(plot)]) == 0
    captured = capsys.readouterr()
    assert captured.out.startswith("Experiment checkout: 1,000 requests in 2 arms")
    assert "treatment vs control:" in captured.out
    assert "latency p99 ms" in captured.out and "sample ratio: ok" in captured.out
    assert plot.read_bytes().startswith(b"\x89PNG\r\n\x1a\n") and plot.stat().st_size > 10_000


def test_control_can_be_chosen(tmp_path: Path, capsys) -> None:
    write_log(tmp_path, experiment_records(9, 500, [CONTROL, SLOWER_AND_FLAKIER]))
    out = report(tmp_path, capsys, "--control", "treatment")
    assert out["control"] == "treatment"
    assert [c["arm"] for c in out["comparisons"]] == ["control"]
    assert out["comparisons"][0]["latency_ms"]["value"] < 0


@pytest.mark.parametrize(
    ("argv", "code", "message"),
    [
        (["nope"], 1, "no request records of experiment 'nope'"),
        (["checkout", "--weights", "control:50,treatment=50"], 2, "is not ARM=WEIGHT"),
        (["checkout", "--weights", "control=-1"], 2, "must be a finite number >= 0"),
        (["checkout", "--control", "nobody"], 2, "--control 'nobody' is not an arm"),
        (["checkout", "--since", "yesterday"], 2, "neither an RFC 3339 time"),
        (["checkout", "--alpha", "2"], 2, "--alpha must be between 0 and 1"),
        (["checkout", "--config", "/nonexistent/policy.yaml"], 2, "cannot read"),
        (["checkout", "--plot", "/nonexistent/dir/x.png"], 2, "is not a directory"),
    ],
)
def test_usage_errors_say_what_to_fix(
    tmp_path: Path, capsys, argv: list[str], code: int, message: str
) -> None:
    write_log(tmp_path, experiment_records(10, 50, [CONTROL, Arm("treatment")]))
    assert main(["experiments", "report", *argv, "--dir", str(tmp_path)]) == code
    err = capsys.readouterr().err
    assert message in err, err
    if argv == ["nope"]:
        assert "experiments with records: checkout" in err


def test_missing_directory_and_damaged_log(tmp_path: Path, capsys) -> None:
    assert main(["experiments", "report", "x", "--dir", str(tmp_path / "absent")]) == 2
    assert "no audit directory" in capsys.readouterr().err
    write_log(tmp_path, experiment_records(11, 20, [CONTROL]))
    segment = next(tmp_path.iterdir())
    segment.write_bytes(segment.read_bytes() + b"not json\n")
    assert main(["experiments", "report", "checkout", "--dir", str(tmp_path)]) == 1
    assert "sluice audit verify" in capsys.readouterr().err
