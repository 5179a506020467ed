"""The self-contained HTML report: inline SVG charts of the report figures, no scripts, fonts or network."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from html import escape
from typing import Any

from connector.ops.words import time_words
from connector.core.models import wait_cause_words

PALETTE = ("#2563eb", "#f59e0b", "#10b981", "#ef4444", "#8b5cf6", "#0ea5e9", "#84cc16", "#f97316")
GRADE_COLOURS = ("#dc2626", "#f59e0b", "#3b82f6", "#6b7280", "#9ca3af", "#d1d5db")
_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:24px auto;max-width:980px;color:#111827;background:#fff}
h1{font-size:24px;margin:0 0 4px} h2{font-size:18px;margin:28px 0 6px;border-bottom:1px solid #e5e7eb;padding-bottom:4px}
.meta{color:#6b7280;font-size:13px} .note{color:#4b5563;font-size:13px;margin:4px 0 8px}
table{border-collapse:collapse;font-size:13px;margin-top:8px} td,th{border:1px solid #e5e7eb;padding:3px 8px;text-align:right}
th{background:#f9fafb} td:first-child,th:first-child{text-align:left}
.legend span{display:inline-block;margin-right:14px;font-size:13px} .legend i{display:inline-block;width:11px;height:11px;margin-right:4px;vertical-align:-1px}
.pair{display:flex;gap:24px;align-items:flex-start;flex-wrap:wrap} figure{margin:0} figcaption{font-size:13px;font-weight:600}
.verdict{font-weight:600} .empty{color:#6b7280;font-style:italic}
svg text{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif}
"""


def _num(value: float) -> str:
    return f"{value:g}" if abs(value) < 1e6 else f"{value:.3g}"


def _nice_max(value: float) -> float:
    """A round top for the y axis whose four grid steps are round too: 22 leads → 24 (6, 12, 18, 24), 240 h → 240.

    Charts count leads, so a step is never a fraction once the values reach 1 (no "6.25 leads" gridline).
    """
    if value <= 0:
        return 4.0
    quarter = value / 4
    magnitude = 10 ** math.floor(math.log10(quarter))
    step = next(m * magnitude for m in (1, 2, 3, 4, 5, 6, 8, 10) if quarter <= m * magnitude)
    if value >= 1:
        step = max(1.0, math.ceil(step))
    return float(step * 4)


def _chart_frame(chart_id: str, y_label: str, width: int, height: int, top_value: float, box: tuple[int, int, int, int]) -> list[str]:
    """The opening of a chart's SVG: five grid lines with their y values, and the rotated y-axis label."""
    left, right, top, plot_h = box
    parts = [f'<svg id="{chart_id}" class="chart" role="img" aria-label="{escape(y_label)}" viewBox="0 0 {width} {height}" '
             f'width="{width}" height="{height}" xmlns="http://www.w3.org/2000/svg">']
    for i in range(5):
        y = top + plot_h - plot_h * i / 4
        parts.append(f'<line x1="{left}" y1="{y:.1f}" x2="{width - right}" y2="{y:.1f}" stroke="#e5e7eb"/>')
        parts.append(f'<text x="{left - 6}" y="{y + 4:.1f}" font-size="11" text-anchor="end" fill="#6b7280">{_num(top_value * i / 4)}</text>')
    parts.append(f'<text x="14" y="{top + plot_h / 2:.0f}" font-size="11" fill="#374151" transform="rotate(-90 14 {top + plot_h / 2:.0f})" '
                 f'text-anchor="middle">{escape(y_label)}</text>')
    return parts


