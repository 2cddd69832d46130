"""Drift benchmark: the monitor's drift computation on 1M rows x 20 numeric columns vs the
floor of computing the same per-column statistic directly with scipy, in the same run.

The monitor compares continuous columns with the Wasserstein distance normed by the
reference's standard deviation (Evidently's ``wasserstein``); the floor is exactly that,
``scipy.stats.wasserstein_distance`` per column on every row. The monitor samples windows
above ``DEFAULT_MAX_ROWS`` rows (the issue allows it where detection holds): the
benchmark checks that both find exactly the shifted columns, and
tests/integration/test_monitor.py checks it on the real shifted hotel window. The KS
statistic is timed too, for context. Run: ``python -m benchmarks.drift`` (``make bench``).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from benchmarks.common import Comparison, save, table
from monitoring.drift import DEFAULT_MAX_ROWS, DRIFT_THRESHOLD, compute_drift
from shipway.core.settings import Settings
from shipway.core.usecases import load_usecase

ROWS, COLUMNS, SHIFTED = 1_000_000, 20, 6
GOAL = 3.0


def data(seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame, list[str]]:
    """Reference and current windows; the last SHIFTED columns move by 0.5 std."""
    rng = np.random.default_rng(seed)
    cols = [f"x{i:02d}" for i in range(COLUMNS)]
    shift = np.r_[np.zeros(COLUMNS - SHIFTED), np.full(SHIFTED, 0.5)]
    ref = pd.DataFrame(rng.normal(size=(ROWS, COLUMNS)), columns=cols)
    cur = pd.DataFrame(rng.normal(loc=shift, size=(ROWS, COLUMNS)), columns=cols)
    return ref, cur, cols


def best(fn: Callable[[], Any], repeat: int = 2) -> tuple[float, Any]:
    times, out = [], None
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t)
    return min(times), out


def main() -> None:
    ref, cur, cols = data()
    spec = load_usecase("hotel_rates", Settings())  # x* are not in it: plain numeric columns

    def wasserstein() -> list[str]:
        drifted = []
        for c in cols:
            a, b = ref[c].to_numpy(), cur[c].to_numpy()
            if stats.wasserstein_distance(a, b) / max(float(np.std(a)), 1e-3) >= DRIFT_THRESHOLD:
                drifted.append(c)
        return drifted

    def ks() -> None:
        for c in cols:
            stats.ks_2samp(ref[c].to_numpy(), cur[c].to_numpy())

    def monitor(max_rows: int | None = DEFAULT_MAX_ROWS) -> list[str]:
        result, _ = compute_drift(spec, ref, cur, features=cols, drift_share=0.3, max_rows=max_rows)
        return result.drifted

    compute_drift(spec, ref.head(1000), cur.head(1000), features=cols)  # import/JIT warm-up
    t_floor, floor_drifted = best(wasserstein)
    t_ks, _ = best(ks)
    t_mon, mon_drifted = best(monitor)
    t_full, full_drifted = best(lambda: monitor(None), repeat=1)
    expected = cols[-SHIFTED:]
    assert floor_drifted == expected, floor_drifted
    assert mon_drifted == full_drifted == expected, (mon_drifted, full_drifted)
    comps = [
        Comparison(
            "monitor drift vs scipy Wasserstein floor", t_mon, "s", t_floor, f"ratio <= {GOAL:g}"
        ),
        Comparison("  same vs scipy KS (context)", t_mon, "s", t_ks),
        Comparison("  monitor unsampled vs Wasserstein (context)", t_full, "s", t_floor),
    ]
    comps[0].met = (comps[0].ratio or 99) <= GOAL
    path = save(
        "drift",
        comps,
        {
            "rows": ROWS,
            "columns": COLUMNS,
            "shifted_columns": expected,
            "detected_by_monitor": mon_drifted,
            "detected_by_floor": floor_drifted,
            "max_rows": DEFAULT_MAX_ROWS,
            "detected_unsampled": full_drifted,
            "seconds": {
                "monitor_sampled": t_mon,
                "monitor_unsampled": t_full,
                "scipy_wasserstein": t_floor,
                "scipy_ks": t_ks,
            },
        },
    )
    print(table("drift", comps))
    print(f"monitor (sample {DEFAULT_MAX_ROWS:,} rows per side), unsampled monitor and floor all")
    print(f"detect exactly the {SHIFTED} shifted columns of {COLUMNS}; results: {path}")


if __name__ == "__main__":
    main()
