"""The HTML report's charts read as a person reads them: both axes labelled, whole-number gridlines for counts."""

from __future__ import annotations

import re

import pytest

from connector.ops.report_html import bar_chart, line_chart


@pytest.mark.parametrize(("most", "ticks"), [
    (22, ["0", "6", "12", "18", "24"]),
    (6, ["0", "2", "4", "6", "8"]),
    (1, ["0", "1", "2", "3", "4"]),
    (350, ["0", "100", "200", "300", "400"]),
])
def test_count_axes_have_whole_round_gridlines_and_both_labels(most: int, ticks: list[str]) -> None:
    chart = bar_chart("c", [("leads", "leads")], ["0–10", "10–20"], [[most, 0]], y_label="leads", x_label="score (points)")
    assert re.findall(r'text-anchor="end" fill="#6b7280">([^<]+)</text>', chart) == ticks
    assert '>leads</text>' in chart and 'class="x-axis-label"' in chart and ">score (points)</text>" in chart


def test_the_speed_line_names_its_days() -> None:
    chart = line_chart("s", ["2026-12-05"], [20.0], y_label="median minutes to owner", x_label="day the lead was routed (UTC)")
    assert ">day the lead was routed (UTC)</text>" in chart and ">median minutes to owner</text>" in chart


def test_waiting_leads_by_cause_is_a_chart_next_to_its_table() -> None:
    from connector.ops.report_html import render_html

    waiting = {"as_of": "2026-12-08T15:00:00+00:00", "leads": 7, "by_cause": {"at_capacity": 5, "outside_hours": 2},
               "oldest_since": "2026-12-08T15:00:00+00:00", "oldest_lead": "hubspot:1",
               "next_available_at": "2026-12-08T16:00:00+00:00", "next_available_rep": "ava.sales@example-corp.test", "due": 0}
    section = render_html({"generated_at": "2026-12-08T15:00:00+00:00", "decisions": 0, "scores": {"leads": 0}, "fairness": [],
                           "sla": {"days": [], "sla_minutes": None, "past_due_now": 0}, "dead_letters": {"total": 0, "open": 0, "by_reason": []},
                           "experiments": [], "waiting": waiting}).split('id="waiting"')[1]
    chart = section.split('<svg id="chart-waiting"')[1].split("</svg>")[0]
    assert "Waiting leads by cause</figcaption>" in section and 'id="table-waiting"' in section.split("</svg>")[1]
    assert '>leads</text>' in chart and 'class="x-axis-label"' in chart and ">cause</text>" in chart
    assert re.findall(r'text-anchor="end" fill="#6b7280">([^<]+)</text>', chart) == ["0", "2", "4", "6", "8"]
    bars = re.findall(r'data-label="([^"]+)" data-value="([^"]+)"', chart)
    assert bars == [("at capacity", "5"), ("outside working hours", "2")]
