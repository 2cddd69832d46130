"""Point-in-time-safe trailing entity aggregates (the ``features`` data stage).

For each entity key and each day D, a feature row stamped D 00:00 UTC summarises the
events whose timestamp falls in [D - lag - window, D - lag): strictly before D (lag is 0
unless the spec delays outcomes that are only observed later, such as a loan's default). Feast's point-in-time
join takes the newest row at or before an event's time, so an event at time t only ever
sees events that happened before the day of t — never its own outcome or later ones.
Rows are dense (one per entity per day from the day of the entity's first event, with
nothing seen yet, until the day after the last event), so trailing windows also age out.

A classification target is aggregated as 0/1 (1 = the positive class), so the mean of the
target is the trailing positive rate of the entity (e.g. its default rate).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from shipway.core.io import write_parquet
from shipway.core.spec import Aggregate, EntityFeatures, UseCaseSpec
from shipway.data.readiness import EVENT_TS

CREATED_TS = "created_timestamp"


def numeric_values(spec: UseCaseSpec, df: pd.DataFrame, column: str) -> pd.Series:
    """The values an aggregate sees: numbers, or 0/1 for a classification target."""
    col = df[column]
    if column == spec.target.column and spec.target.positive_class is not None:
        hit = col.astype(str) == str(spec.target.positive_class)
        return hit.astype("float64").where(col.notna())
    return pd.to_numeric(col, errors="coerce").astype("float64")


def _daily_matrix(
    df: pd.DataFrame, key: str, v: pd.Series, days: pd.DatetimeIndex
) -> dict[str, pd.DataFrame]:
    """Per day x entity: count, sum and sum of squares of the values ``v``."""
    day = df[EVENT_TS].dt.floor("D")
    frame = pd.DataFrame({"day": day, "key": df[key], "v": v, "v2": v * v}).dropna(subset=["v"])
    g = frame.groupby(["day", "key"], observed=True)
    out = {}
    for name, series in (("count", g["v"].size()), ("sum", g["v"].sum()), ("sumsq", g["v2"].sum())):
        out[name] = series.unstack("key").reindex(days).fillna(0.0)
    return out


def _trailing(mat: pd.DataFrame, window: int, lag: int = 0) -> pd.DataFrame:
    """Sum over the ``window`` days ending ``lag`` days before each day, exclusive
    (so [D - lag - window, D - lag): shifted by one day plus the lag)."""
    return mat.rolling(window, min_periods=1).sum().shift(1 + lag).fillna(0.0)


def _aggregate(mats: dict[str, pd.DataFrame], agg: Aggregate) -> pd.DataFrame:
    n = _trailing(mats["count"], agg.window_days, agg.lag_days)
    s = _trailing(mats["sum"], agg.window_days, agg.lag_days)
    if agg.function == "count":
        return n
    if agg.function == "sum":
        return s
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = s / n
        if agg.function == "mean":
            return mean.where(n > 0, agg.default)
        ss = _trailing(mats["sumsq"], agg.window_days, agg.lag_days)
        var = (ss / n - mean * mean).clip(lower=0.0)
        return np.sqrt(var).where(n > 1, agg.default)


def entity_table(spec: UseCaseSpec, events: pd.DataFrame, ef: EntityFeatures) -> pd.DataFrame:
    """Daily feature rows of one entity: key, event_timestamp, created_timestamp, features."""
    key = ef.entity
    if events.empty:
        cols = [key, EVENT_TS, CREATED_TS, *(a.name for a in ef.aggregates)]
        return pd.DataFrame(columns=cols)
    start = events[EVENT_TS].min().floor("D")
    end = events[EVENT_TS].max().floor("D") + pd.Timedelta(days=1)
    days = pd.date_range(start, end, freq="D")
    columns: dict[str, pd.DataFrame] = {}
    cache: dict[str, dict[str, pd.DataFrame]] = {}
    for agg in ef.aggregates:
        if agg.column not in cache:
            values = numeric_values(spec, events, agg.column)
            cache[agg.column] = _daily_matrix(events, key, values, days)
        columns[agg.name] = _aggregate(cache[agg.column], agg)
    first_seen = events.groupby(key, observed=True)[EVENT_TS].min().dt.floor("D")
    parts = []
    for name, mat in columns.items():
        long = mat.stack(future_stack=True).rename(name)
        parts.append(long)
    table = pd.concat(parts, axis=1).reset_index()
    table.columns = [EVENT_TS, key, *columns.keys()]
    table[key] = table[key].astype("string")
    table = table[table[EVENT_TS] >= table[key].map(first_seen).astype(table[EVENT_TS].dtype)]
    table[CREATED_TS] = table[EVENT_TS]
    for agg in ef.aggregates:
        table[agg.name] = table[agg.name].astype("float64")
    table = table[[key, EVENT_TS, CREATED_TS, *columns.keys()]]
    return table.sort_values([key, EVENT_TS], kind="stable").reset_index(drop=True)


def entity_tables(spec: UseCaseSpec, events: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """One table per entity with stored features."""
    return {ef.entity: entity_table(spec, events, ef) for ef in spec.entity_features}


def events_table(spec: UseCaseSpec, validated: pd.DataFrame) -> pd.DataFrame:
    """The entity dataframe for training retrieval: keys, time, request fields, target.

    PII columns are deliberately not carried: training never needs them.
    """
    cols = [
        *([spec.derive.row_key] if spec.derive.row_key else []),
        *spec.entity_columns,
        EVENT_TS,
        *spec.request_field_names,
        spec.target.column,
    ]
    return validated[list(dict.fromkeys(cols))].reset_index(drop=True)


def build(spec: UseCaseSpec, validated_path: Path, out_dir: Path) -> dict[str, int]:
    """The features stage: write one parquet per entity plus the events table."""
    validated = pd.read_parquet(validated_path)
    counts: dict[str, int] = {}
    for entity, table in entity_tables(spec, validated).items():
        write_parquet(table, out_dir / f"{entity}.parquet")
        counts[entity] = len(table)
    events = events_table(spec, validated)
    write_parquet(events, out_dir / "events.parquet")
    counts["events"] = len(events)
    return counts
