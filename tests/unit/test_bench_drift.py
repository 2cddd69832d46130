"""The drift benchmark's floor computes the statistics it claims, and its monitor sees the
benchmark's columns as a use case would (strings categorical, numbers numerical): a
floor that computed something else would make the ratio meaningless. No timing here."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats
from scipy.spatial import distance

from benchmarks import drift as bench
from monitoring.drift import WindowDrift


@pytest.mark.parametrize("seed", range(4))
def test_floor_statistics_are_scipys(seed: int) -> None:
    rng = np.random.default_rng(seed)
    a = rng.normal(size=500).astype(np.float32)
    b = rng.normal(0.3, 1.2, 700).astype(np.float32)
    expected = stats.wasserstein_distance(a, b) / np.std(a.astype(np.float64))
    assert bench.wasserstein(a, b) == pytest.approx(expected, rel=1e-9)
    labels = np.array(["u", "v", "w", "x"], dtype=object)
    ref, cur = rng.choice(labels[:3], 400), rng.choice(labels, 300)
    p = np.array([(ref == v).mean() for v in labels])
    q = np.array([(cur == v).mean() for v in labels])
    assert bench.jensenshannon(ref, cur) == pytest.approx(distance.jensenshannon(p, q), rel=1e-9)


def test_the_monitor_and_the_floor_agree_on_a_small_window() -> None:
    ref = bench.frame(3000, [0], shifted=False)
    window = bench.frame(4000, [1, 0], shifted=True)
    drift = WindowDrift(bench.spec(), ref, features=bench.COLS, keep_rows=1000)
    drift.add(window.iloc[:2000])
    drift.add(window.iloc[2000:])
    assert drift.needs_pass()  # past keep_rows: the second read is exercised
    for part in (window.iloc[:1500], window.iloc[1500:]):
        drift.refine(part)
    result, _ = drift.result(report=False)
    assert {f.name: f.kind for f in result.features} == {
        c: "categorical" if c in bench.CATEGORIES else "numerical" for c in bench.COLS
    }
    for f in result.features:
        a, b = ref[f.name].to_numpy(), window[f.name].to_numpy()
        floor = bench.jensenshannon(a, b) if f.kind == "categorical" else bench.wasserstein(a, b)
        assert f.score == pytest.approx(floor, rel=1e-9, abs=1e-12), f.name
    assert result.drifted == bench.SHIFTED
