"""Drift of a window read in chunks, on the real hotel bookings.

The reference is January-February 2017, the window summer 2017 (the seasonal shift the
integration tests also see), every booking field the model reads straight from the
request, and the booked price in the prediction's place (a continuous column whose
values mostly fall between the reference's). Checked: chunks give the verdicts and
scores of the whole window at once, and those are Evidently's own on the whole window
(both exactly; the one-pass estimate of a window too large to keep within the bound the
summary computes, and exact again after the second read), and that both distances
equal a direct numpy/scipy computation on random data.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from scipy.spatial import distance

from monitoring.drift import PREDICTION, WindowDrift, _report
from monitoring.profile import column_kinds
from monitoring.sketch import CategorySketch, NumberSketch
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


def drift_in_chunks(
    spec: UseCaseSpec, ref: pd.DataFrame, window: pd.DataFrame, rows: int, **kw: int
) -> WindowDrift:
    drift = WindowDrift(spec, ref, features=features(ref), max_rows=500, **kw)
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


def evidently_scores(spec: UseCaseSpec, ref: pd.DataFrame, window: pd.DataFrame, found):
    kinds = column_kinds(spec, ref, [f.name for f in found])
    body = _report(ref, window, kinds, {f.name: f.method for f in found}).dict()  # every row
    return {
        m["config"]["column"]: float(m["value"])
        for m in body["metrics"]
        if m["config"].get("type", "").endswith("ValueDrift")
    }


@pytest.mark.parametrize("name", ["window", "march"])
def test_summaries_reproduce_evidently_on_the_whole_window(
    spec: UseCaseSpec, hotel: dict[str, pd.DataFrame], name: str
) -> None:
    ref, window = hotel["reference"], hotel[name]
    ours, _ = drift_in_chunks(spec, ref, window, 211).result(report=False)
    found = [f for f in [*ours.features, ours.prediction] if f is not None]
    theirs = evidently_scores(spec, ref, window, found)
    assert len(found) >= 15
    for f in found:
        # Evidently keeps the model frame's float32 (its std is float32); ours is float64
        assert f.error_bound == 0.0, f.name
        assert abs(f.score - theirs[f.name]) <= 1e-6 * theirs[f.name] + 1e-9, f.name
        assert f.drifted == (theirs[f.name] >= f.threshold), f.name

    # a window too large to keep (keep_rows=0): one pass gives an estimate within its
    # bound, the second read of the crossing gaps gives the exact scores again
    big = drift_in_chunks(spec, ref, window, 211, keep_rows=0)
    estimate, _ = big.result(report=False)
    bounds = {f.name: f.error_bound for f in estimate.features}
    assert estimate.prediction is not None
    bounds[PREDICTION] = estimate.prediction.error_bound
    for f in [*estimate.features, estimate.prediction]:
        assert abs(f.score - theirs[f.name]) <= bounds[f.name] + 1e-6 * theirs[f.name] + 1e-9
    assert bounds["lead_time"] == 0.0  # integer days: on the reference's support, exact
    if name == "march":  # the continuous price crosses the reference's CDF in some gaps
        assert 0 < bounds[PREDICTION] < 0.01 and big.needs_pass()
    else:  # summer prices are above the reference's everywhere: no crossing, exact
        assert bounds[PREDICTION] == 0.0 and estimate.dataset_drift
    for start in range(0, len(window), 300):
        big.refine(window.iloc[start : start + 300])
    assert not big.needs_pass()
    exact, _ = big.result(report=False)
    for a, b in zip([*exact.features, exact.prediction], found, strict=True):
        assert a.error_bound == 0.0 and a.score == pytest.approx(b.score, rel=1e-9, abs=1e-12)


def test_bound_is_the_gaps_where_the_distributions_cross() -> None:
    """Constructed: window values between reference values, at a crossing and not."""
    sk = NumberSketch.of_reference(pd.Series([0.0, 1.0, 2.0, 3.0]))
    sk.add(pd.Series([2.2, 2.6, 3.5, 3.9, np.nan]))  # the window's CDF stays under the reference's
    raw = stats.wasserstein_distance([0, 1, 2, 3], [2.2, 2.6, 3.5, 3.9]) / np.std([0, 1, 2, 3])
    assert sk.missing == 1 and sk.rows == 4
    assert sk.wasserstein() == pytest.approx(raw) and sk.error_bound() == 0.0
    spread = NumberSketch.of_reference(pd.Series([0.0, 1.0, 2.0, 3.0]))
    spread.add(pd.Series([1.1, 1.9, 1.2, 1.8]))  # all four in the gap (1, 2): it crosses
    raw = stats.wasserstein_distance([0, 1, 2, 3], [1.1, 1.9, 1.2, 1.8]) / np.std([0, 1, 2, 3])
    assert 0 < abs(spread.wasserstein() - raw) <= spread.error_bound()
    assert spread.needs_values() and list(spread.crossing()) == [4]
    spread.refine(pd.Series([1.9, 5.0, 1.1]))
    spread.refine(pd.Series([np.nan, 1.8, 1.2, -1.0]))
    assert spread.wasserstein() == pytest.approx(raw, rel=1e-12) and spread.error_bound() == 0
    other = NumberSketch.of_reference(pd.Series([0.0, 1.0, 2.0, 3.0]))
    other.add(pd.Series([1.1, 1.9, 1.2, 1.8]))
    other.refine(pd.Series([1.1, 1.9]))  # a second read that lost rows is refused
    with pytest.raises(ValueError, match="second read"):
        other.wasserstein()


def numpy_wasserstein(ref: np.ndarray, cur: np.ndarray) -> float:
    """The exact Wasserstein-1 distance from both sorted samples, normed as Evidently."""
    u, v = np.sort(ref), np.sort(cur)
    points = np.sort(np.concatenate([u, v]))
    cdf_u = np.searchsorted(u, points[:-1], side="right") / len(u)
    cdf_v = np.searchsorted(v, points[:-1], side="right") / len(v)
    return float(np.sum(np.abs(cdf_u - cdf_v) * np.diff(points))) / max(float(np.std(u)), 1e-3)


@pytest.mark.parametrize("seed", range(12))
def test_numeric_distance_is_the_exact_one_on_random_data(seed: int) -> None:
    """Continuous, integer, tied and out-of-range values; any chunking; kept or re-read."""
    rng = np.random.default_rng(seed)
    n_ref, n_cur = int(rng.integers(2, 4000)), int(rng.integers(1, 6000))
    if seed % 3 == 0:  # counts: most values on the reference's support
        ref = rng.poisson(4, n_ref).astype(float)
        cur = rng.poisson(4 + seed % 2, n_cur).astype(float)
    elif seed % 3 == 1:  # continuous, close to the reference: the CDFs cross often
        ref, cur = rng.normal(size=n_ref), rng.normal(0.05 * seed, 1, n_cur)
    else:  # float32 model-frame values, a wider window
        ref = rng.gamma(2, 30, n_ref).astype(np.float32).astype(float)
        cur = rng.gamma(2, 40, n_cur).astype(np.float32).astype(float)
    exact = numpy_wasserstein(ref, cur)
    assert exact == pytest.approx(stats.wasserstein_distance(ref, cur) / max(np.std(ref), 1e-3))
    parts = np.array_split(cur, int(rng.integers(1, 7)))
    kept = NumberSketch.of_reference(pd.Series(ref))
    reread = kept.empty_like()
    for p in parts:
        kept.add(p, keep=True)
        reread.add(p)
    for p in np.array_split(cur, 3):
        reread.refine(p)
    for sk in (kept, reread):
        assert sk.error_bound() == 0.0
        assert sk.wasserstein() == pytest.approx(exact, rel=1e-9, abs=1e-12)


@pytest.mark.parametrize("seed", range(6))
def test_categorical_distance_is_the_exact_one_on_random_data(seed: int) -> None:
    rng = np.random.default_rng(seed)
    labels = np.array([f"c{i}" for i in range(12)])
    ref = rng.choice(labels[:8], int(rng.integers(1, 3000)), p=rng.dirichlet(np.ones(8)))
    cur = rng.choice(labels, int(rng.integers(1, 3000)), p=rng.dirichlet(np.ones(12)))
    keys = np.union1d(ref, cur)  # numpy: both frequency tables on every value seen
    p = (ref[:, None] == keys).sum(0) / len(ref)
    q = (cur[:, None] == keys).sum(0) / len(cur)
    exact = float(distance.jensenshannon(p, q))
    sk = CategorySketch.of_reference(pd.Series(ref))
    holes = cur.astype(object)
    holes[:: 7 + seed] = None  # missing values: counted apart, not in the table
    for part in np.array_split(np.concatenate([cur, holes[holes == None]]), 4):  # noqa: E711
        sk.add(pd.Series(part))
    assert sk.missing == int((holes == None).sum()) and sk.rows == len(cur)  # noqa: E711
    assert sk.jensenshannon() == pytest.approx(exact, rel=1e-9, abs=1e-12)