def bar_chart(
    chart_id: str, series: Sequence[tuple[str, str]], labels: Sequence[str], values: Sequence[Sequence[float | None]],
    *, y_label: str, colours: Sequence[str] | None = None, bar_colours: Sequence[str] | None = None,
    width: int = 920, height: int = 280, y_floor: float = 0.0, x_label: str = "",
) -> str:
    """Grouped vertical bars: one group per label, one bar per series (values[series][label]); an SVG element.

    `y_floor`: the least top of the y axis (a percentage chart reads 0–10 %, not 0–1, when every rate is small).
    `x_label`: what the groups are (with its unit), written under the axis.
    """
    left, right, top, bottom = 56, 12, 16, 64
    plot_w, plot_h = width - left - right, height - top - bottom
    top_value = max(y_floor, _nice_max(max((v for row in values for v in row if v is not None), default=0.0)))
    parts = _chart_frame(chart_id, y_label, width, height, top_value, (left, right, top, plot_h))
    groups = max(1, len(labels))
    group_w = plot_w / groups
    bar_w = max(2.0, min(48.0, group_w * 0.8 / max(1, len(series))))
    colours = colours or PALETTE
    for g, label in enumerate(labels):
        x0 = left + g * group_w + (group_w - bar_w * len(series)) / 2
        for s, (key, name) in enumerate(series):
            value = values[s][g]
            if value is None:
                continue
            h = plot_h * value / top_value
            fill = bar_colours[g] if bar_colours is not None and len(series) == 1 else colours[s % len(colours)]
            parts.append(
                f'<rect class="bar bar-{escape(key)}" data-label="{escape(label)}" data-value="{_num(value)}" x="{x0 + s * bar_w:.1f}" '
                f'y="{top + plot_h - h:.1f}" width="{bar_w - 1:.1f}" height="{h:.1f}" fill="{fill}"><title>{escape(name)} {escape(label)}: {_num(value)}</title></rect>'
            )
        cx = left + g * group_w + group_w / 2
        rotate = f' transform="rotate(-30 {cx:.1f} {top + plot_h + 14})"' if groups > 8 else ""
        parts.append(f'<text class="axis-label" x="{cx:.1f}" y="{top + plot_h + 14}" font-size="11" text-anchor="{"end" if rotate else "middle"}" '
                     f'fill="#374151"{rotate}>{escape(label)}</text>')
    parts.append(f'<line x1="{left}" y1="{top + plot_h}" x2="{width - right}" y2="{top + plot_h}" stroke="#9ca3af"/>')
    parts.append(_x_label(x_label, left + plot_w / 2, height - 4))
    parts.append("</svg>")
    return "".join(parts)


def _x_label(text: str, x: float, y: float) -> str:
    if not text:
        return ""
    return f'<text class="x-axis-label" x="{x:.0f}" y="{y:.0f}" font-size="11" text-anchor="middle" fill="#374151">{escape(text)}</text>'


def line_chart(
    chart_id: str, labels: Sequence[str], values: Sequence[float | None], *, y_label: str, width: int = 920, height: int = 220, x_label: str = "",
) -> str:
    """One line with dots (gaps where a value is None); an SVG element."""
    left, right, top, bottom = 56, 12, 16, 48
    plot_w, plot_h = width - left - right, height - top - bottom
    top_value = _nice_max(max((v for v in values if v is not None), default=0.0))
    parts = _chart_frame(chart_id, y_label, width, height, top_value, (left, right, top, plot_h))
    step = plot_w / max(1, len(labels))
    points: list[tuple[float, float] | None] = []
    for i, (label, value) in enumerate(zip(labels, values, strict=True)):
        x = left + step * i + step / 2
        parts.append(f'<text class="axis-label" x="{x:.1f}" y="{top + plot_h + 14}" font-size="11" text-anchor="middle" fill="#374151">{escape(label)}</text>')
        if value is None:
            points.append(None)
            continue
        y = top + plot_h - plot_h * value / top_value
        points.append((x, y))
        parts.append(f'<circle class="point" cx="{x:.1f}" cy="{y:.1f}" r="3.5" fill="#7c3aed"><title>{escape(label)}: {_num(value)}</title></circle>')
    run: list[str] = []
    for p in [*points, None]:
        if p is None:
            if len(run) > 1:
                parts.append(f'<polyline points="{" ".join(run)}" fill="none" stroke="#7c3aed" stroke-width="2"/>')
            run = []
        else:
            run.append(f"{p[0]:.1f},{p[1]:.1f}")
    parts.append(f'<line x1="{left}" y1="{top + plot_h}" x2="{width - right}" y2="{top + plot_h}" stroke="#9ca3af"/>')
    parts.append(_x_label(x_label, left + plot_w / 2, height - 4))
    parts.append("</svg>")
    return "".join(parts)


def _legend(items: Sequence[tuple[str, str]]) -> str:
    return '<div class="legend">' + "".join(f'<span><i style="background:{c}"></i>{escape(n)}</span>' for n, c in items) + "</div>"


