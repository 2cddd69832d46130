"""Drift benchmark: a 10M-row window in bounded memory vs the in-memory numpy/scipy floor.

The monitor reads its window in chunks and keeps per-column summaries sized by the
reference (``monitoring.drift.WindowDrift``), so its memory does not grow with the
window. Here a 10,000,000-row x 10-column window (the last 3 columns shifted by 0.5 std)
is generated chunk by chunk, never held whole, and fed to the monitor's drift state; then
the same rows are built in memory and the floor computes the same statistic directly,
``scipy.stats.wasserstein_distance`` per column on every row (numpy sorting), normed by
the reference's std. Reported: seconds of drift work for each (row generation excluded),
peak RSS of the process after each phase (the monitor runs first, so its peak is not the
floor's), and that both flag exactly the shifted columns with scores within the bound
the summaries compute. Evidently's report page (a 50,000-row sample) is not timed: its
cost does not grow with the window. Run: ``python -m benchmarks.drift`` (``make
bench-drift``); ``SHIPWAY_BENCH_DRIFT_ROWS`` sets a smaller window for a quick look.
"""

from __future__ import annotations

import os
import resource
import time
from collections.abc import Iterator

import numpy as np
import pandas as pd
from scipy import stats

from benchmarks.common import Comparison, save, table
from monitoring.drift import DRIFT_THRESHOLD, WindowDrift
from monitoring.sketch import NumberSketch
from shipway.core.settings import Settings
from shipway.core.usecases import load_usecase

ROWS = int(os.environ.get("SHIPWAY_BENCH_DRIFT_ROWS", "10000000"))
COLUMNS, SHIFTED, REF_ROWS, CHUNK = 10, 3, 50_000, 250_000
RSS_GOAL_MB = 1024
"""The monitor's peak RSS with the whole window streamed through it."""
COLS = [f"x{i:02d}" for i in range(COLUMNS)]
SHIFT = np.r_[np.zeros(COLUMNS - SHIFTED), np.full(SHIFTED, 0.5)]


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def reference() -> pd.DataFrame:
    rng = np.random.default_rng(0)
    return pd.DataFrame(rng.normal(size=(REF_ROWS, COLUMNS)).astype(np.float32), columns=COLS)


def chunks() -> Iterator[np.ndarray]:
    """The window, one seeded chunk at a time (the same rows on every call)."""
    for k in range(-(-ROWS // CHUNK)):
        n = min(CHUNK, ROWS - k * CHUNK)
        yield np.random.default_rng([1, k]).normal(loc=SHIFT, size=(n, COLUMNS)).astype(np.float32)


def monitor(ref: pd.DataFrame) -> tuple[float, WindowDrift]:
    spec = load_usecase("hotel_rates", Settings())  # x* are not in it: plain numeric columns
    drift = WindowDrift(spec, ref, features=COLS)
    seconds = 0.0
    for block in chunks():
        frame = pd.DataFrame(block, columns=COLS)
        t = time.perf_counter()
        drift.add(frame)
        seconds += time.perf_counter() - t
    t = time.perf_counter()
    drift.result(0.3, report=False)
    return seconds + time.perf_counter() - t, drift


def floor(ref: pd.DataFrame) -> tuple[float, dict[str, float]]:
    window = np.concatenate(list(chunks()))  # every row in memory, as the floor needs
    t = time.perf_counter()
    scores = {}
    for j, c in enumerate(COLS):
        a = ref[c].to_numpy(np.float64)
        scores[c] = stats.wasserstein_distance(a, window[:, j]) / max(float(np.std(a)), 1e-3)
    return time.perf_counter() - t, scores


def main() -> None:
    ref = reference()
    base_rss = peak_rss_mb()
    t_mon, drift = monitor(ref)
    mon_rss = peak_rss_mb()
    result, _ = drift.result(0.3, report=False)
    t_floor, exact = floor(ref)
    floor_rss = peak_rss_mb()
    expected = COLS[-SHIFTED:]
    floor_drifted = [c for c in COLS if exact[c] >= DRIFT_THRESHOLD]
    assert result.drifted == floor_drifted == expected, (result.drifted, floor_drifted)
    assert result.current_rows == ROWS
    for f in result.features:
        sk = drift.sketches[f.name]
        assert isinstance(sk, NumberSketch)
        assert abs(f.score - exact[f.name]) <= sk.error_bound() + 1e-6 * exact[f.name], f.name
    comps = [
        Comparison("monitor drift (chunked) vs scipy floor (in memory)", t_mon, "s", t_floor),
        Comparison("  monitor peak RSS", mon_rss, "MB", None, f"value <= {RSS_GOAL_MB}"),
        Comparison("  floor peak RSS (whole window in memory)", floor_rss, "MB"),
    ]
    comps[1].met = mon_rss <= RSS_GOAL_MB
    path = save(
        "drift",
        comps,
        {
            "rows": ROWS,
            "columns": COLUMNS,
            "chunk_rows": CHUNK,
            "reference_rows": REF_ROWS,
            "shifted_columns": expected,
            "detected_by_monitor": result.drifted,
            "detected_by_floor": floor_drifted,
            "peak_rss_mb": {"start": base_rss, "after_monitor": mon_rss, "after_floor": floor_rss},
            "seconds": {"monitor": t_mon, "scipy_wasserstein": t_floor},
            "max_abs_score_difference": max(abs(f.score - exact[f.name]) for f in result.features),
        },
    )
    print(table("drift", comps))
    print(f"{ROWS:,} rows x {COLUMNS}: monitor and floor both flag exactly {expected}; {path}")


if __name__ == "__main__":
    main()
