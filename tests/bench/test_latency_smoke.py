"""Smoke test of `python -m bench latency`: a few webhook leads and CDC leads, every figure reported, every lead written."""

from __future__ import annotations

import math

from bench import latency

LEADS = 20


def test_latency_reports_every_figure_and_writes_every_lead() -> None:
    figures = latency.run(["--leads", str(LEADS), "--rate", "200", "--burst", "5", "--cdc-leads", "3"])
    stages = {f"{stage}_ms_{p}" for stage in latency.STAGES for p in ("p50", "p95")}
    expected = {
        "webhook_leads", "webhook_missing", "webhook_rate_per_s", "webhook_p50_ms", "webhook_p95_ms", "webhook_max_ms",
        "webhook_batches", "webhook_limiter_wait_s", "limiter_wait_ms_per_batch",
        "burst_leads", "burst_missing", "burst_p50_ms", "burst_max_ms",
        "cdc_p50_ms", "cdc_p95_ms", "cdc_max_ms", "cdc_leads", "cdc_missing",
    } | stages
    assert set(figures) == expected
    assert all(isinstance(v, float) and math.isfinite(v) for v in figures.values())
    assert (figures["webhook_leads"], figures["webhook_missing"]) == (LEADS, 0)
    assert (figures["burst_leads"], figures["burst_missing"]) == (5, 0)
    assert (figures["cdc_leads"], figures["cdc_missing"]) == (3, 0)
    assert 1 <= figures["webhook_batches"] <= LEADS