def _table(headers: Sequence[str], rows: Sequence[Sequence[Any]], table_id: str) -> str:
    head = "".join(f"<th>{escape(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{escape('' if v is None else str(v))}</td>" for v in row) + "</tr>" for row in rows)
    return f'<table id="{table_id}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def _grade_of(value: float, bands: Sequence[Mapping[str, Any]]) -> int:
    for i, band in enumerate(bands):
        if band["min"] is None or value >= band["min"]:
            return i
    return len(bands) - 1


def _words(counts: Mapping[str, int] | None) -> str:
    return ", ".join(f"{k.replace('_', ' ')} {n}" for k, n in (counts or {}).items() if n) or "none"


def _last_run_section(run: Mapping[str, Any] | None) -> str:
    """The newest run's figures, as its summary said them (`sync --json` has the same numbers)."""
    head = '<h2 id="last-run">Last run</h2>'
    if not run:
        return head + '<p class="empty">No run yet.</p>'
    if run.get("leads") is None:
        return head + f'<p class="note">{escape(run["kind"])}: fetched {run["fetched"]}, written {run["written"]}.</p>'
    decisions = run.get("decisions") or {}
    rows = [
        ["leads (each counted once)", run["leads"]],
        ["decided", _words(decisions)],
        ["routed (a new owner)", f'{run["routed"]} ({_words(run.get("routed_by"))})'],
        ["waiting", run["waiting"]],
        ["grades", _words(run.get("grades"))],
        ["new leads per rep", _words(run.get("leads_per_rep"))],
        ["written", run["written"]],
        ["unchanged", run["unchanged"]],
    ]
    return head + f'<p class="note">The newest {escape(run["kind"])}, as its summary reported it.</p>' + _table(["figure", "value"], rows, "table-last-run")


def _scores_section(scores: Mapping[str, Any]) -> str:
    if not scores["leads"]:
        return '<h2 id="scores">Score distribution and grade bands</h2><p class="empty">No scored leads yet.</p>'
    bands = scores["bands"]
    labels = [f"{h['from']}–{h['to']}" for h in scores["histogram"]]
    colours = [GRADE_COLOURS[_grade_of(h["from"], bands) % len(GRADE_COLOURS)] for h in scores["histogram"]]
    chart = bar_chart("chart-scores", [("leads", "leads")], labels, [[h["leads"] for h in scores["histogram"]]],
                      y_label="leads", bar_colours=colours, x_label="score (points)")
    legend = _legend([
        (f"{b['grade']} ({'≥ ' + _num(b['min']) if b['min'] is not None else 'below'}): {scores['grades'].get(b['grade'], 0)} leads",
         GRADE_COLOURS[i % len(GRADE_COLOURS)])
        for i, b in enumerate(bands)
    ])
    return (f'<h2 id="scores">Score distribution and grade bands</h2><p class="note">Each routed lead\'s latest score '
            f'({scores["leads"]} leads in the decision log), bars coloured by grade band.</p>{legend}{chart}')


def _fairness_section(rows: Sequence[Mapping[str, Any]]) -> str:
    if not rows:
        return '<h2 id="fairness">Leads per rep</h2><p class="empty">No reps configured.</p>'
    labels = [r["name"] or r["rep"].split("@")[0] for r in rows]
    chart = bar_chart("chart-fairness", [("leads", "leads routed"), ("expected", "expected by weight")], labels,
                      [[r["leads"] for r in rows], [r["expected"] for r in rows]], y_label="leads", colours=("#2563eb", "#cbd5e1"), x_label="rep")
    table = _table(
        ["rep", "active", "weight", "leads routed", "expected by weight", "reassigned to (SLA)", "open now", "max open", "max per day"],
        [[r["rep"], "yes" if r["active"] else "no", r["weight"], r["leads"], r["expected"], r.get("reassigned_to", 0), r["open_now"],
          r["max_open_leads"] if r["max_open_leads"] is not None else "—", r["max_leads_per_day"] if r["max_leads_per_day"] is not None else "—"]
         for r in rows],
        "table-fairness",
    )
    return ('<h2 id="fairness">Leads per rep vs weight and capacity</h2><p class="note">New leads routed to each rep '
            '(the runs\' "leads per rep", summed over every run), against the share their round-robin weight would give; '
            'SLA reassignments and capacity caps in the table. Active: as resolved against the CRMs.</p>'
            + _legend([("leads routed", "#2563eb"), ("expected by weight", "#cbd5e1")]) + chart + table)


