"""The monitor on the real hotel data, a real champion from MLflow and a real Prometheus.

The prediction log is fed the way the service feeds it (PredictionRecords with every
model input, feedback by request id), with real bookings: their point-in-time features
from shipway.core import modelframe
from the Feast feature service and the champion's own predictions. The champion was
validated on January-February 2017, so summer 2017 is the real seasonal shift.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import mean_absolute_error

from monitoring.challenger import BETTER, UNDECIDED, shadow_request_id
from monitoring.exporter import MonitorMetrics
from monitoring.monitor import run_window
from monitoring.prometheus_config import (
    PrometheusConfig,
    find_prometheus,
    start_prometheus,
    wait_for,
)
from monitoring.prometheus_config import query as prom_query
from monitoring.reference import load_reference
from monitoring.report import INDEX, list_windows
from monitoring.trigger import history
from pipelines.steps import dataset
from shipway.core import modelframe, registry
from shipway.core.modelframe import model_frame, target_vector
from shipway.core.predictionlog import PredictionLog, PredictionRecord
from shipway.core.settings import Settings
from shipway.core.spec import Monitoring, UseCaseSpec
from tests.conftest import ROOT, free_port, registry_copy, require, session_champion

pytestmark = pytest.mark.integration
SUMMER = ("2017-07-01", "2017-09-01")  # the shifted window: peak season
REF_PERIOD = ("2017-01-01", "2017-03-01")  # the champion's validation (reference) period
DAY_A, DAY_B = datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 1, 2, tzinfo=UTC)


@pytest.fixture(scope="module")
def mon_settings(
    request: pytest.FixtureRequest, settings: Settings, tmp_path_factory: pytest.TempPathFactory
) -> Settings:
    return registry_copy(settings, tmp_path_factory.mktemp("monitor"), session_champion(request))


@pytest.fixture(scope="module")
def bookings(settings: Settings, hotel: UseCaseSpec, mon_settings: Settings) -> pd.DataFrame:
    """Every real booking with its point-in-time features, from the trained data version."""
    fetched = settings.state / "train-0" / "data"
    return dataset.training_frame(hotel, fetched / "data")


@pytest.fixture(scope="module")
def champion(mon_settings: Settings) -> tuple[Any, str]:
    client = registry.connect(mon_settings.tracking_uri)
    model, mv = registry.champion_model(client, "hotel_rates")
    assert mv is not None
    return model, str(mv.version)


def between(frame: pd.DataFrame, period: tuple[str, str]) -> pd.DataFrame:
    ts = frame["event_timestamp"]
    return frame[(ts >= period[0]) & (ts < period[1])].reset_index(drop=True)


def log_bookings(
    plog: PredictionLog,
    spec: UseCaseSpec,
    rows: pd.DataFrame,
    version: str,
    predictions: np.ndarray,
    *,
    prefix: str,
    logged_on: datetime,
    mode: str = "served",
    variant: str = "champion",
) -> list[str]:
    """Append one record per booking, as the service does; return the request ids."""
    raw = rows[spec.model_feature_names]
    features = raw.astype(object).where(raw.notna(), None)
    ids = [f"{prefix}-{i}" for i in range(len(rows))]
    if mode == "shadow":
        ids = [shadow_request_id(i) for i in ids]
    plog.append(
        [
            PredictionRecord(
                request_id=rid,
                usecase=spec.name,
                model_name=spec.name,
                model_version=version,
                variant=variant,
                mode=mode,
                entity_keys={k: str(rows.at[i, k]) for k in spec.entity_columns},
                features=features.iloc[i].to_dict(),
                prediction=float(predictions[i]),
                latency_ms=2.0,
                event_time=rows.at[i, "event_timestamp"].to_pydatetime(),
                ts=logged_on + timedelta(seconds=i),
            )
            for i, rid in enumerate(ids)
        ]
    )
    return ids


@pytest.fixture(scope="module")
def logged(
    mon_settings: Settings,
    hotel: UseCaseSpec,
    bookings: pd.DataFrame,
    champion: tuple[Any, str],
) -> dict[str, Any]:
    """Summer 2017 logged on day A (feedback for 60%), half of Jan-Feb 2017 on day B."""
    model, version = champion
    s = mon_settings
    plog = PredictionLog(s.prediction_log)
    summer = between(bookings, SUMMER)
    pred = modelframe.predict(hotel, model, model_frame(hotel, summer))
    ids = log_bookings(plog, hotel, summer, version, pred, prefix="summer", logged_on=DAY_A)
    labelled = np.random.default_rng(7).random(len(summer)) < 0.6
    y = target_vector(hotel, summer)
    for i in np.flatnonzero(labelled):
        assert plog.add_feedback(hotel.name, ids[i], float(y[i]))
    early = between(bookings, REF_PERIOD).sample(frac=0.5, random_state=0).reset_index(drop=True)
    early_pred = modelframe.predict(hotel, model, model_frame(hotel, early))
    log_bookings(plog, hotel, early, version, early_pred, prefix="early", logged_on=DAY_B)
    return {"settings": s, "plog": plog, "summer": summer, "labelled": labelled, "early": early}


def test_drift_is_detected_on_summer_2017_and_not_on_the_reference_period(
    logged: dict[str, Any], hotel: UseCaseSpec
) -> None:
    s = logged["settings"]
    # by log time (the default): day A holds summer bookings, day B reference-period ones
    shifted = run_window(s, hotel, DAY_A, DAY_B)
    calm = run_window(s, hotel, DAY_B, DAY_B + timedelta(days=1))
    assert shifted.rows_evaluated == len(logged["summer"])
    assert calm.rows_evaluated == len(logged["early"])
    assert shifted.drift_detected and shifted.drift is not None
    assert shifted.drift.share >= hotel.monitoring.drift_share_threshold
    assert {"lead_time", "historical_adr"} <= set(shifted.drift.drifted)
    assert shifted.drift.prediction is not None and shifted.drift.prediction.drifted
    assert not calm.drift_detected and calm.drift is not None
    assert calm.drift.share < hotel.monitoring.drift_share_threshold
    assert calm.drift.prediction is not None and not calm.drift.prediction.drifted
    # by business time (a replay logs everything "now"): the same verdicts
    by_event = run_window(s, hotel, *SUMMER, by="event_time")
    assert by_event.drift_detected and by_event.rows_evaluated == len(logged["summer"])
    assert not run_window(s, hotel, *REF_PERIOD, by="event_time").drift_detected
    # every window is kept and browsable
    root = s.state / "monitoring" / "hotel_rates"
    windows = list_windows(root)
    assert len(windows) == 4 and (root / INDEX).is_file()
    assert shifted.report_path is not None and shifted.report_path.stat().st_size > 100_000
    assert "Value Drift for column historical_adr" in shifted.report_path.read_text()
    summary = (shifted.report_path.parent / "summary.html").read_text()
    assert "historical_adr" in summary and "drift" in shifted.summary()


def test_chunked_windows_give_the_verdicts_of_the_whole_window(
    logged: dict[str, Any], hotel: UseCaseSpec
) -> None:
    """The monitor reads the log in chunks; a small report sample changes only the page."""
    s = logged["settings"]
    for period, drifted in ((SUMMER, True), (REF_PERIOD, False)):
        whole = run_window(s, hotel, *period, by="event_time", chunk_rows=None, write=False)
        chunked = run_window(
            s, hotel, *period, by="event_time", chunk_rows=97, max_rows=800, write=False
        )
        assert whole.drift is not None and chunked.drift is not None
        assert chunked.drift.sampled and chunked.drift.current_rows == whole.rows["served"]
        assert whole.drift_detected is chunked.drift_detected is drifted
        assert chunked.drift.drifted == whole.drift.drifted
        for a, b in zip(chunked.drift.features, whole.drift.features, strict=True):
            assert a.score == pytest.approx(b.score, rel=1e-12, abs=1e-15)
        assert chunked.rows == whole.rows and chunked.performance == whole.performance


def test_labels_since_the_champion_trained_make_retraining_due(
    logged: dict[str, Any], hotel: UseCaseSpec
) -> None:
    """The real champion's train_before tag bounds the count; the rule decides when."""
    s = logged["settings"]
    ref = load_reference(s, hotel)
    assert ref.trained_before is not None and ref.training_rows and ref.training_rows > 100
    summer, labelled = logged["summer"], logged["labelled"]
    after = pd.to_datetime(summer["event_timestamp"], utc=True) >= pd.Timestamp(ref.trained_before)
    expected = int((labelled & after.to_numpy()).sum())
    assert expected > 100  # summer 2017 is after the champion's training window

    def rule(**r: Any) -> UseCaseSpec:
        mon = {**hotel.monitoring.model_dump(), "retrain_on_new_labels": r}
        return hotel.model_copy(update={"monitoring": Monitoring.model_validate(mon)})

    due = run_window(s, rule(min_rows=expected), *SUMMER, by="event_time", write=False)
    assert due.new_labels is not None and due.new_labels.due
    assert (
        due.new_labels.rows == expected and due.new_labels.since == ref.trained_before.isoformat()
    )
    frac = (expected + 1) / ref.training_rows  # one row short of the fraction
    short = run_window(s, rule(min_fraction=frac), *SUMMER, by="event_time", write=False)
    assert short.new_labels is not None and not short.new_labels.due
    assert short.new_labels.required > expected and "new labels" in short.summary()
    assert run_window(s, hotel, *SUMMER, by="event_time", write=False).new_labels is None


