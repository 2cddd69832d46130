"""Drift of a window read in chunks, on the real hotel bookings.

The reference is January-February 2017, the window summer 2017 (the seasonal shift the
integration tests also see), every booking field the model reads straight from the
request, and the booked price in the prediction's place (a continuous column whose
values mostly fall between the reference's). Checked: chunks give the verdicts and
scores of the whole window at once, and those are Evidently's own on the whole window
(Jensen-Shannon exactly; Wasserstein exactly on the reference's support, otherwise
within the bound the summary computes).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from monitoring.drift import PREDICTION, WindowDrift, _report, column_kinds
from monitoring.sketch import NumberSketch
from shipway.core.modelframe import model_frame
from shipway.core.settings import Settings
from shipway.core.spec import UseCaseSpec
from shipway.core.usecases import load_usecase
from shipway.data.ingest import derive, read_source


@pytest.fixture(scope="module")
def spec() -> UseCaseSpec:
    return load_usecase("hotel_rates", Settings())


@pytest.fixture(scope="module")
def hotel(spec: UseCaseSpec) -> dict[str, pd.DataFrame]:
    raw = derive(spec, read_source(spec, Settings().root))
    day = pd.to_datetime(raw[spec.timestamp_column])
    features = [c for c in spec.model_feature_names if c in raw.columns]

    def part(lo: str, hi: str) -> pd.DataFrame:
        rows = raw[(day >= lo) & (day < hi)]
        frame = model_frame(spec, rows.reindex(columns=spec.model_feature_names))[features]
        frame[PREDICTION] = rows[spec.target.column].to_numpy(np.float64)
        return frame.reset_index(drop=True)

    return {
        "reference": part("2017-01-01", "2017-03-01"),
        "window": part("2017-07-01", "2017-09-01"),
        "march": part("2017-03-01", "2017-04-01"),  # next to the reference: CDFs cross
    }


def features(frame: pd.DataFrame) -> list[str]:
    return [c for c in frame.columns if c != PREDICTION]


def drift_in_chunks(spec: UseCaseSpec, ref: pd.DataFrame, window: pd.DataFrame, rows: int):
    drift = WindowDrift(spec, ref, features=features(ref), max_rows=500)
    for start in range(0, len(window), rows):
        drift.add(window.iloc[start : start + rows])
    return drift


def test_chunked_drift_equals_the_whole_window_at_once(
    spec: UseCaseSpec, hotel: dict[str, pd.DataFrame]
) -> None:
    ref, window = hotel["reference"], hotel["window"]
    assert len(window) > 2000 and len(features(ref)) >= 15
    whole, whole_page = drift_in_chunks(spec, ref, window, len(window)).result()
    chunked, chunked_page = drift_in_chunks(spec, ref, window, 97).result()
    assert whole.current_rows == chunked.current_rows == len(window)
    assert whole.dataset_drift and chunked.drifted == whole.drifted
    for a, b in zip(
        [*chunked.features, chunked.prediction], [*whole.features, whole.prediction], strict=True
    ):
        assert a is not None and b is not None and a.name == b.name
        # the same counts; gap sums added in another order differ in the last bits only
        assert a.score == pytest.approx(b.score, rel=1e-12, abs=1e-15), a.name
    # the report page shows the same sampled rows however the window was cut
    assert chunked.sampled and chunked_page.json() == whole_page.json()
    # two shards' states merge into the whole window's
    half = len(window) // 2
    first = drift_in_chunks(spec, ref, window.iloc[:half], 300)
    first.merge(drift_in_chunks(spec, ref, window.iloc[half:], 300))
    merged, _ = first.result(report=False)
    assert [f.score for f in merged.features] == pytest.approx([f.score for f in whole.features])


@pytest.mark.parametrize("name", ["window", "march"])
def test_summaries_reproduce_evidently_on_the_whole_window(
    spec: UseCaseSpec, hotel: dict[str, pd.DataFrame], name: str
) -> None:
    ref, window = hotel["reference"], hotel[name]
    drift = drift_in_chunks(spec, ref, window, 211)
    ours, _ = drift.result(report=False)
    found = [f for f in [*ours.features, ours.prediction] if f is not None]
    kinds = column_kinds(spec, ref, [f.name for f in found])
    body = _report(ref, window, kinds, {f.name: f.method for f in found}).dict()  # every row
    theirs = {
        m["config"]["column"]: float(m["value"])
        for m in body["metrics"]
        if m["config"].get("type", "").endswith("ValueDrift")
    }
    bounds = {}
    for f in found:
        sk = drift.sketches[f.name]
        bounds[f.name] = sk.error_bound() if isinstance(sk, NumberSketch) else 0.0
        # Evidently keeps the model frame's float32 (its std is float32); ours is float64
        tol = bounds[f.name] + 1e-6 * theirs[f.name] + 1e-9
        assert abs(f.score - theirs[f.name]) <= tol, (f.name, f.score, theirs[f.name])
        assert f.drifted == (theirs[f.name] >= f.threshold), f.name
    assert len(found) >= 15 and bounds["lead_time"] == 0.0  # integer days: always exact
    if name == "march":  # the continuous price crosses the reference's CDF in some gaps
        assert 0 < bounds[PREDICTION] < 0.01
    else:  # summer prices are above the reference's everywhere: no crossing, exact
        assert bounds[PREDICTION] == 0.0 and ours.dataset_drift


def test_bound_is_the_gaps_where_the_distributions_cross() -> None:
    """Constructed: window values between reference values, at a crossing and not."""
    sk = NumberSketch.of_reference(pd.Series([0.0, 1.0, 2.0, 3.0]))
    sk.add(pd.Series([2.2, 2.6, 3.5, 3.9, np.nan]))  # the window's CDF stays under the reference's
    from scipy import stats

    raw = stats.wasserstein_distance([0, 1, 2, 3], [2.2, 2.6, 3.5, 3.9]) / np.std([0, 1, 2, 3])
    assert sk.missing == 1 and sk.rows == 4
    assert sk.wasserstein() == pytest.approx(raw) and sk.error_bound() == 0.0
    spread = NumberSketch.of_reference(pd.Series([0.0, 1.0, 2.0, 3.0]))
    spread.add(pd.Series([1.1, 1.9, 1.2, 1.8]))  # all four in the gap (1, 2): it crosses
    raw = stats.wasserstein_distance([0, 1, 2, 3], [1.1, 1.9, 1.2, 1.8]) / np.std([0, 1, 2, 3])
    assert 0 < abs(spread.wasserstein() - raw) <= spread.error_bound()