def _sla_section(sla: Mapping[str, Any]) -> str:
    days = sla["days"]
    head = '<h2 id="sla">Speed-to-lead and SLA breaches over time</h2>'
    minutes = f"{sla['sla_minutes']} min" if sla["sla_minutes"] else "not configured"
    note = f'<p class="note">SLA: {escape(minutes)}; leads past their SLA right now: <b id="past-due">{sla["past_due_now"]}</b>.</p>'
    if not days:
        return head + note + '<p class="empty">No routing decisions yet.</p>'
    labels = [d["day"] for d in days]
    bars = bar_chart("chart-sla", [("routed", "leads routed"), ("breaches", "SLA breaches (reassigned)")], labels,
                     [[d["routed"] for d in days], [d["sla_breaches"] for d in days]], y_label="leads per day", colours=("#10b981", "#ef4444"), x_label="day (UTC)")
    medians: list[float | None] = [d["median_minutes_to_route"] for d in days]
    in_hours = max((m for m in medians if m is not None), default=0.0) > 180
    unit, per = ("hours", 60.0) if in_hours else ("minutes", 1.0)
    line = line_chart("chart-speed", labels, [None if m is None else round(m / per, 1) for m in medians], y_label=f"median {unit} to owner",
                      x_label="day the lead was routed (UTC)")
    return (head + note + _legend([("leads routed", "#10b981"), ("SLA breaches (reassigned)", "#ef4444")]) + bars
            + f'<p class="note">Median {unit} from lead creation to an owner. Backfills are left out: leads routed while a '
            'backfill ran, and leads created over 30 days before they were routed.</p>'
            + line)


def _dead_letter_section(dead: Mapping[str, Any]) -> str:
    head = f'<h2 id="dead-letters">Dead letters by reason</h2><p class="note">{dead["total"]} in total, {dead["open"]} open (`connector errors list`).</p>'
    if not dead["by_reason"]:
        return head + '<p class="empty">No dead letters.</p>'
    labels = [r["reason"] for r in dead["by_reason"]]
    chart = bar_chart("chart-dead-letters", [("open", "open"), ("resolved", "resolved"), ("discarded", "discarded")], labels,
                      [[r["open"] + r["retrying"] for r in dead["by_reason"]], [r["resolved"] for r in dead["by_reason"]],
                       [r["discarded"] for r in dead["by_reason"]]], y_label="dead letters", colours=("#ef4444", "#10b981", "#9ca3af"), x_label="reason")
    return head + _legend([("open", "#ef4444"), ("resolved", "#10b981"), ("discarded", "#9ca3af")]) + chart


def _experiments_section(experiments: Sequence[Mapping[str, Any]]) -> str:
    head = '<h2 id="experiments">Experiments</h2>'
    if not experiments:
        return head + '<p class="empty">No routing experiments configured.</p>'
    out = [head]
    for i, e in enumerate(experiments):
        arms = e["arms"]
        labels = [f"{a['arm']} ({a['strategy']})" for a in arms]
        known = all(a["rate"] is not None for a in arms)
        chart = bar_chart(f"chart-experiment-{i}", [("rate", "conversion rate %")], labels,
                          [[a["rate"] * 100 if known else None for a in arms]], y_label="conversion rate %",
                          colours=("#8b5cf6",), width=520, height=220, y_floor=10.0, x_label="arm (strategy)")
        table = _table(["arm", "strategy", "leads", "conversions", "rate"],
                       [[a["arm"], a["strategy"], a["leads"], a["conversions"], f"{a['rate']:.1%}" if a["rate"] is not None else "unknown"] for a in arms],
                       f"table-experiment-{i}")
        p = f"p = {e['p_value']:.3g}" if e["p_value"] is not None else "p-value unknown"
        out.append(f'<h3>{escape(e["experiment"])} <small class="meta">(rule {escape(e["rule"])}, {p})</small></h3>'
                   f'<p class="verdict">{escape(e["verdict"])}</p>{chart}{table}')
    return "".join(out)


