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

from monitoring.accrual import new_labels
from monitoring.challenger import Comparison, compare_window
from monitoring.drift import DEFAULT_MAX_ROWS, KEEP_ROWS, PREDICTION, DriftResult, WindowDrift
from monitoring.exporter import MonitorMetrics
from monitoring.profile import ReferenceProfile
from monitoring.reference import Reference, load_reference, monitoring_dir, reference_profile
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
CHUNK_ROWS = 50_000
"""Rows of the prediction log read at a time: the monitor's memory is bounded by this,
the reference and the rows kept for performance (``WindowTally``), not by the window."""


class WindowTally:
    """One window's running measurements, fed the prediction log chunk by chunk.

    Drift uses every *served* row (split traffic is a random share of the same inputs)
    but only the champion's predictions, summarized per column (``WindowDrift``). The
    labelled rows and shadow records are kept, narrow (``LOG_COLUMNS``), for live
    performance and the challenger: their metrics and bootstrap need the rows themselves.
    Chunks give the same result as the whole window at once (tests/unit/test_monitor_chunks.py).
    """

    def __init__(
        self,
        spec: UseCaseSpec,
        ref: Reference,
        max_rows: int | None,
        profile: ReferenceProfile | None = None,
        keep_rows: int | None = KEEP_ROWS,
    ) -> None:
        self.spec, self.ref, self.profile, self.keep_rows = spec, ref, profile, keep_rows
        self.rows = {"logged": 0, "served": 0, "shadow": 0, "labelled": 0}
        self.versions: set[str] = set()
        self.max_rows = max_rows
        self.drift: WindowDrift | None = None  # made at the first served row
        self.kept: list[pd.DataFrame] = []

    def add(self, chunk: pd.DataFrame) -> None:
        served = chunk[chunk["mode"] == "served"]
        is_champ = served["variant"].eq("champion")
        actual = pd.to_numeric(chunk["actual"], errors="coerce")
        self.rows["logged"] += len(chunk)
        self.rows["served"] += len(served)
        self.rows["shadow"] += int((chunk["mode"] == "shadow").sum())
        self.rows["labelled"] += int(actual[served.index][is_champ].notna().sum())
        self.versions.update(chunk["model_version"].astype(str).unique().tolist())
        if len(served):
            if self.drift is None:
                self.drift = WindowDrift(
                    self.spec,
                    self.ref.frame,
                    max_rows=self.max_rows,
                    profile=self.profile,
                    keep_rows=self.keep_rows,
                )
            self.drift.add(self._drift_frame(served))
        keep = actual.notna() | (chunk["mode"] == "shadow")
        self.kept.append(chunk.loc[keep, LOG_COLUMNS])

    def _drift_frame(self, served: pd.DataFrame) -> pd.DataFrame:
        """Served rows as the model saw them, with only the champion's predictions."""
        cur = current_frame(self.spec, served)
        cur[PREDICTION] = cur[PREDICTION].where(served["variant"].eq("champion").to_numpy())
        return cur

    def needs_pass(self) -> bool:
        """Whether exact drift needs the window read again (``refine``): a window larger
        than the drift's ``keep_rows`` whose distributions cross the reference's."""
        return self.drift is not None and self.drift.needs_pass()

    def refine(self, chunk: pd.DataFrame) -> None:
        """One chunk of the second read of the window (drift only)."""
        served = chunk[chunk["mode"] == "served"]
        if self.drift is not None and len(served):
            self.drift.refine(self._drift_frame(served))

    def finish(
        self, *, report: bool = True, n_boot: int = 1000
    ) -> tuple[DriftResult | None, Any, Performance | None, Comparison | None]:
        """Drift (with Evidently's snapshot unless not ``report``), live performance and
        the challenger (``n_boot`` bootstrap resamples)."""
        drift, snapshot = None, None
        if self.drift is not None and self.rows["served"] >= MIN_DRIFT_ROWS:
            drift, snapshot = self.drift.result(report=report)
        kept = pd.concat(self.kept) if self.kept else pd.DataFrame(columns=LOG_COLUMNS)
        served = kept[kept["mode"] == "served"]
        champ = served[served["variant"].eq("champion")]
        actual = pd.to_numeric(champ["actual"], errors="coerce").astype(float)
        validation = self.ref.validation.get(self.spec.acceptance.metric)
        perf = live_performance(
            self.spec, actual.to_numpy(), champ["prediction"].to_numpy(dtype=float), validation
        )
        return (
            drift,
            snapshot,
            perf,
            compare_window(self.spec, kept.reset_index(drop=True), n_boot=n_boot),
        )


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
    chunk_rows: int | None = CHUNK_ROWS,
) -> WindowResult:
    """Monitor one window of the prediction log against the current champion's reference.

    ``by`` is ``ts`` (when it was logged) or ``event_time`` (the business time the
    prediction was about). The window is read ``chunk_rows`` rows at a time (``None``: at
    once), so its size is not bounded by memory; a window larger than the drift's
    ``keep_rows`` is read a second time for the exact distances (``WindowDrift``). Writes report.html, summary.html and results.json under
    ``<state>/monitoring/<usecase>/<window-end>/`` unless ``write`` is False.
    """
    if by not in ("ts", "event_time"):
        raise ValueError(f"by must be 'ts' or 'event_time', not {by!r}")
    s, e = window_bounds(spec, start, end, length)
    ref = load_reference(settings, spec)
    tally = WindowTally(spec, ref, max_rows, reference_profile(settings, spec, ref))
    log_ = plog or PredictionLog(settings.prediction_log)
    for chunk in log_.iter_window(spec.name, s, e, by=by, chunk_rows=chunk_rows):
        tally.add(chunk)
    if tally.needs_pass():  # a window larger than memory: read the crossing gaps again
        for chunk in log_.iter_window(spec.name, s, e, by=by, chunk_rows=chunk_rows):
            tally.refine(chunk)
    drift, snapshot, perf, challenger = tally.finish()
    accrued = new_labels(spec, ref, log_)
    result = WindowResult(
        usecase=spec.name,
        window={"start": s.isoformat(), "end": e.isoformat(), "by": by},
        model={
            "name": ref.model_name,
            "version": ref.version,
            "run_id": ref.run_id,
            "reference_uri": ref.uri,
            "trained_at": ref.trained_at.isoformat() if ref.trained_at else None,
            "served_versions": sorted(tally.versions),
        },
        rows=tally.rows,
        drift=drift,
        performance=perf,
        challenger=challenger,
        new_labels=accrued,
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
