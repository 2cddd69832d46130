"""Drift benchmark: the monitor against a numpy floor on the same rows, in two sizes.

The floor is the least code that computes the same statistics exactly, with the whole
window in memory: per numeric column ``np.sort`` of the reference and of the window and
the exact Wasserstein-1 distance from the two sorted arrays (normed by the reference's
std, as the monitor); per categorical column both frequency tables (pandas'
``value_counts``: hashing, faster than ``np.unique``'s sort of strings) and the
Jensen-Shannon distance in numpy. The monitor is ``WindowDrift`` as ``run_window`` uses
it: chunks of the prediction log's size, the reference's profile computed once per model
version (timed separately, not in the ratio), every row of the window, no sampling.

- **same rows** (issue #15): a 1,000,000-row x 20-column window (14 numeric: continuous
  float32 and integer counts; 6 categorical strings), 6 columns shifted, against a
  250,000-row reference. Goal: monitor seconds <= 1.5x the floor's, and exactly the
  same per-column verdicts (recorded, with the largest score difference).
- **large window** (issue #18): 10,000,000 rows of the same columns, generated chunk by
  chunk, never whole, through the monitor; it outgrows ``KEEP_ROWS``, so the monitor
  reads the window a second time for the crossing gaps' values. The floor holds all
  rows. Reported: seconds of each and each one's peak RSS (each phase runs in its own
  process, so one's peak is not the other's); goal: the monitor's peak RSS <= 1 GB.
  The monitor's one-pass estimate (no second read) is reported beside it with the error
  bound it states: an option, never the headline.

Row generation is not timed. Run: ``python -m benchmarks.drift`` (``make bench-drift``);
``SHIPWAY_BENCH_DRIFT_ROWS`` and ``SHIPWAY_BENCH_DRIFT_BIG_ROWS`` set smaller windows,
``SHIPWAY_BENCH_DRIFT_REF_ROWS`` the reference and ``SHIPWAY_BENCH_DRIFT_KEEP_ROWS`` the
rows kept in memory (to smoke the second read) for a quick look.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pandas as pd

from benchmarks.common import Comparison, save, table
from monitoring.drift import DRIFT_THRESHOLD, KEEP_ROWS, WindowDrift
from monitoring.monitor import CHUNK_ROWS
from monitoring.profile import ReferenceProfile
from shipway.core.settings import Settings
from shipway.core.spec import Column, DType, UseCaseSpec
from shipway.core.usecases import load_usecase

ROWS = int(os.environ.get("SHIPWAY_BENCH_DRIFT_ROWS", "1000000"))
BIG_ROWS = int(os.environ.get("SHIPWAY_BENCH_DRIFT_BIG_ROWS", "10000000"))
REF_ROWS = int(os.environ.get("SHIPWAY_BENCH_DRIFT_REF_ROWS", "250000"))
KEEP = int(os.environ.get("SHIPWAY_BENCH_DRIFT_KEEP_ROWS", str(KEEP_ROWS)))
"""The monitor's ``keep_rows`` (its default; smaller to smoke the second read quickly)."""
RATIO_GOAL = "ratio <= 1.5"
RSS_GOAL_MB = 1024
"""The monitor's peak RSS with the 10M-row window streamed through it."""

CONTINUOUS = [f"x{i:02d}" for i in range(10)]
COUNTS = [f"k{i:02d}" for i in range(4)]
CATEGORIES = [f"c{i:02d}" for i in range(6)]
COLS = CONTINUOUS + COUNTS + CATEGORIES
SHIFTED = ["x07", "x08", "x09", "k03", "c04", "c05"]
LABELS = [np.array([f"{c}_{j}" for j in range(4 + 7 * i)], dtype=object) for i, c in enumerate(CATEGORIES)]  # fmt: skip


def spec() -> UseCaseSpec:
    """A use case whose request fields are the benchmark's columns (strings: categorical)."""
    base = load_usecase("hotel_rates", Settings())
    fields = [Column(name=c, dtype=DType.str if c in CATEGORIES else DType.float) for c in COLS]
    return base.model_copy(update={"request_fields": fields, "entity_features": []})


