"""The drift and performance monitor: one window of the prediction log vs the champion.

``run_window`` reads the window (by log time ``ts`` or business time ``event_time`` — a
replay of historical bookings logs them "now", so only event time shows the season),
compares served inputs and champion predictions with the champion's reference
(``monitoring.drift``), scores the champion on the rows with feedback against its
validation metric (``shipway.core.performance``), compares a challenger on the same traffic
(``monitoring.challenger``), writes the reports (``monitoring.report``) and, when given
``MonitorMetrics``, exports the Prometheus gauges. ``run_forever`` repeats it on a schedule.
Each written window also runs the champion's post-deployment review once it is due
(``review_if_due``), so the periodic monitor — the chart's monitor Deployment on a
cluster — is what schedules the review.
"""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime
from typing import Any

import pandas as pd

from monitoring.challenger import Comparison, compare_window
from monitoring.drift import DEFAULT_MAX_ROWS, PREDICTION, DriftResult, compute_drift
from monitoring.exporter import MonitorMetrics
from monitoring.reference import Reference, load_reference, monitoring_dir
from monitoring.report import window_dirname, write_window
from monitoring.window import MIN_DRIFT_ROWS, WindowResult
from shipway.core.modelframe import model_frame
from shipway.core.performance import Performance, live_performance
from shipway.core.predictionlog import PredictionLog
from shipway.core.settings import Settings
from shipway.core.spec import UseCaseSpec

log = logging.getLogger(__name__)


def _utc(t: datetime | str | None, default: datetime) -> datetime:
    if t is None:
        return default
    ts = pd.Timestamp(t)
    return (ts.tz_localize(UTC) if ts.tzinfo is None else ts.tz_convert(UTC)).to_pydatetime()


def window_bounds(
    spec: UseCaseSpec,
    start: datetime | str | None,
    end: datetime | str | None,
    length: str | None = None,
) -> tuple[datetime, datetime]:
    """[start, end) in UTC; defaults: end = now, start = end - the spec's window."""
    e = _utc(end, datetime.now(UTC))
    offset = pd.tseries.frequencies.to_offset(length or spec.monitoring.window)
    s = _utc(start, (pd.Timestamp(e) - offset).to_pydatetime())
    if s >= e:
        raise ValueError(f"empty window: start {s.isoformat()} is not before end {e.isoformat()}")
    return s, e


def current_frame(spec: UseCaseSpec, rows: pd.DataFrame) -> pd.DataFrame:
    """Logged rows as the model saw them (the reference's columns and types)."""
    feats = rows[[c for c in rows.columns if c.startswith("f.")]]
    frame = model_frame(spec, feats.rename(columns=lambda c: c[2:]))
    frame[PREDICTION] = rows["prediction"].to_numpy(dtype=float)
    return frame


LOG_COLUMNS = ["request_id", "mode", "variant", "model_version", "prediction", "actual"]


def _assess(
    spec: UseCaseSpec, ref: Reference, window: pd.DataFrame, max_rows: int | None
) -> tuple[dict[str, int], DriftResult | None, Any, Performance | None, Comparison | None]:
    """Measure one window: row counts, drift, live performance and the challenger.

    Drift uses every *served* row (split traffic is a random share of the same inputs) but
    only the champion's predictions; performance uses the champion's labelled rows.
    """
    if window.empty:
        window = pd.DataFrame(columns=LOG_COLUMNS)
    served = window[window["mode"] == "served"]
    is_champ = served["variant"].eq("champion")
    actual = pd.to_numeric(served["actual"][is_champ], errors="coerce").astype(float)
    rows = {
        "logged": len(window),
        "served": len(served),
        "shadow": int((window["mode"] == "shadow").sum()),
        "labelled": int(actual.notna().sum()),
    }
    drift, snapshot = None, None
    if len(served) >= MIN_DRIFT_ROWS:
        cur = current_frame(spec, served)
        cur[PREDICTION] = cur[PREDICTION].where(is_champ.to_numpy())
        drift, snapshot = compute_drift(spec, ref.frame, cur, max_rows=max_rows)
    pred = served["prediction"][is_champ].to_numpy(dtype=float)
    validation = ref.validation.get(spec.acceptance.metric)
    perf = live_performance(spec, actual.to_numpy(), pred, validation)
    return rows, drift, snapshot, perf, compare_window(spec, window)


