"""experiments: a stable sha256 split, the two-proportion z-test and the plain-words verdict."""

from __future__ import annotations

import pytest

from connector.engine.routing.experiments import assign_arm, bucket, experiment_report, two_proportion_p_value


def test_split_is_stable_and_close_to_the_share() -> None:
    assert bucket("e", "hubspot:contacts:1") == bucket("e", "hubspot:contacts:1")
    assert bucket("e", "hubspot:contacts:1") != bucket("f", "hubspot:contacts:1")
    arms = [assign_arm("e", f"hubspot:contacts:{i}", 0.3) for i in range(5000)]
    assert 0.27 < arms.count("treatment") / len(arms) < 0.33
    # sha256 of "e\x00hubspot:contacts:1": the same on every machine and in every process (unlike hash()).
    assert bucket("e", "hubspot:contacts:1") == pytest.approx(0.426561924565)


@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [
        ((50, 500), (50, 500), 1.0),
        ((60, 500), (40, 500), 0.0350),  # pooled 0.1, z = 0.04 / 0.018974 = 2.108
        ((0, 0), (10, 100), 1.0),
        ((0, 100), (0, 100), 1.0),
    ],
)
def test_two_proportion_p_value(a: tuple[int, int], b: tuple[int, int], expected: float) -> None:
    assert two_proportion_p_value(*a, *b) == pytest.approx(expected, abs=5e-4)


def test_report_verdicts() -> None:
    outcomes = [("ll:treatment", i < 90) for i in range(400)] + [("ll:control", i < 50) for i in range(400)] + [("other:control", True)]
    report = experiment_report("ll", outcomes, ("round_robin", "least_loaded"))
    control, treatment = report.arms
    assert (control.leads, control.conversions, treatment.leads, treatment.conversions) == (400, 50, 400, 90)
    assert treatment.rate == pytest.approx(0.225)
    assert report.significant and report.p_value < 0.001
    assert report.verdict.startswith("least_loaded converts better than round_robin")
    flat = experiment_report("ll", [("control", i % 10 == 0) for i in range(300)] + [("treatment", i % 10 == 1) for i in range(300)])
    assert not flat.significant and flat.verdict.startswith("no significant difference")
    small = experiment_report("ll", [("control", True), ("treatment", False)])
    assert small.verdict.startswith("not enough data yet")
