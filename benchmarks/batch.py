"""Batch benchmark: the streamed job vs a bare in-process read -> predict -> write.

Both score the same Parquet file (real bookings repeated to ``SHIPWAY_BENCH_BATCH_ROWS``,
default 100k) with the champion and the same Feast online retrieval; the bare version
reads the whole file at once, skips chunking, progress, the missing-feature flags and
the atomic rename. Goal: the job keeps >= 70% of the bare rows/s.
Run alone: ``python -m benchmarks.batch``.
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path
from typing import Any

import pandas as pd

from benchmarks.common import Comparison, table
from shipway.settings import Settings, get_settings
from shipway.spec import UseCaseSpec
from shipway.usecases import load_usecase

ROWS = int(os.environ.get("SHIPWAY_BENCH_BATCH_ROWS", "100000"))


def make_input(settings: Settings, spec: UseCaseSpec, path: Path, rows: int) -> Path:
    events = pd.read_parquet(settings.usecase_data(spec.name) / "features" / "events.parquet")
    cols = spec.entity_columns + spec.request_field_names
    reps = -(-rows // len(events))
    pd.concat([events[cols]] * reps, ignore_index=True).head(rows).to_parquet(path, index=False)
    return path


def bare(settings: Settings, spec: UseCaseSpec, store: Any, src: Path, dst: Path) -> float:
    """Whole file in memory, one retrieval, one predict, one write: rows/s (the same
    online read as the job, without its chunking, missing-feature policy and flags)."""
    from pipelines.steps import registry
    from services.scoring import read_online
    from shipway.modelframe import model_frame

    registry.connect(settings.tracking_uri)
    model = registry.load(f"models:/{spec.registered_model_name}@{registry.CHAMPION}")
    t = time.perf_counter()
    df = pd.read_parquet(src)
    feats = pd.DataFrame(read_online(store, spec, df.to_dict("records")))
    df["prediction"] = model.predict(model_frame(spec, feats))
    df[[*spec.entity_columns, "prediction"]].to_parquet(dst, index=False)
    return len(df) / (time.perf_counter() - t)


def batch_comparison(settings: Settings, spec: UseCaseSpec) -> tuple[Comparison, dict[str, Any]]:
    from feature_repo.store import feature_store
    from services.batch import run

    store = feature_store(settings)
    with tempfile.TemporaryDirectory(prefix="shipway-batch-bench-") as tmp:
        src = make_input(settings, spec, Path(tmp) / "in.parquet", ROWS)
        bare_rps = bare(settings, spec, store, src, Path(tmp) / "bare.parquet")
        res = run(settings, spec, src, Path(tmp) / "job.parquet", progress=False, store=store)
    comp = Comparison(
        f"batch job rows/s ({ROWS:,} rows) vs bare", res.rows_per_second, "rows/s", bare_rps,
        "ratio >= 0.7",
    )  # fmt: skip
    comp.met = (comp.ratio or 0) >= 0.7
    return comp, {"rows": ROWS, "job_rows_per_s": res.rows_per_second, "bare_rows_per_s": bare_rps}


def main() -> None:
    settings = get_settings()
    settings.export_env()
    comp, _ = batch_comparison(settings, load_usecase(settings.usecase, settings))
    print(table("batch", [comp]))


if __name__ == "__main__":
    main()
