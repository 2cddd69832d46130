"""Batch benchmarks: the scoring code vs the least work that gives the same answers, and
the KFP batch pipeline on kfp.local with 2 shards vs 1 (issue 18).

1. **Job vs floor.** Both score the same Parquet file (real bookings repeated to
   ``SHIPWAY_BENCH_BATCH_ROWS``, default 10 million, 1% of them with entity keys the store
   has never seen) with the champion. The floor does only what any implementation must:
   read the file (pyarrow), look each *unique* entity key up in the online store once,
   build the float32 matrix with numpy (the fitted encoder's own category codes, the
   declared defaults for keys the store lacks), call the LightGBM ``Booster``, write
   Parquet. The job (``services.batch.run``, the same ``shipway.scoring.tables`` code a
   pipeline shard runs) adds what the product needs: chunked streaming, missing-feature
   flags, the model name, version, feature service and data version on every row and an
   atomic rename. Before anything is timed both run once and must give the same
   predictions exactly; then ``SHIPWAY_BENCH_BATCH_ROUNDS`` rounds (default 3) alternate
   floor, job, so drift in the machine's load hits both; each side's best round is
   compared. Goal: the job keeps >= 70% of the floor's rows/s.
2. **Pipeline, 2 shards vs 1.** The batch pipeline on kfp.local, the whole run (plan,
   shards, commit, every component a process), on the same file: 2 shards 2 at a time
   against 1 shard, alternating, ``SHIPWAY_BENCH_BATCH_PIPELINE_ROUNDS`` rounds (default
   2), best of each. Goal on 2 cores: >= 1.6x the rows/s of one shard.

Run alone: ``python -m benchmarks.batch`` (``make bench-batch``); results in
``benchmarks/results/batch.json``. ``SHIPWAY_BENCH_BATCH_PIPELINE=0`` skips part 2.
"""

from __future__ import annotations

import io
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from benchmarks.common import Comparison, save, table
from benchmarks.procs import load_average
from shipway.core.modelframe import MISSING_CATEGORY
from shipway.core.settings import Settings
from shipway.core.spec import UseCaseSpec
from shipway.scoring.rowscorer import TreeRows, predictor

ROWS = int(os.environ.get("SHIPWAY_BENCH_BATCH_ROWS", "10000000"))
ROUNDS = int(os.environ.get("SHIPWAY_BENCH_BATCH_ROUNDS", "3"))
PIPELINE_ROUNDS = int(os.environ.get("SHIPWAY_BENCH_BATCH_PIPELINE_ROUNDS", "2"))
GOAL = 0.7
SHARD_GOAL = 1.6
ROW_GROUP = 1_000_000
UNSEEN_EVERY = 100


