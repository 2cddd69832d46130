"""Facts of the post-deployment review of a champion, from what it actually did.

The review window starts when the version became champion (``champion_at``) and ends
now. Volume and latency come straight from the prediction log (served rows of that
version, not shadow rows); live performance and the business KPI are the training
pipeline's own metrics on the rows with ground-truth feedback, computed by the monitor's
``live_performance``; drift is the monitor's verdict, read from its ``results.json``
windows of this version (``<state>/monitoring/<usecase>/<window>/results.json``).

``scheduled_review`` is what runs it without a person: the monitor calls it after each
window, and it reviews the current champion once its tenure (``champion_at``) is
``governance.review_after_days`` old — exactly once per tenure. The version's
``reviewed_champion_at`` tag names the tenure a complete review (window elapsed) was
recorded for; the check, the review and the tag happen under the model's ``review`` lock
(``locks.model_lock``), so two monitors, or a monitor restarted mid-review, never
review one tenure twice.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd

from shipway.core.evidence import GateRecord
from shipway.core.performance import live_performance
from shipway.core.settings import Settings
from shipway.core.spec import UseCaseSpec
from shipway.governance import gates
from shipway.governance.locks import model_lock
from shipway.governance.registration import publish_cards
from shipway.governance.trail import append_and_link
from shipway.governance.versions import CHAMPION_AT, champion, subject


def _served(
    settings: Settings, spec: UseCaseSpec, version: str, start: datetime, end: datetime
) -> pd.DataFrame:
    from shipway.core.predictionlog import PredictionLog

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
        # exact, not rounded: the gate compares it with review_after_days, which may be tiny
        "days_served": (now - start).total_seconds() / 86400 if since else 0.0,
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


REVIEWED = "reviewed_champion_at"
"""Version tag: the ``champion_at`` of the tenure whose post-deployment review is recorded."""


def review_due(spec: UseCaseSpec, mv: Any | None, now: datetime) -> str:
    """Why the champion ``mv`` needs no scheduled review now ('' = it is due)."""
    if mv is None:
        return "no champion"
    tags = mv.tags or {}
    since = tags.get(CHAMPION_AT)
    if not since:
        return f"v{mv.version} has no champion_at tag (made champion outside Shipway)"
    if tags.get(REVIEWED) == since:
        return f"v{mv.version} was already reviewed for its tenure since {since}"
    due = datetime.fromisoformat(since) + timedelta(days=spec.governance.review_after_days)
    if now < due:
        return f"v{mv.version} is reviewed at {due.isoformat()}"
    return ""


def mark_reviewed(client: Any, mv: Any, record: Any) -> None:
    """Tag the version with the tenure a complete review covered (window elapsed)."""
    elapsed = next((c for c in record.criteria if c.name == "review_window_elapsed"), None)
    if elapsed is not None and elapsed.passed:
        client.set_model_version_tag(
            mv.name, str(mv.version), REVIEWED, record.facts["champion_at"]
        )


def scheduled_review(
    settings: Settings, spec: UseCaseSpec, client: Any = None, now: datetime | None = None
) -> tuple[Any, str] | None:
    """Review the current champion if its review is due; ``(record, uri)`` or None.

    The record is appended to the audit trail, linked from the version
    (``evidence.post_deployment_review``) and shown on its cards.
    """
    from shipway.core import registry

    client = client or registry.connect(settings.tracking_uri)
    name = spec.registered_model_name
    now = now or datetime.now(UTC)
    if review_due(spec, champion(client, name), now):
        return None  # the cheap check, every monitor window: two registry reads
    with model_lock(settings, name, "review"):
        mv = champion(client, name)  # fresh: another monitor may have just reviewed it
        if mv is None or review_due(spec, mv, now):
            return None
        record, uri = post_deployment_review(settings, client, spec, mv, now)
    publish_cards(settings, client, spec, client.get_model_version(name, str(mv.version)))
    return record, uri


def post_deployment_review(
    settings: Settings, client: Any, spec: UseCaseSpec, mv: Any, now: datetime | None = None
) -> tuple[GateRecord, str]:
    """Review the version now; a review whose window had elapsed marks its champion
    tenure reviewed, so the monitor's scheduled review does not repeat it."""
    facts = review_facts(settings, client, spec, mv, now)
    record = gates.post_deployment_review(spec, subject(mv, spec.name), facts)
    uri = append_and_link(settings, client, spec, record, mv)
    mark_reviewed(client, mv, record)
    return record, uri
