"""Batch scoring of one file in one process: CSV or Parquet in, Parquet out, in chunks.

The file is streamed (``pyarrow`` record batches); each chunk is scored by
:func:`shipway.scoring.tables.score_table`, the code a shard of the KFP batch pipeline
(``pipelines/batch.py``) runs, through the same online features and exact scorer as a
real-time request, and appended to the output with a ``ParquetWriter``, so memory stays
flat whatever the file size and a batch row gets exactly the number ``/predict`` would
answer. The champion is pinned once at start. For inputs that outgrow one process, run the
pipeline (``shipway batch run``).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from shipway.core.settings import Settings
from shipway.core.spec import UseCaseSpec
from shipway.scoring import sources, tables
from shipway.scoring.models import load_version, pin_champion

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

    if sources.file_format(str(input_path)) is None:
        raise ValueError(f"unsupported input {input_path}: expected .csv or .parquet")
    (piece,) = sources.list_input(str(input_path))
    pinned = pin_champion(settings.tracking_uri, spec)
    _, scorer = load_version(spec, pinned.name, pinned.version)
    store = store or feature_store(settings)
    total = piece.rows if piece.rows >= 0 else None
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
    chunks = sources.read_piece(pafs.LocalFileSystem(), piece, chunk_rows, spec.entity_columns)
    with Progress(*columns, disable=not progress, transient=False) as bar:
        task = bar.add_task(input_path.name, total=total)
        try:
            for _, chunk in chunks:
                if chunk.num_rows == 0:
                    continue
                table = tables.score_table(spec, store, scorer, pinned, chunk, threads=0)
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
    log.info("scored %d rows with %s v%s in %.1fs", n, pinned.name, pinned.version, seconds)
    return BatchResult(n, seconds, pinned.name, pinned.version, output_path)