def frame(n: int, seed: list[int], shifted: bool) -> pd.DataFrame:
    """``n`` model-frame rows (numbers float32, categories strings); ``shifted``: the
    window's distribution, where the ``SHIFTED`` columns moved."""
    rng = np.random.default_rng(seed)
    out: dict[str, Any] = {}
    for i, c in enumerate(CONTINUOUS):
        move = 0.5 if shifted and c in SHIFTED else 0.0
        x = rng.normal(move, 1, n) if i % 2 else rng.gamma(2 + i, 1, n) + move * np.sqrt(2 + i)
        out[c] = x.astype(np.float32)
    for i, c in enumerate(COUNTS):
        out[c] = rng.poisson(3 + 2 * i + (3 if shifted and c in SHIFTED else 0), n).astype(
            np.float32
        )
    for c, labels in zip(CATEGORIES, LABELS, strict=True):
        p = 1.0 / np.arange(1, len(labels) + 1)  # Zipf-like frequencies
        if shifted and c in SHIFTED:
            p = p[::-1]
        out[c] = labels[rng.choice(len(labels), n, p=p / p.sum())]
    return pd.DataFrame(out)


def reference() -> pd.DataFrame:
    return frame(REF_ROWS, [0], shifted=False)


def chunks(rows: int) -> Iterator[pd.DataFrame]:
    """The window, one seeded chunk at a time (the same rows on every call)."""
    for k in range(-(-rows // CHUNK_ROWS)):
        yield frame(min(CHUNK_ROWS, rows - k * CHUNK_ROWS), [1, k], shifted=True)


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def read(take: Callable[[pd.DataFrame], None], rows: int) -> float:
    """Seconds ``take`` spends on every chunk of the window (generation not counted)."""
    seconds = 0.0
    for chunk in chunks(rows):
        t = time.perf_counter()
        take(chunk)
        seconds += time.perf_counter() - t
    return seconds


def monitor(rows: int) -> dict[str, Any]:
    """The monitor's drift on the window; the reference profile is built (and timed) first,
    as it is once per model version."""
    ref, sp = reference(), spec()
    t = time.perf_counter()
    profile = ReferenceProfile.build(sp, ref, COLS)
    t_profile = time.perf_counter() - t
    drift = WindowDrift(sp, ref, features=COLS, profile=profile, keep_rows=KEEP)
    seconds = read(drift.add, rows)
    t = time.perf_counter()
    one_pass, _ = drift.result(0.3, report=False)  # the estimate when not read again
    t_one = seconds + time.perf_counter() - t
    passes = 1
    if drift.needs_pass():
        passes = 2
        seconds += read(drift.refine, rows)
    t = time.perf_counter()
    result, _ = drift.result(0.3, report=False)
    seconds += time.perf_counter() - t
    assert result.current_rows == rows
    return {
        "seconds": seconds,
        "profile_seconds": t_profile,
        "passes": passes,
        "scores": {f.name: f.score for f in result.features},
        "error_bounds": {f.name: f.error_bound for f in result.features},
        "one_pass": {
            "seconds": t_one,
            "scores": {f.name: f.score for f in one_pass.features},
            "error_bounds": {f.name: f.error_bound for f in one_pass.features},
        },
        "peak_rss_mb": peak_rss_mb(),
    }


def wasserstein(ref: np.ndarray, cur: np.ndarray) -> float:
    """Exact Wasserstein-1 from the two sorted samples, over the reference's std."""
    u, v = np.sort(ref), np.sort(cur)
    points = np.sort(np.concatenate([u, v]))
    cdf_u = np.searchsorted(u, points[:-1], side="right") / len(u)
    cdf_v = np.searchsorted(v, points[:-1], side="right") / len(v)
    w = np.sum(np.abs(cdf_u - cdf_v) * np.diff(points.astype(np.float64)))
    return float(w) / max(float(np.std(u, dtype=np.float64)), 1e-3)


def jensenshannon(ref: np.ndarray, cur: np.ndarray) -> float:
    """Jensen-Shannon distance (natural log) between the two frequency tables."""
    both = pd.concat([pd.Series(ref).value_counts(), pd.Series(cur).value_counts()], axis=1)
    p, q = (both.fillna(0).to_numpy(np.float64) / [len(ref), len(cur)]).T
    m = (p + q) / 2
    with np.errstate(divide="ignore", invalid="ignore"):
        kl = np.nansum(p * np.log(p / m)) + np.nansum(q * np.log(q / m))
    return float(np.sqrt(kl / 2))


def floor(rows: int) -> dict[str, Any]:
    """The numpy floor on every row of the same window, held in memory."""
    ref = reference()
    parts = list(chunks(rows))
    window = {c: np.concatenate([p[c].to_numpy() for p in parts]) for c in COLS}
    del parts
    base = {c: ref[c].to_numpy() for c in COLS}
    t = time.perf_counter()
    scores = {
        c: jensenshannon(base[c], window[c]) if c in CATEGORIES else wasserstein(base[c], window[c])
        for c in COLS
    }
    return {"seconds": time.perf_counter() - t, "scores": scores, "peak_rss_mb": peak_rss_mb()}


def run_phase(name: str, rows: int) -> dict[str, Any]:
    """One phase in a fresh process: its own peak RSS, nothing left over from another."""
    out = subprocess.run(
        [sys.executable, "-m", "benchmarks.drift", name, str(rows)],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return dict(json.loads(out.strip().splitlines()[-1]))


def verdicts(scores: dict[str, float]) -> dict[str, bool]:
    return {c: scores[c] >= DRIFT_THRESHOLD for c in COLS}


def compare(label: str, rows: int) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """Monitor and floor on the same ``rows``-row window, each in its own process."""
    mon, flo = run_phase("monitor", rows), run_phase("floor", rows)
    ours, theirs = verdicts(mon["scores"]), verdicts(flo["scores"])
    drifted = [c for c, d in ours.items() if d]
    diff = max(abs(mon["scores"][c] - flo["scores"][c]) for c in COLS)
    if drifted != SHIFTED:  # the generator, not the monitor, would be wrong
        print(f"{label}: expected {SHIFTED} to drift, monitor flags {drifted}", file=sys.stderr)
    info = {
        "rows": rows,
        "reference_rows": REF_ROWS,
        "columns": {"continuous": CONTINUOUS, "counts": COUNTS, "categorical": CATEGORIES},
        "chunk_rows": CHUNK_ROWS,
        "monitor_passes": mon["passes"],
        "detected_by_monitor": drifted,
        "detected_by_floor": [c for c, d in verdicts(flo["scores"]).items() if d],
        "verdicts_differing": [c for c in COLS if ours[c] != theirs[c]],
        "max_abs_score_difference": diff,
        "seconds": {"monitor": mon["seconds"], "floor": flo["seconds"]},
        "reference_profile_seconds": mon["profile_seconds"],
        "peak_rss_mb": {"monitor": mon["peak_rss_mb"], "floor": flo["peak_rss_mb"]},
        "scores": {"monitor": mon["scores"], "floor": flo["scores"]},
    }
    return info, mon, flo


def main() -> None:
    if len(sys.argv) == 3:  # a phase, in its own process
        phase, rows = sys.argv[1], int(sys.argv[2])
        print(json.dumps(monitor(rows) if phase == "monitor" else floor(rows)))
        return
    same, mon, flo = compare("same rows", ROWS)
    big, bmon, bflo = compare("large window", BIG_ROWS)
    est = bmon["one_pass"]
    est_verdicts = verdicts(est["scores"])
    big["one_pass_estimate"] = {
        "seconds": est["seconds"],
        "max_error_bound": max(est["error_bounds"].values()),
        "max_abs_score_difference": max(abs(est["scores"][c] - bflo["scores"][c]) for c in COLS),
        "verdicts_identical": est_verdicts == verdicts(bflo["scores"]),
        "bound_holds": all(
            abs(est["scores"][c] - bflo["scores"][c]) <= est["error_bounds"][c] + 1e-9 for c in COLS
        ),
    }
    size = f"{ROWS:,} x {len(COLS)}"
    big_size = f"{BIG_ROWS:,} x {len(COLS)}"
    comps = [
        Comparison(
            f"{size}: monitor drift vs numpy floor, same rows", mon["seconds"], "s",
            flo["seconds"], RATIO_GOAL,
        ),
        Comparison(f"{size}: per-column verdicts differing from the floor",
                   len(same["verdicts_differing"]), "", None, "value == 0"),
        Comparison(f"{size}: reference profile, once per model version (context)",
                   mon["profile_seconds"], "s"),
        Comparison(f"{big_size}: monitor drift ({bmon['passes']} reads) vs numpy floor",
                   bmon["seconds"], "s", bflo["seconds"]),
        Comparison(f"{big_size}: per-column verdicts differing from the floor",
                   len(big["verdicts_differing"]), "", None, "value == 0"),
        Comparison(f"{big_size}: monitor peak RSS", bmon["peak_rss_mb"], "MB", None,
                   f"value <= {RSS_GOAL_MB}"),
        Comparison(f"{big_size}: floor peak RSS (window in memory)", bflo["peak_rss_mb"], "MB"),
        Comparison(f"{big_size}: one-pass estimate (context), max error bound "
                   f"{big['one_pass_estimate']['max_error_bound']:.2g}", est["seconds"], "s",
                   bflo["seconds"]),
    ]  # fmt: skip
    path = save(
        "drift",
        comps,
        {"same_rows": same, "large_window": big, "keep_rows": KEEP, "goal": RATIO_GOAL},
    )
    print(table("drift", comps))
    print(f"monitor and floor flag exactly {SHIFTED} in both windows; {path}")


if __name__ == "__main__":
    main()