def _waiting_section(waiting: Mapping[str, Any] | None) -> str:
    head = '<h2 id="waiting">Waiting leads</h2>'
    if not waiting or not waiting["leads"]:
        return head + '<p class="empty">No lead is waiting for an available rep.</p>'
    oldest = (f'oldest waiting since <b id="waiting-oldest">{escape(time_words(waiting["oldest_since"]))}</b> ({escape(waiting["oldest_lead"])})'
              if waiting["oldest_since"] else "no wait recorded with its start")
    if waiting["next_available_at"]:
        nxt = (f'next available: <b id="waiting-next">{escape(time_words(waiting["next_available_at"]))}</b> '
               f'({escape(waiting["next_available_rep"] or "")}); {waiting["due"]} due by now')
    else:
        nxt = "next available: unknown (open-lead caps free up as leads close)"
    note = (f'<p class="note">Leads nobody in their pool can take right now (routing.when_unavailable = "wait"): '
            f'<b id="waiting-count">{waiting["leads"]}</b>; {oldest}; {nxt}. The next sync after that routes them.</p>')
    causes = [wait_cause_words(c) for c in waiting["by_cause"]]
    counts = list(waiting["by_cause"].values())
    chart = bar_chart("chart-waiting", [("leads", "waiting leads")], causes, [counts], y_label="leads", colours=("#f59e0b",),
                      width=460, height=220, x_label="cause")
    table = _table(["why", "leads"], [[c, n] for c, n in zip(causes, counts, strict=True)], "table-waiting")
    return head + note + f'<div class="pair"><figure><figcaption>Waiting leads by cause</figcaption>{chart}</figure>{table}</div>'


def _notifications_section(figures: Mapping[str, Any] | None) -> str:
    """Time from routing to notification sent per channel (p50 / p95 / max), and what is pending or failed."""
    head = '<h2 id="notifications">Notifications (speed to lead)</h2>'
    if not figures or not (figures["sent"] or figures["pending"] or figures["failed"]):
        return head + '<p class="empty">No notification queued yet ([notifications] enabled = false, or nothing routed since).</p>'
    failed = "; ".join(f"{c} {n}" for c, n in figures["failed_by_channel"].items())
    note = (f'<p class="note">Sent <b id="notifications-sent">{figures["sent"]}</b>, pending <b id="notifications-pending">'
            f'{figures["pending"]}</b> (held for quiet hours, or retrying), failed <b id="notifications-failed">{figures["failed"]}</b>'
            + (f" ({escape(failed)})" if failed else "") + '. Time from the routing that decided a message to its sending.</p>')
    rows = figures["channels"]
    if not rows:
        return head + note
    chart = bar_chart("chart-notifications", [("p50", "p50"), ("p95", "p95"), ("max", "max")], [r["channel"] for r in rows],
                      [[r["p50_seconds"] for r in rows], [r["p95_seconds"] for r in rows], [r["max_seconds"] for r in rows]],
                      y_label="seconds to sent", colours=("#10b981", "#f59e0b", "#ef4444"), x_label="channel")
    table = _table(["channel", "sent", "p50 (s)", "p95 (s)", "max (s)"],
                   [[r["channel"], r["sent"], r["p50_seconds"], r["p95_seconds"], r["max_seconds"]] for r in rows], "table-notifications")
    return head + note + _legend([("p50", "#10b981"), ("p95", "#f59e0b"), ("max", "#ef4444")]) + chart + table


def render_html(report: Mapping[str, Any]) -> str:
    """The whole report page; every chart is inline SVG, so it opens offline and prints as it shows."""
    body = "".join([
        f'<h1>Lead connector report</h1><p class="meta">Generated {escape(time_words(report["generated_at"]))} from '
        f'{report["decisions"]} routing decisions in the decision log.</p>',
        _last_run_section(report.get("last_run")),
        _scores_section(report["scores"]),
        _fairness_section(report["fairness"]),
        _sla_section(report["sla"]),
        _dead_letter_section(report["dead_letters"]),
        _experiments_section(report["experiments"]),
        _waiting_section(report.get("waiting")),
        _notifications_section(report.get("notifications")),
    ])
    return (f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>Lead connector report</title>'
            f'<meta name="viewport" content="width=device-width, initial-scale=1"><style>{_CSS}</style></head><body>{body}</body></html>\n')