def test_live_performance_from_feedback_matches_sklearn(
    logged: dict[str, Any], hotel: UseCaseSpec, champion: tuple[Any, str]
) -> None:
    s = logged["settings"]
    res = run_window(s, hotel, *SUMMER, by="event_time")
    summer, labelled = logged["summer"], logged["labelled"]
    rows = summer[labelled]
    independent = mean_absolute_error(
        rows["avg_price_per_room"].to_numpy(), champion[0].predict(model_frame(hotel, rows))
    )
    p = res.performance
    assert p is not None and p.live is not None and p.validation is not None
    assert p.rows == res.rows["labelled"] == labelled.sum()
    assert p.live == pytest.approx(independent, rel=1e-9)
    run = registry.connect(s.tracking_uri).get_run(load_reference(s, hotel).run_id)
    assert p.validation == pytest.approx(run.data.metrics["validation_mae"])
    assert p.drop_ratio == pytest.approx((p.live - p.validation) / p.validation)
    assert res.degraded and res.outcome == "degraded"  # summer prices: a real degradation


@pytest.mark.parametrize("challenger, expected", [("better", BETTER), ("same", UNDECIDED)])
def test_shadow_challenger_is_compared_on_the_same_requests(
    tmp_path: Path,
    mon_settings: Settings,
    hotel: UseCaseSpec,
    bookings: pd.DataFrame,
    champion: tuple[Any, str],
    challenger: str,
    expected: str,
) -> None:
    s = Settings(
        root=ROOT,
        state_dir=tmp_path,
        data_dir=mon_settings.data,
        mlflow_tracking_uri=mon_settings.tracking_uri,
        prediction_log_uri=str(tmp_path / "p.db"),
    )
    plog = PredictionLog(s.prediction_log)
    rows = between(bookings, ("2017-05-01", "2017-06-01"))
    y = target_vector(hotel, rows)
    pred = modelframe.predict(hotel, champion[0], model_frame(hotel, rows))
    noise = np.random.default_rng(1).normal(0, 3, len(y))
    shadow = y + noise if challenger == "better" else pred.copy()
    ids = log_bookings(plog, hotel, rows, champion[1], pred, prefix="r", logged_on=DAY_A)
    log_bookings(
        plog,
        hotel,
        rows,
        "99",
        shadow,
        prefix="r",
        logged_on=DAY_A,
        mode="shadow",
        variant="challenger",
    )
    for rid, actual in zip(ids, y, strict=True):
        plog.add_feedback(hotel.name, rid, float(actual))  # feedback knows the served id only
    res = run_window(s, hotel, DAY_A, DAY_B)
    c = res.challenger
    assert c is not None and c.design == "paired" and c.verdict == expected
    assert c.rows_champion == c.rows_challenger == len(rows)
    assert (c.champion_version, c.challenger_version) == (champion[1], "99")
    assert res.rows_evaluated == len(rows) and res.rows["shadow"] == len(rows)


