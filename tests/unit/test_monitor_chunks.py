"""The monitor reading a real prediction log in chunks measures what it measures at once.

A SQLite prediction log (the embedded default) holds real hotel bookings of August 2017
as served requests, with feedback for most and a shadow challenger for some; the
reference is January-February 2017. The predictions are a stand-in (the reference's
mean price per room type, the shadow's +3): what is compared is the monitor's reading
of the log, not a model.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from monitoring.challenger import shadow_request_id
from monitoring.drift import PREDICTION, Reservoir
from monitoring.monitor import WindowTally
from monitoring.reference import Reference
from shipway.core.modelframe import model_frame
from shipway.core.predictionlog import PredictionLog, PredictionRecord
from shipway.core.settings import Settings
from shipway.core.spec import UseCaseSpec
from shipway.core.usecases import load_usecase
from shipway.data.ingest import derive, read_source

DAY = datetime(2026, 1, 1, tzinfo=UTC)


@pytest.fixture(scope="module")
def spec() -> UseCaseSpec:
    return load_usecase("hotel_rates", Settings())


@pytest.fixture(scope="module")
def logged(spec: UseCaseSpec, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    raw = derive(spec, read_source(spec, Settings().root))
    day = pd.to_datetime(raw[spec.timestamp_column])
    early = raw[(day >= "2017-01-01") & (day < "2017-03-01")].reset_index(drop=True)
    summer = raw[(day >= "2017-08-01") & (day < "2017-09-01")].reset_index(drop=True)
    price = early.groupby("reserved_room_type")[spec.target.column].mean()
    guess = summer["reserved_room_type"].map(price).fillna(price.mean()).to_numpy(float)
    ref = model_frame(spec, early.reindex(columns=spec.model_feature_names))
    ref[PREDICTION] = early["reserved_room_type"].map(price).to_numpy(float)
    reference = Reference("hotel_rates", "1", "run", "runs:/run/ref", ref, {"mae": 20.0}, None)

    plog = PredictionLog(str(Path(tmp_path_factory.mktemp("plog")) / "predictions.db"))
    sent = summer[[c for c in spec.model_feature_names if c in summer.columns]]
    features = sent.astype(object).where(sent.notna(), None)

    def record(i: int, mode: str = "served") -> PredictionRecord:
        rid = f"r{i}" if mode == "served" else shadow_request_id(f"r{i}")
        return PredictionRecord(
            request_id=rid,
            usecase=spec.name,
            model_name=spec.name,
            model_version="1" if mode == "served" else "2",
            variant="champion" if mode == "served" else "challenger",
            mode=mode,
            entity_keys={},
            features=features.iloc[i].to_dict(),
            prediction=float(guess[i] + (3.0 if mode == "shadow" else 0.0)),
            latency_ms=1.0,
            ts=DAY + timedelta(seconds=i),
        )

    n = len(summer)
    plog.append([record(i) for i in range(n)] + [record(i, "shadow") for i in range(0, n, 3)])
    labelled = np.random.default_rng(1).random(n) < 0.5
    for i in np.flatnonzero(labelled):
        assert plog.add_feedback(spec.name, f"r{i}", float(summer.at[i, spec.target.column]))
    return {"plog": plog, "reference": reference, "rows": n, "labelled": labelled}


def tally(
    spec: UseCaseSpec, logged: dict[str, Any], chunk_rows: int | None, **kw: Any
) -> WindowTally:
    t = WindowTally(spec, logged["reference"], max_rows=300, **kw)
    for chunk in logged["plog"].iter_window(
        spec.name, DAY, DAY + timedelta(days=1), chunk_rows=chunk_rows
    ):
        t.add(chunk)
    if t.needs_pass():  # as run_window does for a window larger than memory
        for chunk in logged["plog"].iter_window(
            spec.name, DAY, DAY + timedelta(days=1), chunk_rows=chunk_rows
        ):
            t.refine(chunk)
    return t


def test_the_log_reads_in_chunks_in_window_order(spec: UseCaseSpec, logged: dict[str, Any]) -> None:
    plog: PredictionLog = logged["plog"]
    whole = plog.window(spec.name, DAY, DAY + timedelta(days=1))
    chunks = list(plog.iter_window(spec.name, DAY, DAY + timedelta(days=1), chunk_rows=500))
    assert max(len(c) for c in chunks) == 500 and len(chunks) == -(-len(whole) // 500)
    assert (
        pd.concat(chunks, ignore_index=True)["request_id"].tolist() == whole["request_id"].tolist()
    )
    assert list(plog.iter_window(spec.name, DAY - timedelta(days=2), DAY)) == []
    with pytest.raises(ValueError, match="chunk_rows"):
        next(plog.iter_window(spec.name, chunk_rows=0))


def test_chunked_window_equals_the_window_in_memory(
    spec: UseCaseSpec, logged: dict[str, Any]
) -> None:
    at_once, chunked = tally(spec, logged, None), tally(spec, logged, 173)
    a, b = (t.finish(report=False, n_boot=100) for t in (at_once, chunked))
    rows = logged["rows"]
    assert at_once.rows == chunked.rows
    assert chunked.rows == {
        "logged": rows + len(range(0, rows, 3)),
        "served": rows,
        "shadow": len(range(0, rows, 3)),
        "labelled": int(logged["labelled"].sum()),
    }
    (drift_a, page_a, perf_a, ch_a), (drift_b, page_b, perf_b, ch_b) = a, b
    assert drift_a is not None and drift_b is not None and drift_b.current_rows == rows
    assert drift_b.dataset_drift and drift_b.drifted == drift_a.drifted  # summer vs winter
    da, db = drift_a.to_dict(), drift_b.to_dict()
    for fa, fb in zip(
        [*da["features"], da["prediction"]], [*db["features"], db["prediction"]], strict=True
    ):
        assert fb == {**fa, "score": pytest.approx(fa["score"], rel=1e-12, abs=1e-15)}
    assert page_a is page_b is None  # the page's sample: tests/unit/test_monitor_sketch.py
    assert perf_b == perf_a and perf_b is not None and perf_b.rows == chunked.rows["labelled"]
    assert ch_b == ch_a and ch_b is not None and ch_b.design == "paired"
    assert ch_b.rows_champion == int(logged["labelled"][::3].sum())  # labelled pairs


def test_a_window_larger_than_memory_is_read_twice_for_the_same_exact_drift(
    spec: UseCaseSpec, logged: dict[str, Any]
) -> None:
    """keep_rows=100: the sorted values are dropped after the first chunk; the crossing
    gaps' values come from a second read of the log, and the scores equal the in-memory
    window's exactly (none carries an error bound). The reference's predictions get a
    little noise, so the served ones fall between them and the two CDFs cross."""
    ref: Reference = logged["reference"]
    frame = ref.frame.copy()
    noise = np.random.default_rng(2).normal(0, 3, len(frame))
    frame[PREDICTION] = frame[PREDICTION] + noise
    noisy = {**logged, "reference": replace(ref, frame=frame)}
    in_memory = tally(spec, noisy, None).finish(report=False, n_boot=10)[0]
    probe = WindowTally(spec, noisy["reference"], max_rows=300, keep_rows=100)
    for chunk in logged["plog"].iter_window(
        spec.name, DAY, DAY + timedelta(days=1), chunk_rows=173
    ):
        probe.add(chunk)
    assert probe.needs_pass()  # the window outgrew keep_rows and the predictions cross
    estimate = probe.finish(report=False, n_boot=10)[0]
    assert estimate is not None and estimate.prediction is not None
    assert estimate.prediction.error_bound > 0
    twice = tally(spec, noisy, 173, keep_rows=100).finish(report=False, n_boot=10)[0]
    assert in_memory is not None and twice is not None
    for a, b in zip(
        [*in_memory.features, in_memory.prediction],
        [*twice.features, twice.prediction],
        strict=True,
    ):
        assert a is not None and b is not None and a.name == b.name and b.error_bound == 0.0
        assert b.score == pytest.approx(a.score, rel=1e-12, abs=1e-15), a.name
    assert abs(estimate.prediction.score - in_memory.prediction.score) <= (
        estimate.prediction.error_bound + 1e-12
    )


@pytest.mark.parametrize("chunk", [1, 7, 50, 333, 1000])
def test_report_sample_is_the_same_rows_whatever_the_chunks(chunk: int) -> None:
    """The report's sample keeps the rows with the ``size`` smallest keys of one seeded
    stream, in window order, however the window is cut and however often it compacts."""
    rows = pd.DataFrame({"i": np.arange(1000), "x": np.random.default_rng(3).normal(size=1000)})
    want = np.sort(np.argpartition(np.random.default_rng(11).random(1000), 64)[:64])
    res = Reservoir(64, 11)
    for start in range(0, len(rows), chunk):
        res.add(rows.iloc[start : start + chunk])
    got = res.frame()
    assert list(got["i"]) == list(want)
    assert Reservoir(None, 11).frame().empty
