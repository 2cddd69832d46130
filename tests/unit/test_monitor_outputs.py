"""The monitor's outputs: contract metrics per window, and browsable report folders."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from monitoring.drift import ColumnDrift, DriftResult
from monitoring.exporter import MonitorMetrics
from monitoring.monitor import window_bounds
from monitoring.report import INDEX, REPORT, RESULTS, SUMMARY, list_windows, prune, write_window
from monitoring.window import WindowResult
from shipway.core.metrics_contract import BY_NAME, Exporter
from shipway.core.performance import Performance
from shipway.core.settings import Settings
from shipway.core.usecases import load_usecase


def result(live: float | None, end: str = "2017-08-01T00:00:00+00:00") -> WindowResult:
    feats = [
        ColumnDrift("lead_time", "numerical", "wasserstein", 0.1, 0.8, True),
        ColumnDrift("meal", "categorical", "jensenshannon", 0.1, 0.02, False),
    ]
    pred = ColumnDrift("prediction", "numerical", "wasserstein", 0.1, 0.4, True)
    drop = None if live is None else (live - 8.0) / 8.0
    return WindowResult(
        usecase="hotel_rates",
        window={"start": "2017-07-01T00:00:00+00:00", "end": end, "by": "event_time"},
        model={"name": "hotel_rates", "version": "1", "reference_uri": "runs:/r/reference"},
        rows={"logged": 120, "served": 100, "shadow": 20, "labelled": 80},
        drift=DriftResult(feats, pred, 0.3, 2000, 100, False),
        performance=Performance("mae", 80, live, 8.0, drop, 0.2, {}),
        challenger=None,
        spec_thresholds={"drift_share": 0.3, "performance_drop": 0.2},
    )


def value(m: MonitorMetrics, name: str, **labels: str) -> float | None:
    return m.registry.get_sample_value(name, {"usecase": "hotel_rates", **labels})


def test_every_monitor_metric_of_the_contract_is_exported() -> None:
    m = MonitorMetrics()
    m.publish(result(live=12.0))
    exported = {mf.name for mf in m.registry.collect()}
    wanted = {
        s.name.removesuffix("_total") for s in BY_NAME.values() if s.exporter is Exporter.monitor
    }
    assert wanted <= exported
    assert value(m, "shipway_drift_share") == 0.5
    assert value(m, "shipway_dataset_drift") == 1.0
    assert value(m, "shipway_feature_drift_score", feature="lead_time") == 0.8
    assert value(m, "shipway_prediction_drift_score") == 0.4
    assert value(m, "shipway_live_performance", metric="mae") == 12.0
    assert value(m, "shipway_validation_performance", metric="mae") == 8.0
    assert value(m, "shipway_performance_drop_ratio", metric="mae") == pytest.approx(0.5)
    assert value(m, "shipway_performance_drop_threshold") == 0.2
    assert value(m, "shipway_drift_share_threshold") == 0.3
    assert value(m, "shipway_monitor_rows_evaluated") == 100
    assert value(m, "shipway_monitor_runs_total", outcome="degraded") == 1
    assert value(m, "shipway_monitor_runs_total", outcome="ok") == 0
    assert (value(m, "shipway_monitor_last_run_timestamp_seconds") or 0) > 1.7e9


def test_a_window_without_feedback_removes_the_live_series() -> None:
    """A stale live value would keep ShipwayPerformanceDegraded firing."""
    m = MonitorMetrics()
    m.publish(result(live=12.0))
    m.publish(result(live=None))
    assert value(m, "shipway_live_performance", metric="mae") is None
    assert value(m, "shipway_performance_drop_ratio", metric="mae") is None
    assert value(m, "shipway_validation_performance", metric="mae") == 8.0
    assert value(m, "shipway_monitor_runs_total", outcome="drift") == 1
    m.failed("hotel_rates")
    assert value(m, "shipway_monitor_runs_total", outcome="error") == 1


def test_windows_are_kept_indexed_and_old_evidently_pages_pruned(tmp_path: Path) -> None:
    root = tmp_path / "hotel_rates"
    for day in ("01", "02", "03"):
        r = result(live=9.0, end=f"2017-08-{day}T00:00:00+00:00")
        write_window(root / f"2017-08-{day}T000000Z", r.to_dict(), r.summary(), None)
    d = root / "2017-08-03T000000Z"
    assert {p.name for p in d.iterdir()} == {REPORT, SUMMARY, RESULTS}
    assert json.loads((d / RESULTS).read_text())["drift"]["share"] == 0.5
    assert [w["dir"] for w in list_windows(root)] == [
        "2017-08-03T000000Z",
        "2017-08-02T000000Z",
        "2017-08-01T000000Z",
    ]
    index = (root / INDEX).read_text()
    assert index.count("summary.html") == 3 and "2017-08-02T000000Z/report.html" in index
    for p in root.glob(f"*/{REPORT}"):
        p.write_text("x" * 20_000)  # as big as a real Evidently page
    assert prune(root, keep=1) == 2 and prune(root, keep=1) == 0
    assert (d / REPORT).stat().st_size == 20_000


def test_window_bounds_default_to_the_spec_window_in_utc() -> None:
    spec = load_usecase("hotel_rates", Settings())  # window 30D
    start, end = window_bounds(spec, None, "2017-08-31")
    assert end.isoformat() == "2017-08-31T00:00:00+00:00"
    assert start.isoformat() == "2017-08-01T00:00:00+00:00"
    s2, _ = window_bounds(spec, None, "2017-08-31T02:00:00+02:00", "7D")
    assert s2.isoformat() == "2017-08-24T00:00:00+00:00"
    with pytest.raises(ValueError):
        window_bounds(spec, "2017-09-01", "2017-08-01")


def test_an_empty_window_is_no_data_not_an_error() -> None:
    from monitoring.monitor import WindowTally
    from monitoring.reference import Reference

    spec = load_usecase("hotel_rates", Settings())
    ref = Reference(
        "hotel_rates", "1", "run", "runs:/run/reference", pd.DataFrame(), {"mae": 8.0}, None
    )
    tally = WindowTally(spec, ref, None)  # no chunk at all: the log had no row
    drift, snapshot, perf, challenger = tally.finish()
    rows = tally.rows
    assert rows == {"logged": 0, "served": 0, "shadow": 0, "labelled": 0}
    assert drift is None and snapshot is None and challenger is None
    assert perf is not None and perf.live is None and perf.validation == 8.0
    r = WindowResult(
        "hotel_rates",
        {"start": "a", "end": "b", "by": "ts"},
        {"name": "m", "version": "1"},
        rows,
        drift,
        perf,
        challenger,
        {"drift_share": 0.3, "performance_drop": 0.2},
    )
    assert r.outcome == "no_data" and "not assessed" in r.summary()


def test_the_summary_says_better_when_live_performance_improved() -> None:
    """A live MAE of 6 against a validation MAE of 8 is 25% better, never "-25% worse"."""
    assert "live mae: 6 vs validation 8 -> 25.0% better" in result(live=6.0).summary()
    assert "live mae: 12 vs validation 8 -> 50.0% worse" in result(live=12.0).summary()
