"""Batch scoring of large files: CSV or Parquet in, Parquet out, in chunks.

The file is streamed (``pyarrow`` record batches), each chunk goes through the very same
:func:`services.scoring.fetch` and :func:`services.scoring.predict` as a real-time request,
and is appended to the output with a ``ParquetWriter``, so memory stays flat whatever the
file size and a batch row gets exactly the number ``/predict`` would answer.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from services import scoring
from services.models import CHAMPION, ModelLoader
from shipway.core.settings import Settings
from shipway.core.spec import Task, UseCaseSpec

log = logging.getLogger(__name__)
DEFAULT_CHUNK_ROWS = 20_000


@dataclass(frozen=True)
class BatchResult:
    rows: int
    seconds: float
    model_name: str
    model_version: str
    output: Path

    @property
    def rows_per_second(self) -> float:
        return self.rows / self.seconds if self.seconds else 0.0


def _csv_types(spec: UseCaseSpec) -> dict[str, pa.DataType]:
    """Entity keys stay strings even when they look numeric (a key, not a number)."""
    return {k: pa.string() for k in spec.entity_columns}


def read_chunks(path: Path, spec: UseCaseSpec, chunk_rows: int) -> tuple[Iterator[Any], int | None]:
    """Record batches of the input and the row count when cheaply known (Parquet metadata)."""
    suffix = path.suffix.lower()
    if suffix in (".parquet", ".pq"):
        pf = pq.ParquetFile(path)
        return pf.iter_batches(batch_size=chunk_rows), pf.metadata.num_rows
    if suffix in (".csv", ".txt") or path.name.endswith(".csv.gz"):
        reader = pacsv.open_csv(
            path,
            read_options=pacsv.ReadOptions(block_size=1 << 22),
            convert_options=pacsv.ConvertOptions(column_types=_csv_types(spec)),
        )
        return iter(reader), None
    raise ValueError(f"unsupported input {path}: expected .csv or .parquet")


def score_table(
    spec: UseCaseSpec, store: Any, model: Any, version: str, table: pa.Table | pa.RecordBatch
) -> pa.Table:
    """Score one chunk: keys and request fields through the real-time scoring path."""
    needed = spec.entity_columns + spec.request_field_names
    absent = [c for c in needed if c not in table.schema.names]
    if absent:
        raise ValueError(f"input lacks column(s): {', '.join(absent)}")
    rows = table.select(needed).to_pylist()
    feats = scoring.fetch(store, spec, rows)
    values = scoring.predict(spec, model, feats.x)
    out: dict[str, Any] = {k: table.column(k).cast(pa.string()) for k in spec.entity_columns}
    out["prediction"] = pa.array(values, type=pa.float64())
    if spec.target.task is Task.binary_classification:
        decided = [scoring.decide(spec, float(v)) for v in values]
        out["predicted_class"] = pa.array([d[0] for d in decided], type=pa.int8())
        out["label"] = pa.array([d[1] for d in decided], type=pa.string())
    out["missing_features"] = pa.array(feats.missing, type=pa.list_(pa.string()))
    out["model_version"] = pa.array([version] * len(values), type=pa.string())
    return pa.table(out)


def run(
    settings: Settings,
    spec: UseCaseSpec,
    input_path: Path,
    output_path: Path,
    *,
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
    progress: bool = True,
    store: Any = None,
) -> BatchResult:
    """Score ``input_path`` with the champion into ``output_path`` (Parquet), chunk by chunk.

    The output is written to a temporary name and renamed at the end, so a failed run
    never leaves a half file that looks complete.
    """
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from feature_repo.store import feature_store

    loader = ModelLoader(settings.tracking_uri, spec)
    champ_v, _ = loader.alias_versions(with_challenger=False)
    if champ_v is None:
        raise LookupError(f"no {CHAMPION} version of {spec.registered_model_name!r} to score with")
    served = loader.load(champ_v, CHAMPION)
    store = store or feature_store(settings)
    chunks, total = read_chunks(input_path, spec, chunk_rows)
    output_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = output_path.with_name(output_path.name + ".partial")
    started = time.perf_counter()
    n = 0
    writer: pq.ParquetWriter | None = None
    columns = [
        TextColumn("[bold]scoring[/] {task.description}"),
        BarColumn(),
        TextColumn(
            "{task.completed:,.0f}/{task.total:,.0f} rows"
            if total
            else "{task.completed:,.0f} rows"
        ),
        TimeElapsedColumn(),
    ]
    with Progress(*columns, disable=not progress, transient=False) as bar:
        task = bar.add_task(input_path.name, total=total)
        try:
            for chunk in chunks:
                if chunk.num_rows == 0:
                    continue
                table = score_table(spec, store, served.model, served.version, chunk)
                if writer is None:
                    writer = pq.ParquetWriter(tmp, table.schema)
                writer.write_table(table)
                n += table.num_rows
                bar.advance(task, table.num_rows)
        finally:
            if writer is not None:
                writer.close()
    if writer is None:  # empty input: still a valid (empty) output
        pq.write_table(pa.table({k: pa.array([], pa.string()) for k in spec.entity_columns}), tmp)
    tmp.replace(output_path)
    seconds = time.perf_counter() - started
    log.info("scored %d rows with %s v%s in %.1fs", n, served.name, served.version, seconds)
    return BatchResult(n, seconds, served.name, served.version, output_path)
