"""Real events a model has not trained on, as the request bodies the service takes.

The demo, the production-readiness smoke test, the benchmarks and the tests replay
labelled events from after the training window (``spec.split.end``): what the model
would have been asked at booking time, with the answer known.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from shipway.core.settings import Settings
from shipway.core.spec import DType, UseCaseSpec
from shipway.data.readiness import EVENT_TS


def events_after(
    settings: Settings, spec: UseCaseSpec, after: pd.Timestamp | None = None
) -> pd.DataFrame:
    """The use case's labelled events from after the spec's training period
    (``split.end``) and, when given, from ``after`` on (e.g. the end of a champion's own
    training window), in file order."""
    events = pd.read_parquet(settings.usecase_data(spec.name) / "features" / "events.parquet")
    starts = [after] if after is not None else []
    if spec.split.end is not None:
        starts.append(pd.Timestamp(spec.split.end, tz="UTC") + pd.Timedelta(days=1))
    return events[events[EVENT_TS] >= max(starts)] if starts else events


def future_bookings(settings: Settings, spec: UseCaseSpec, n: int) -> pd.DataFrame:
    """``n`` real bookings from after the training window (spread over those months)."""
    events = events_after(settings, spec)
    if events.empty:
        raise ValueError(f"no bookings of {spec.name} after the training window")
    step = max(len(events) // n, 1)
    return events.iloc[::step].head(n).reset_index(drop=True)


def request_body(spec: UseCaseSpec, row: pd.Series) -> dict[str, Any]:
    """The JSON body of /predict for an event row: entity keys and booking-time fields."""
    body: dict[str, Any] = {k: str(row[k]) for k in spec.entity_columns}
    for name in spec.request_field_names:
        v = row[name]
        # a missing value (NaN/NA) of a nullable field is JSON null, never NaN (invalid JSON)
        body[name] = None if pd.isna(v) else (v.item() if hasattr(v, "item") else v)
    return body


def probe_row(spec: UseCaseSpec) -> dict[str, Any]:
    """A valid request built from the spec's examples, to check the store answers."""
    row: dict[str, Any] = {e.name: e.missing_key for e in spec.entities}
    for c in spec.request_fields:
        if c.example is not None:
            row[c.name] = c.example
        elif c.dtype is DType.str:
            row[c.name] = (c.allowed or [""])[0]
        elif c.dtype is DType.bool:
            row[c.name] = False
        else:
            row[c.name] = c.min if c.min is not None else 0
    return row
