"""Facts of the post-deployment review of a champion, from what it actually did.

The review window starts when the version became champion (``champion_at``) and ends
now. Volume and latency come straight from the prediction log (served rows of that
version, not shadow rows); live performance and the business KPI are the training
pipeline's own metrics on the rows with ground-truth feedback, computed by the monitor's
``live_performance``; drift is the monitor's verdict, read from its ``results.json``
windows of this version (``<state>/monitoring/<usecase>/<window>/results.json``).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd

from shipway.governance.versions import CHAMPION_AT
from shipway.settings import Settings
from shipway.spec import UseCaseSpec


def _served(
    settings: Settings, spec: UseCaseSpec, version: str, start: datetime, end: datetime
) -> pd.DataFrame:
    from shipway.predictionlog import PredictionLog

    df = PredictionLog(settings.prediction_log).window(spec.name, start, end)
    if df.empty:
        return df
    return df[(df["model_version"].astype(str) == version) & (df["mode"] == "served")]


def monitor_windows(settings: Settings, spec: UseCaseSpec) -> list[dict[str, Any]]:
    """Every monitoring window's results.json of the use case, oldest first."""
    root = settings.state / "monitoring" / spec.name
    out = []
    for p in sorted(root.glob("*/results.json")) if root.is_dir() else []:
        try:
            out.append({**json.loads(p.read_text()), "_path": str(p)})
        except (OSError, ValueError):
            continue
    return out


def drift_verdict(
    settings: Settings, spec: UseCaseSpec, version: str, start: datetime
) -> dict[str, Any]:
    """The newest monitor window of this version that ended inside the review period."""
    mine = [
        w
        for w in monitor_windows(settings, spec)
        if str((w.get("model") or {}).get("version")) == version
        and pd.Timestamp((w.get("window") or {}).get("end", "1970-01-01T00:00:00+00:00"))
        >= pd.Timestamp(start)
    ]
    if not mine:
        return {
            "detected": None,
            "detail": f"no monitoring window of v{version} in the review period "
            "(run `shipway monitor` on its traffic)",
        }
    w = mine[-1]
    drift = w.get("drift")
    if not drift:
        return {"detected": None, "detail": f"monitor window {w['_path']} did not assess drift"}
    return {
        "detected": bool(w.get("drift_detected")),
        "share": drift.get("share"),
        "window": w.get("window"),
        "results": w["_path"],
        "detail": f"monitor window {w['window']['start']} -> {w['window']['end']}: "
        f"{len(drift.get('drifted') or [])} drifted feature(s)",
    }


def review_facts(
    settings: Settings, client: Any, spec: UseCaseSpec, mv: Any, now: datetime | None = None
) -> dict[str, Any]:
    """Everything the post-deployment review judges (see ``gates.post_deployment_review``)."""
    from monitoring.performance import live_performance

    now = now or datetime.now(UTC)
    since = (mv.tags or {}).get(CHAMPION_AT)
    start = datetime.fromisoformat(since) if since else now
    version = str(mv.version)
    df = _served(settings, spec, version, start, now)
    n = len(df)
    metric = spec.acceptance.metric
    validation = client.get_run(mv.run_id).data.metrics.get(f"validation_{metric}")
    actual = pd.to_numeric(df["actual"], errors="coerce").to_numpy(float) if n else np.array([])
    pred = df["prediction"].to_numpy(float) if n else np.array([])
    perf = live_performance(spec, actual, pred, validation)
    kpi_metric = spec.objective.kpi_metric or metric
    kpi_value = perf.all_metrics.get(kpi_metric)
    return {
        "champion_at": since or "never champion",
        "window": {"start": start.isoformat(), "end": now.isoformat()},
        "days_served": round((now - start).total_seconds() / 86400, 4) if since else 0.0,
        "predictions": n,
        "latency_p99_ms": round(float(np.percentile(df["latency_ms"], 99)), 3) if n else None,
        "performance": {
            "metric": metric,
            "rows_with_feedback": perf.rows,
            "live": perf.live,
            "validation": validation,
            "drop": perf.drop_ratio,
            "detail": f"live {metric} on {perf.rows} rows with feedback vs validation {validation}"
            if perf.live is not None
            else f"not assessed: {perf.rows} rows with feedback (needs 30)",
        },
        "drift": drift_verdict(settings, spec, version, start),
        "kpi": {
            "name": spec.objective.kpi,
            "metric": kpi_metric,
            "value": kpi_value,
            "baseline": spec.objective.baseline,
            "target": spec.objective.target,
            "target_reached": None
            if kpi_value is None
            else (
                kpi_value <= spec.objective.target
                if spec.objective.direction == "lower_is_better"
                else kpi_value >= spec.objective.target
            ),
            "detail": f"{spec.objective.kpi} measured as live {kpi_metric}"
            if kpi_value is not None
            else "not measured: too little ground truth",
        },
    }
