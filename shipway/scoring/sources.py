"""Batch input: Parquet datasets or CSV files, on a local path or an object-store URI.

The input is listed once (files in sorted order, with Parquet row counts from the footer)
and cut into :class:`Piece` row ranges, so shards can score disjoint parts of one big
file. Every path goes through ``pyarrow.fs`` (local paths, ``s3://`` with the usual
``AWS_*`` environment, ``gs://``, ``abfs://``), so local runs and cluster runs read the
same way.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.fs as pafs
import pyarrow.parquet as pq

PARQUET = (".parquet", ".pq")
CSV = (".csv", ".csv.gz", ".txt")


@dataclass(frozen=True)
class Piece:
    """Rows ``[start, stop)`` of one input file (CSV: the whole file, ``stop`` = -1)."""

    path: str
    """The file's path on the input filesystem."""
    name: str
    """The file's path relative to the input (what a row key names)."""
    fmt: str
    """``parquet`` or ``csv``."""
    start: int = 0
    stop: int = -1

    @property
    def rows(self) -> int:
        """Rows in the piece (-1: unknown until read, a CSV file)."""
        return self.stop - self.start if self.stop >= 0 else -1

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def filesystem(uri: str) -> tuple[pafs.FileSystem, str]:
    """The filesystem of a local path or object-store URI, and the path on it."""
    if "://" not in uri:
        return pafs.LocalFileSystem(), str(Path(uri).expanduser().resolve())
    return pafs.FileSystem.from_uri(uri)


def file_format(path: str) -> str | None:
    """``parquet``, ``csv`` or None (not a batch input file), by the name."""
    low = path.lower()
    if low.endswith(PARQUET):
        return "parquet"
    if low.endswith(CSV):
        return "csv"
    return None


def list_input(uri: str) -> list[Piece]:
    """One piece per data file of ``uri`` (a file or a folder, recursively; hidden and
    ``_``-prefixed files skipped), Parquet ones with their row counts."""
    fs, root = filesystem(uri)
    info = fs.get_file_info(root)
    if info.type == pafs.FileType.NotFound:
        raise FileNotFoundError(f"batch input {uri!r} does not exist")
    if info.type == pafs.FileType.File:
        files = [info]
    else:
        selector = pafs.FileSelector(root, recursive=True)
        files = [f for f in fs.get_file_info(selector) if f.type == pafs.FileType.File]
        files = [f for f in files if not _hidden(_rel(f.path, root))]
    pieces: list[Piece] = []
    for f in sorted(files, key=lambda f: f.path):
        fmt = file_format(f.path)
        if fmt is None:
            if info.type == pafs.FileType.File:
                raise ValueError(f"batch input {uri!r}: expected .parquet or .csv files")
            continue
        name = _rel(f.path, root) or f.base_name
        if fmt == "parquet":
            with fs.open_input_file(f.path) as fh:
                rows = pq.ParquetFile(fh).metadata.num_rows
            pieces.append(Piece(f.path, name, fmt, 0, rows))
        else:
            pieces.append(Piece(f.path, name, fmt))
    if not pieces:
        raise ValueError(f"batch input {uri!r} holds no .parquet or .csv file")
    return pieces


def _hidden(rel: str) -> bool:
    """Hidden or ``_``-prefixed (``_SUCCESS``, ``_manifest.json``, staging folders)."""
    return any(part.startswith((".", "_")) for part in rel.split("/"))


def _rel(path: str, root: str) -> str:
    return path[len(root) :].lstrip("/") if path.startswith(root) else path


def split(pieces: Sequence[Piece], shards: int) -> list[list[Piece]]:
    """At most ``shards`` groups of about equal rows: Parquet row ranges are cut at any
    row, a CSV file goes whole to the lightest group (its rows are unknown until read)."""
    if shards < 1:
        raise ValueError(f"shards must be at least 1, got {shards}")
    known = sum(p.rows for p in pieces if p.rows >= 0)
    csvs = [p for p in pieces if p.rows < 0]
    n = max(1, min(shards, known + len(csvs)))
    groups: list[list[Piece]] = [[] for _ in range(n)]
    size = -(-known // n) if known else 0
    g, room = 0, size
    for p in pieces:
        if p.rows < 0:
            continue
        start = p.start
        while start < p.stop:
            take = min(room, p.stop - start)
            groups[g].append(Piece(p.path, p.name, p.fmt, start, start + take))
            start += take
            room -= take
            if room == 0 and g < n - 1:
                g, room = g + 1, size
    weights = [sum(p.rows for p in grp) for grp in groups]
    mean = max(1, known // n)
    for p in csvs:  # a CSV counts as one group's share of rows
        i = weights.index(min(weights))
        groups[i].append(p)
        weights[i] += mean
    kept = [grp for grp in groups if grp]
    return kept or [list(pieces)]  # only empty files: one shard, which scores nothing


def read_piece(
    fs: pafs.FileSystem, piece: Piece, chunk_rows: int, string_columns: Sequence[str] = ()
) -> Iterator[tuple[int, pa.RecordBatch]]:
    """Record batches of a piece on ``fs``, each with the file row number of its first row.
    ``string_columns`` (keys) are read as strings from CSV even when they look numeric."""
    path = piece.path
    if piece.fmt == "csv":
        stream = fs.open_input_stream(path, compression="detect")
        types = {c: pa.string() for c in string_columns}
        reader = pacsv.open_csv(
            stream,
            read_options=pacsv.ReadOptions(block_size=1 << 22),
            convert_options=pacsv.ConvertOptions(column_types=types),
        )
        row = 0
        with stream:
            for batch in reader:
                for off in range(0, batch.num_rows, chunk_rows):
                    part = batch.slice(off, chunk_rows)
                    yield row, part
                    row += part.num_rows
        return
    with fs.open_input_file(path) as fh:
        pf = pq.ParquetFile(fh)
        groups, first, row = [], -1, 0
        for i in range(pf.metadata.num_row_groups):
            n = pf.metadata.row_group(i).num_rows
            if row + n > piece.start and row < piece.stop:
                groups.append(i)
                first = row if first < 0 else first
            row += n
        row = first
        for batch in pf.iter_batches(batch_size=chunk_rows, row_groups=groups):
            lo, hi = max(piece.start - row, 0), min(piece.stop - row, batch.num_rows)
            if hi > lo:
                yield row + lo, batch.slice(lo, hi - lo)
            row += batch.num_rows


def parquet_columns(fs: pafs.FileSystem, path: str) -> list[str]:
    """The column names of a Parquet file, from its footer."""
    with fs.open_input_file(path) as fh:
        return list(pq.ParquetFile(fh).schema_arrow.names)