@pytest.fixture()
def prometheus_bin() -> str:
    path = find_prometheus()
    require(path is not None, "the `prometheus` binary is missing (Debian package prometheus)")
    assert path is not None
    return path


@pytest.fixture()
def monitor_endpoint(logged: dict[str, Any], hotel: UseCaseSpec) -> Iterator[tuple[int, Any]]:
    metrics = MonitorMetrics()
    res = run_window(logged["settings"], hotel, *SUMMER, by="event_time", metrics=metrics)
    port = free_port()
    server = metrics.serve(port, addr="127.0.0.1")
    yield port, res
    server.shutdown()


def test_a_real_prometheus_scrapes_the_monitor(
    prometheus_bin: str, monitor_endpoint: tuple[int, Any], hotel: UseCaseSpec
) -> None:
    port, res = monitor_endpoint
    cfg = PrometheusConfig(
        service_targets=[],
        trigger_targets=[],
        monitor_targets=[f"127.0.0.1:{port}"],
        scrape_interval="1s",
    )
    with start_prometheus(cfg, free_port(), binary=prometheus_bin) as prom:
        sel = '{usecase="hotel_rates"}'
        got = wait_for(prom.url, f"shipway_drift_share{sel}")
        assert got[0].value == pytest.approx(res.drift.share)
        assert got[0].labels["job"] == "shipway-monitor"

        def one(q: str) -> float:
            samples = prom_query(prom.url, q)
            assert len(samples) == 1, (q, samples)
            return samples[0].value

        p = res.performance
        assert one(f"shipway_dataset_drift{sel}") == 1.0
        assert one(f"shipway_drift_share_threshold{sel}") == 0.3
        assert one('shipway_feature_drift_score{feature="historical_adr"}') == pytest.approx(
            next(f.score for f in res.drift.features if f.name == "historical_adr")
        )
        assert len(prom_query(prom.url, f"shipway_feature_drift_score{sel}")) == len(
            hotel.model_feature_names
        )
        assert one(f"shipway_prediction_drift_score{sel}") == pytest.approx(
            res.drift.prediction.score
        )
        assert one('shipway_live_performance{metric="mae"}') == pytest.approx(p.live)
        assert one('shipway_validation_performance{metric="mae"}') == pytest.approx(p.validation)
        assert one('shipway_performance_drop_ratio{metric="mae"}') == pytest.approx(p.drop_ratio)
        assert one(f"shipway_performance_drop_threshold{sel}") == 0.2
        assert one(f"shipway_monitor_rows_evaluated{sel}") == res.rows_evaluated
        assert one('shipway_monitor_runs_total{outcome="degraded"}') == 1
        age = one("time() - shipway_monitor_last_run_timestamp_seconds")
        assert 0 <= age < 120
        # the recording rule over the monitor's series evaluates too
        wait_for(prom.url, "usecase:shipway_monitor_age_seconds")


