"""`connector report`: the figures from the decision log, the HTML page rendered in headless Chromium, experiment verdicts."""

from __future__ import annotations

import re
import shutil
import subprocess
from datetime import timedelta
from pathlib import Path

import pytest

from connector.core.clock import SystemClock
from connector.ops.insights import collect_report
from connector.state.store import DecisionRecord

from .conftest import Ops

CHROMIUM = "/usr/bin/chromium"
EXPERIMENT = "us-west-least-loaded"


def test_report_figures_follow_the_decision_log(ops_any_store: Ops) -> None:
    ops = ops_any_store
    ops.hubspot.fail_write_ids[ops.ids()[0]] = ("VALIDATION_ERROR", "Property values were not valid")
    ops.run("sync", "--once")
    with ops.store() as store:
        data = collect_report(ops.settings(), store, SystemClock().now())
        routes = store.list_decisions(kinds=["route"])
    scores = data["scores"]
    assert scores["leads"] == len({d.lead_key for d in routes}) == len(ops.ids())
    assert sum(h["leads"] for h in scores["histogram"]) == scores["leads"] == sum(scores["grades"].values())
    assert [b["grade"] for b in scores["bands"]] == ["hot", "warm", "cold"]
    fairness = {r["rep"]: r for r in data["fairness"]}
    # "Leads routed" counts new owners only: a first decision that kept the lead's owner is logged, not counted.
    new_owners = [d for d in routes if d.explanation["routing"]["kind"] != "kept"]
    assert sum(r["leads"] for r in fairness.values()) == sum(1 for d in new_owners if d.rep) < len(routes)
    assert fairness["ava.sales@example-corp.test"]["weight"] == 2 and fairness["ava.sales@example-corp.test"]["max_open_leads"] == 60
    assert sum(d["routed"] for d in data["sla"]["days"]) == sum(1 for d in new_owners if d.owner_id)
    assert data["sla"]["sla_minutes"] == 120
    assert data["dead_letters"]["by_reason"] == [{"reason": "VALIDATION_ERROR", "total": 1, "open": 1, "retrying": 0, "resolved": 0, "discarded": 0}]
    assert [e["experiment"] for e in data["experiments"]] == [EXPERIMENT]


CONVERTED = {"salesqualifiedlead", "opportunity", "customer", "evangelist"}  # [reports] converted_stages default


def _converted(ops: Ops, arm: int) -> int:
    ids = [rid for n, rid in enumerate(ops.ids()) if n % 2 == arm]
    return sum(1 for rid in ids if (ops.hubspot.get_record("contacts", rid) or {}).get("lifecyclestage") in CONVERTED)


def _split_experiment(ops: Ops, converted_treatment: int, converted_control: int) -> None:
    """Half of the sandbox's leads in each arm; some of each later reach a converted lifecycle stage."""
    now = SystemClock().now()
    ids = ops.ids()
    with ops.store() as store:
        for n, rid in enumerate(ids):
            arm = "treatment" if n % 2 else "control"
            store.record_decision(DecisionRecord(
                lead_key=f"hubspot:contacts:{rid}", kind="route", owner_id="70000001", rep="ava.sales@example-corp.test",
                rule="us-west", pool="smb", arm=f"{EXPERIMENT}:{arm}", score=50.0, grade="warm", model="core",
                explanation={"lead_created_at": (now - timedelta(minutes=5 + n)).isoformat()}, created_at=now,
            ))
    treatment = [rid for n, rid in enumerate(ids) if n % 2][:converted_treatment]
    control = [rid for n, rid in enumerate(ids) if not n % 2][:converted_control]
    for rid in treatment + control:
        ops.hubspot.person_update("contacts", rid, {"lifecyclestage": "salesqualifiedlead"})


def test_report_experiments_reads_conversions_back_and_gives_a_verdict(ops: Ops) -> None:
    _split_experiment(ops, converted_treatment=20, converted_control=3)
    [exp] = ops.json("report", "experiments")["experiments"]
    arms = {a["arm"]: a for a in exp["arms"]}
    treated, control = _converted(ops, 1), _converted(ops, 0)  # the seed data has a few customers already
    assert treated >= 20 and control < 10
    assert arms["treatment"]["leads"] == 30 and arms["treatment"]["conversions"] == treated and arms["treatment"]["strategy"] == "least_loaded"
    assert arms["control"]["leads"] == 30 and arms["control"]["conversions"] == control and arms["control"]["strategy"] == "round_robin"
    assert exp["p_value"] < 0.001 and exp["significant"] is True
    assert exp["verdict"].startswith("least_loaded converts better than round_robin")
    text = ops.run("report", "experiments").stdout
    assert "least_loaded converts better" in text and f"{treated / 30:.1%}" in text and f"{control / 30:.1%}" in text
    offline = ops.json("report", "experiments", "--offline")["experiments"][0]
    assert offline["p_value"] is None and all(a["conversions"] is None for a in offline["arms"])


def test_report_without_experiment_data_says_so(ops: Ops) -> None:
    [exp] = ops.json("report", "experiments")["experiments"]
    assert exp["significant"] is False and exp["verdict"].startswith("not enough data yet")


@pytest.mark.skipif(not Path(CHROMIUM).exists(), reason=f"{CHROMIUM} is absent (Debian package `chromium`; .ci/run installs it)")
def test_html_report_renders_in_headless_chromium(ops: Ops, tmp_path: Path) -> None:
    ops.hubspot.fail_write_ids[ops.ids()[0]] = ("VALIDATION_ERROR", "Property values were not valid")
    ops.run("sync", "--once")
    _split_experiment(ops, converted_treatment=12, converted_control=4)
    page = tmp_path / "report.html"
    out = ops.run("report", "--out", str(page)).stdout
    assert out.startswith(f"report written to {page}")
    html = page.read_text(encoding="utf-8")
    # Self-contained: no scripts, stylesheets, images or fonts from anywhere.
    assert not re.search(r"\b(src|href)\s*=", html) and "<script" not in html and "@import" not in html and "url(" not in html

    chrome = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
              "--no-first-run", f"--user-data-dir={tmp_path / 'profile'}"]
    dom = subprocess.run([*chrome, "--dump-dom", page.as_uri()], capture_output=True, text=True, timeout=60, check=True).stdout
    for chart in ("chart-scores", "chart-fairness", "chart-sla", "chart-speed", "chart-dead-letters", "chart-experiment-0"):
        assert f'id="{chart}"' in dom, chart
    assert dom.count('class="bar bar-leads"') >= 5  # score bins and leads per rep
    for label in ("Score distribution and grade bands", "Ava Anders", "expected by weight", "SLA breaches",
                  "VALIDATION_ERROR", EXPERIMENT, "least_loaded", "hot (≥ 60)"):
        assert label in dom, label
    treated = _converted(ops, 1)
    assert re.search(rf'id="table-experiment-0".*?<td>treatment</td><td>least_loaded</td><td>30</td><td>{treated}</td><td>{treated / 30:.1%}</td>', dom, re.S)
    shot = tmp_path / "report.png"
    subprocess.run([*chrome, "--window-size=1000,2600", f"--screenshot={shot}", page.as_uri()],
                   capture_output=True, timeout=60, check=True, cwd=tmp_path)
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 20_000
    keep = Path("/tmp/ops-report-screenshot.png")
    if keep.parent.exists():
        shutil.copy(shot, keep)  # for a person to look at after the run