def run_window(
    settings: Settings,
    spec: UseCaseSpec,
    start: datetime | str | None = None,
    end: datetime | str | None = None,
    by: str = "ts",
    *,
    length: str | None = None,
    metrics: MonitorMetrics | None = None,
    max_rows: int | None = DEFAULT_MAX_ROWS,
    plog: PredictionLog | None = None,
    write: bool = True,
) -> WindowResult:
    """Monitor one window of the prediction log against the current champion's reference.

    ``by`` is ``ts`` (when it was logged) or ``event_time`` (the business time the
    prediction was about). Writes report.html, summary.html and results.json under
    ``<state>/monitoring/<usecase>/<window-end>/`` unless ``write`` is False.
    """
    if by not in ("ts", "event_time"):
        raise ValueError(f"by must be 'ts' or 'event_time', not {by!r}")
    s, e = window_bounds(spec, start, end, length)
    ref = load_reference(settings, spec)
    window = (plog or PredictionLog(settings.prediction_log)).window(spec.name, s, e, by=by)
    rows, drift, snapshot, perf, challenger = _assess(spec, ref, window, max_rows)
    result = WindowResult(
        usecase=spec.name,
        window={"start": s.isoformat(), "end": e.isoformat(), "by": by},
        model={
            "name": ref.model_name,
            "version": ref.version,
            "run_id": ref.run_id,
            "reference_uri": ref.uri,
            "trained_at": ref.trained_at.isoformat() if ref.trained_at else None,
            "served_versions": sorted(window["model_version"].astype(str).unique().tolist())
            if len(window)
            else [],
        },
        rows=rows,
        drift=drift,
        performance=perf,
        challenger=challenger,
        spec_thresholds={
            "drift_share": spec.monitoring.drift_share_threshold,
            "performance_drop": spec.monitoring.performance_drop_threshold,
        },
    )
    if write:
        directory = monitoring_dir(settings, spec) / window_dirname(e)
        result.report_path = directory / "report.html"
        write_window(directory, result.to_dict(), result.summary(), snapshot)
    if metrics is not None:
        metrics.publish(result)
    log.info("%s", result.summary())
    if write:
        review_if_due(settings, spec)
    return result


def review_if_due(settings: Settings, spec: UseCaseSpec) -> str | None:
    """The scheduled post-deployment review: after each written window (whose drift
    verdict it reads), review the champion once its review window has passed.

    Once per champion tenure (``shipway.governance.review.scheduled_review``); returns the
    record's URI when a review ran. A failing review is logged, never fatal to monitoring.
    """
    from shipway.governance.review import scheduled_review

    try:
        done = scheduled_review(settings, spec)
    except Exception:
        log.exception("scheduled post-deployment review of %s failed", spec.name)
        return None
    if done is None:
        return None
    record, uri = done
    log.info(
        "post-deployment review of %s v%s: %s (%s)",
        spec.name,
        record.subject.get("version"),
        "passed" if record.passed else "FAILED: " + "; ".join(c.name for c in record.failures),
        uri,
    )
    return uri


def run_forever(
    settings: Settings,
    spec: UseCaseSpec,
    metrics: MonitorMetrics,
    *,
    interval: float,
    by: str = "ts",
    length: str | None = None,
    on_result: Any = None,
    stop: Any = None,
) -> None:
    """Run a window ending "now" every ``interval`` seconds until ``stop()`` is true.

    A failing run is counted (outcome ``error``) and logged, never fatal: the next run may
    succeed, and ShipwayMonitorNotRunning reports a monitor that keeps failing.
    """
    metrics.init_usecase(spec.name)
    while stop is None or not stop():
        began = time.monotonic()
        try:
            result = run_window(settings, spec, by=by, length=length, metrics=metrics)
            if on_result is not None:
                on_result(result)
        except Exception:
            log.exception("monitor run for %s failed", spec.name)
            metrics.failed(spec.name)
        time.sleep(max(0.0, interval - (time.monotonic() - began)))
