"""Routing experiments: a deterministic split of leads between two arms and the conversion report per arm."""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

Arm = Literal["control", "treatment"]
ARMS: tuple[Arm, ...] = ("control", "treatment")
# Below this many leads in an arm, or fewer than this many conversions / non-conversions expected,
# the normal approximation behind the z-test is poor; the report says "not enough data" instead.
MIN_LEADS_PER_ARM = 30
MIN_EXPECTED_COUNT = 5


def bucket(experiment: str, lead_key: str) -> float:
    """A stable number in [0, 1) for a lead in an experiment (sha256: same on every machine and run).

    Python's hash() is salted per process, so it would move leads between arms on restart.
    """
    digest = hashlib.sha256(f"{experiment}\x00{lead_key}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2.0**64


def assign_arm(experiment: str, lead_key: str, treatment_share: float) -> Arm:
    """The lead's arm: `treatment` for a `treatment_share` fraction of leads, `control` for the rest."""
    return "treatment" if bucket(experiment, lead_key) < treatment_share else "control"


def two_proportion_p_value(conv_a: int, n_a: int, conv_b: int, n_b: int) -> float:
    """Two-sided p-value of the pooled two-proportion z-test (1.0 when it cannot be computed)."""
    if n_a <= 0 or n_b <= 0:
        return 1.0
    pooled = (conv_a + conv_b) / (n_a + n_b)
    se = math.sqrt(pooled * (1 - pooled) * (1 / n_a + 1 / n_b))
    if se == 0:
        return 1.0
    z = (conv_a / n_a - conv_b / n_b) / se
    return math.erfc(abs(z) / math.sqrt(2))


@dataclass(frozen=True, slots=True)
class ArmStats:
    arm: str
    strategy: str
    leads: int
    conversions: int

    @property
    def rate(self) -> float:
        return self.conversions / self.leads if self.leads else 0.0


@dataclass(frozen=True, slots=True)
class ExperimentReport:
    experiment: str
    arms: tuple[ArmStats, ArmStats]
    p_value: float
    significant: bool
    verdict: str


def experiment_report(
    experiment: str,
    outcomes: Iterable[tuple[str, bool]],
    strategies: Sequence[str] = ("control", "treatment"),
    alpha: float = 0.05,
) -> ExperimentReport:
    """Leads, conversions and rate per arm from (arm, converted) pairs, with a z-test and a plain verdict.

    `arm` values are the decision's arm (`"<experiment>:control"`) or the bare arm name; other
    experiments' arms are ignored. `strategies` names the strategy behind each arm for the verdict.
    """
    leads = {"control": 0, "treatment": 0}
    conversions = {"control": 0, "treatment": 0}
    for arm, converted in outcomes:
        name = arm.split(":", 1)[1] if ":" in arm else arm
        if ":" in arm and arm.split(":", 1)[0] != experiment:
            continue
        if name not in leads:
            continue
        leads[name] += 1
        conversions[name] += int(converted)
    control = ArmStats("control", strategies[0], leads["control"], conversions["control"])
    treatment = ArmStats("treatment", strategies[1], leads["treatment"], conversions["treatment"])
    p = two_proportion_p_value(treatment.conversions, treatment.leads, control.conversions, control.leads)
    total = control.leads + treatment.leads
    pooled = (control.conversions + treatment.conversions) / total if total else 0.0
    expected_min = min(min(a.leads for a in (control, treatment)) * pooled, min(a.leads for a in (control, treatment)) * (1 - pooled))
    rates = f"{treatment.strategy} {treatment.rate:.1%} of {treatment.leads} vs {control.strategy} {control.rate:.1%} of {control.leads}"
    if min(control.leads, treatment.leads) < MIN_LEADS_PER_ARM or expected_min < MIN_EXPECTED_COUNT:
        return ExperimentReport(experiment, (control, treatment), p, False, f"not enough data yet ({rates}); keep the experiment running")
    if p < alpha:
        better = treatment if treatment.rate > control.rate else control
        worse = control if better is treatment else treatment
        verdict = f"{better.strategy} converts better than {worse.strategy} ({rates}, p = {p:.3g})"
        return ExperimentReport(experiment, (control, treatment), p, True, verdict)
    verdict = f"no significant difference ({rates}, p = {p:.3g} ≥ {alpha})"
    return ExperimentReport(experiment, (control, treatment), p, False, verdict)