def test_cli_runs_a_window_lists_reports_and_respects_the_cooldown(
    logged: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    from typer.testing import CliRunner

    from shipway.cli import app
    from shipway.core.settings import get_settings

    s = logged["settings"]
    env = {
        "SHIPWAY_ROOT": str(ROOT),
        "SHIPWAY_STATE_DIR": str(s.state),
        "SHIPWAY_DATA_DIR": str(s.data),
        "SHIPWAY_PREDICTION_LOG_URI": s.prediction_log,
    }
    for key, val in env.items():
        monkeypatch.setenv(key, val)
    get_settings.cache_clear()
    try:
        cli = CliRunner()
        args = ["--start", "2017-07-01", "--end", "2017-09-01", "--by", "event_time"]
        run = cli.invoke(app, ["monitor", "run", "-u", "hotel_rates", *args])
        assert run.exit_code == 0, run.output
        assert "DRIFT" in run.output and "summary.html" in run.output
        listed = cli.invoke(app, ["monitor", "report", "-u", "hotel_rates", "--json"])
        assert listed.exit_code == 0, listed.output
        ends = [w["window"]["end"] for w in json.loads(listed.output)]
        assert "2017-09-01T00:00:00+00:00" in ends
        # a retraining started a minute ago holds the CLI back too (no pipeline runs)
        state = s.state / "retraining" / "hotel_rates.state.json"
        state.parent.mkdir(parents=True, exist_ok=True)
        state.write_text(json.dumps({"last_started_at": datetime.now(UTC).isoformat()}))
        held = cli.invoke(app, ["retrain", "-u", "hotel_rates", "--reason", "test"])
        assert held.exit_code == 0, held.output
        assert "cooldown" in held.output
        assert history(s, "hotel_rates")[-1]["source"] == "cli"
    finally:
        get_settings.cache_clear()