def make_input(settings: Settings, spec: UseCaseSpec, path: Path, rows: int) -> Path:
    """Real bookings repeated to ``rows``; one row in ``UNSEEN_EVERY`` per entity carries a
    key the store has never seen, so the declared defaults are part of what is compared."""
    events = pd.read_parquet(settings.usecase_data(spec.name) / "features" / "events.parquet")
    cols = spec.entity_columns + spec.request_field_names
    reps = -(-rows // len(events))
    frame = pd.concat([events[cols]] * reps, ignore_index=True).head(rows)
    for i, key in enumerate(spec.entity_columns):
        frame.loc[i::UNSEEN_EVERY, key] = f"{key}_never_seen"
    frame.to_parquet(path, index=False, row_group_size=ROW_GROUP)
    return path


def champion_tree(settings: Settings, spec: UseCaseSpec) -> TreeRows:
    """The champion's fitted encoder tables and estimator (shipway.scoring.rowscorer checked them
    against the sklearn pipeline); the floor needs a LightGBM Booster inside."""
    from shipway.core import registry

    registry.connect(settings.tracking_uri)
    model = registry.load(f"models:/{spec.registered_model_name}@{registry.CHAMPION}")
    tree = predictor(spec, model)
    if not isinstance(tree, TreeRows) or not hasattr(tree.estimator, "booster_"):
        raise SystemExit("the batch floor needs a LightGBM champion with the learner's layout")
    return tree


def _distinct(column: pa.ChunkedArray) -> tuple[list[str], np.ndarray]:
    """Distinct values of a column as strings (null -> the model frame's missing
    category) and each row's index into them (Arrow's hash-based dictionary encoding)."""
    text = pc.fill_null(column.cast(pa.string()), MISSING_CATEGORY).combine_chunks()
    encoded = text.dictionary_encode()
    return encoded.dictionary.to_pylist(), encoded.indices.to_numpy()


def _codes(column: pa.ChunkedArray, codes: dict[str, float], unknown: float) -> np.ndarray:
    """Category codes of a column: each distinct value looked up once."""
    distinct, inverse = _distinct(column)
    return np.array([codes.get(v, unknown) for v in distinct], np.float32)[inverse]


def floor(spec: UseCaseSpec, store: Any, tree: TreeRows, src: Path, dst: Path) -> np.ndarray:
    """Parquet in, one online read per unique key, numpy, Booster, Parquet out."""
    data = pq.read_table(src)
    stored: dict[str, np.ndarray] = {}
    for ef in spec.entity_features:
        distinct, inverse = _distinct(data.column(ef.entity))
        refs = [f"{spec.feature_view_name(ef.entity)}:{a.name}" for a in ef.aggregates]
        rows = [{ef.entity: k} for k in distinct]
        got = store.get_online_features(features=refs, entity_rows=rows).to_dict()
        for a in ef.aggregates:  # the declared policy: a key the store lacks gets the default
            values = np.array([np.nan if v is None else v for v in got[a.name]], np.float32)
            values[np.isnan(values)] = np.nan if a.default is None else a.default
            stored[a.name] = values[inverse]
    parts = [
        _codes(data.column(c), t, tree.unknown) for c, t in zip(tree.cats, tree.codes, strict=True)
    ]
    parts += [
        stored[c] if c in stored else data.column(c).to_numpy().astype(np.float32)
        for c in tree.nums
    ]
    prediction = np.asarray(tree.estimator.booster_.predict(np.column_stack(parts)), np.float64)
    out = {k: data.column(k).cast(pa.string()) for k in spec.entity_columns}
    pq.write_table(pa.table({**out, "prediction": prediction}), dst)
    return prediction


def batch_comparison(
    settings: Settings, spec: UseCaseSpec, src: Path | None = None
) -> tuple[Comparison, dict[str, Any]]:
    """Part 1 (see the module docstring); on ``src`` when given, else on a fresh input."""
    if src is None:
        with tempfile.TemporaryDirectory(prefix="shipway-batch-bench-") as tmp:
            made = make_input(settings, spec, Path(tmp) / "in.parquet", ROWS)
            return batch_comparison(settings, spec, made)
    from feature_repo.store import feature_store
    from services.batch import run

    store = feature_store(settings)
    tree = champion_tree(settings, spec)
    floor_rps: list[float] = []
    job_rps: list[float] = []
    with tempfile.TemporaryDirectory(prefix="shipway-batch-out-") as tmp:
        floor_out, job_out = Path(tmp) / "floor.parquet", Path(tmp) / "job.parquet"
        want = floor(spec, store, tree, src, floor_out)  # untimed: the answers must agree
        run(settings, spec, src, job_out, progress=False, store=store)
        got = pq.read_table(job_out).column("prediction").to_numpy()
        same(want, got, "job")
        for _ in range(ROUNDS):  # A, B, A, B: the machine's drift hits both sides
            t = time.perf_counter()
            floor(spec, store, tree, src, floor_out)
            floor_rps.append(ROWS / (time.perf_counter() - t))
            res = run(settings, spec, src, job_out, progress=False, store=store)
            job_rps.append(res.rows_per_second)
    comp = Comparison(
        f"batch job rows/s ({ROWS:,} rows) vs floor", max(job_rps), "rows/s", max(floor_rps),
        f"ratio >= {GOAL}",
    )  # fmt: skip
    return comp, {"rows": ROWS, "rounds": ROUNDS, "job_rows_per_s": job_rps,
                  "floor_rows_per_s": floor_rps, "same_predictions": True}  # fmt: skip


def same(want: np.ndarray, got: np.ndarray, what: str) -> None:
    """Refuse to time two different computations."""
    if want.shape != got.shape or not np.array_equal(want, got):
        diff = np.max(np.abs(want - got)) if want.shape == got.shape else "shape"
        raise SystemExit(f"floor and {what} disagree ({diff}): the comparison would be void")


def pipeline_comparison(
    settings: Settings, spec: UseCaseSpec, src: Path, want: np.ndarray
) -> tuple[Comparison, dict[str, Any]]:
    """Part 2: the pipeline on kfp.local, 2 shards 2 at a time vs 1 shard."""
    from pipelines.batchrun import BatchJob, run_batch_local
    from pipelines.runner import PassThrough
    from pipelines.steps.batch import read_output

    rps: dict[int, list[float]] = {1: [], 2: []}
    quiet = PassThrough(io.StringIO())  # timing only: the components' output is dropped
    with tempfile.TemporaryDirectory(prefix="shipway-batch-kfp-") as tmp:
        for r in range(PIPELINE_ROUNDS):
            for shards in (1, 2):
                out = Path(tmp) / f"out-{shards}-{r}"
                job = BatchJob(spec.name, str(src), str(out), shards=shards, parallelism=shards)
                t = time.perf_counter()
                manifest = run_batch_local(settings, job, reporter=quiet)
                rps[shards].append(ROWS / (time.perf_counter() - t))
                if manifest["rows"] != ROWS:
                    raise SystemExit(f"{shards} shard(s) scored {manifest['rows']} of {ROWS}")
                if r == 0:  # the same answers as the floor, row by row (row_key = file#row)
                    _, table = read_output(str(out))
                    order = np.argsort(
                        [int(k.rsplit("#", 1)[1]) for k in table["row_key"].to_pylist()]
                    )
                    same(want, table["prediction"].to_numpy()[order], f"{shards}-shard pipeline")
                shutil.rmtree(out)
    comp = Comparison(
        f"batch pipeline (kfp.local, {ROWS:,} rows) rows/s: 2 shards vs 1", max(rps[2]),
        "rows/s", max(rps[1]), f"ratio >= {SHARD_GOAL}",
    )  # fmt: skip
    return comp, {"rounds": PIPELINE_ROUNDS, "one_shard_rows_per_s": rps[1],
                  "two_shards_rows_per_s": rps[2]}  # fmt: skip


def main() -> None:
    from benchmarks.serving import state  # the serving benchmark's: trained once if absent

    settings, spec = state()
    settings.export_env()
    load0 = load_average()
    with tempfile.TemporaryDirectory(prefix="shipway-batch-bench-") as tmp:
        src = make_input(settings, spec, Path(tmp) / "in.parquet", ROWS)
        comp, raw = batch_comparison(settings, spec, src)
        comps, extra = [comp], {"job": raw}
        if os.environ.get("SHIPWAY_BENCH_BATCH_PIPELINE", "1") != "0":
            from feature_repo.store import feature_store

            want = floor(spec, feature_store(settings), champion_tree(settings, spec), src,
                         Path(tmp) / "floor.parquet")  # fmt: skip
            kfp_comp, extra["pipeline"] = pipeline_comparison(settings, spec, src, want)
            comps.append(kfp_comp)
    extra["load_average"] = {"before": load0, "after": load_average()}
    path = save("batch", comps, extra)
    print(table("batch", comps))
    print(f"results: {path}")


if __name__ == "__main__":
    main()
