"""The one scoring path: online features -> declared missing policy -> model frame -> predict.

The real-time service, the batch job and the batch pipeline all call :func:`fetch` and :func:`predict`, and
training builds its frame with the same :func:`shipway.core.modelframe.model_frame`, so a row
scored over HTTP, in a batch file or offline gets the same number (no training-serving
skew). Nothing here knows about HTTP, files or metrics.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import numpy as np
import pandas as pd

from feature_repo.online import OnlineReader, reader_for
from feature_repo.store import online
from shipway.core import modelframe
from shipway.core.modelframe import model_columns
from shipway.core.spec import Task, UseCaseSpec


@dataclass
class Features:
    """The model inputs of a batch of rows, with what the missing-value policy filled in."""

    columns: dict[str, np.ndarray]
    """Model columns (``model_columns``): the exact columns, order and types the model takes."""
    missing: list[list[str]]
    """Per row: stored features the store had no value for (the spec default was used)."""
    missing_entities: dict[str, int] = field(default_factory=dict)
    """Per entity: how many rows had no stored features for their key."""
    seconds: float = 0.0
    """Duration of the online retrieval."""

    @cached_property
    def x(self) -> pd.DataFrame:
        """The model frame (``shipway.core.modelframe.model_frame`` of the same rows)."""
        return pd.DataFrame(self.columns)

    def take(self, idx: Sequence[int]) -> dict[str, np.ndarray]:
        """The model columns of rows ``idx`` (all of them without a copy)."""
        if len(idx) == len(self.missing):
            return self.columns
        return {c: v[list(idx)] for c, v in self.columns.items()}

    def records(self) -> list[dict[str, Any]]:
        """One dict of plain Python values per row (as ``x.to_dict("records")``), for the log."""
        names = list(self.columns)
        return [
            dict(zip(names, values, strict=True))
            for values in zip(*(v.tolist() for v in self.columns.values()), strict=True)
        ]


def entity_rows(spec: UseCaseSpec, rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """What Feast needs per row: the entity keys (as strings) and the booking-time fields."""
    keys = spec.entity_columns
    names = spec.request_field_names
    return [{**{k: str(r[k]) for k in keys}, **{n: r.get(n) for n in names}} for r in rows]


def fill_missing(
    spec: UseCaseSpec, data: dict[str, list[Any]], n: int
) -> tuple[list[list[str]], dict[str, int]]:
    """Apply the declared policy in place: absent stored features get ``Aggregate.default``.

    ``data`` holds one list per column (plain Python: a handful of values per request, so
    a loop is far cheaper than pandas here). Returns the names filled per row and, per
    entity, how many rows had no stored value.
    """
    missing: list[list[str]] = [[] for _ in range(n)]
    per_entity: dict[str, int] = {}
    for ef in spec.entity_features:
        rows_without: set[int] = set()
        for agg in ef.aggregates:
            values = data.get(agg.name)
            if values is None:
                values = data[agg.name] = [None] * n
            for i, v in enumerate(values):
                if v is None or v != v:  # None or NaN
                    values[i] = agg.default
                    missing[i].append(agg.name)
                    rows_without.add(i)
        if rows_without:
            per_entity[ef.entity] = len(rows_without)
    return missing, per_entity


@dataclass(frozen=True)
class _Resolved:
    """The feature service resolved to its stored-feature references (or None: use it whole)
    and the direct reader of those references (None: the store has none)."""

    refs: list[str] | None
    at: float
    reader: OnlineReader | None = None


_RESOLVED: dict[tuple[int, str], _Resolved] = {}
RESOLVE_TTL_SECONDS = 60.0  # the Feast registry's own cache TTL


def stored_refs(store: Any, spec: UseCaseSpec) -> list[str] | None:
    """See :func:`_resolve`."""
    return _resolve(store, spec).refs


def _resolve(store: Any, spec: UseCaseSpec) -> _Resolved:
    """``view:feature`` references of the feature service's stored views, resolved once a
    minute; None when the service holds an on-demand view other than the request view.

    The service's request view is a passthrough of the booking-time fields
    (``feature_repo/objects.py``), so reading the stored views and taking the request
    fields from the request itself gives the service's values exactly, without Feast's
    per-call registry lookups and pandas transformation (10+ ms of a ~1 ms read).
    """
    from feature_repo.objects import request_view_name

    key = (id(store), spec.feature_service_name)
    hit = _RESOLVED.get(key)
    if hit is not None and time.monotonic() - hit.at < RESOLVE_TTL_SECONDS:
        return hit
    service = store.get_feature_service(spec.feature_service_name)
    stored_views = {fv.name for fv in store.list_feature_views()}
    refs: list[str] | None = []
    for proj in service.feature_view_projections:
        if proj.name == request_view_name(spec):
            continue
        if proj.name not in stored_views:  # a real transformation: keep Feast's full path
            refs = None
            break
        assert refs is not None
        refs += [f"{proj.name_to_use()}:{f.name}" for f in proj.features]
    reader = None
    if refs:  # the same views as before: keep the reader (and its connections)
        same = hit is not None and hit.refs == refs
        reader = hit.reader if same and hit is not None else reader_for(store, refs)
    _RESOLVED[key] = resolved = _Resolved(refs, time.monotonic(), reader)
    return resolved


def read_online(
    store: Any, spec: UseCaseSpec, rows: Sequence[dict[str, Any]], *, direct: bool = True
) -> dict[str, list[Any]]:
    """The feature service's values for ``rows``, one list per column: entity keys,
    request fields and stored features (None where the store has no value).

    ``direct``: read the stored views with :class:`feature_repo.online.OnlineReader`
    where the online store has one (the same values; tested against Feast), else
    through ``get_online_features``.
    """
    feast_rows = entity_rows(spec, rows)
    resolved = _resolve(store, spec)
    refs = resolved.refs
    if refs is None:
        return {k: list(v) for k, v in online(store, spec, feast_rows).to_dict("list").items()}
    data: dict[str, list[Any]] = {
        n: [r[n] for r in feast_rows] for n in spec.entity_columns + spec.request_field_names
    }
    if not refs:  # no stored features (a use case without entity aggregates): nothing to read
        return data
    if direct and resolved.reader is not None:
        stored = resolved.reader.read(feast_rows)
        data.update((n, stored[n]) for n in spec.stored_feature_names if n in stored)
        return data
    keys = [{k: r[k] for k in spec.entity_columns} for r in feast_rows]
    resp = store.get_online_features(features=refs, entity_rows=keys).to_dict()
    data.update((name, list(resp[name])) for name in spec.stored_feature_names if name in resp)
    return data


def fetch(
    store: Any, spec: UseCaseSpec, rows: Sequence[dict[str, Any]], *, direct: bool = True
) -> Features:
    """Online features of the feature service for ``rows``, defaults applied, as a model frame
    (``direct``: see :func:`read_online`)."""
    t0 = time.perf_counter()
    data = read_online(store, spec, rows, direct=direct)
    seconds = time.perf_counter() - t0
    got = {len(v) for v in data.values()}
    if got != {len(rows)}:
        raise RuntimeError(f"online retrieval returned {sorted(got)} rows for {len(rows)}")
    missing, per_entity = fill_missing(spec, data, len(rows))
    return Features(model_columns(spec, data, len(rows)), missing, per_entity, seconds)


def predict(spec: UseCaseSpec, model: Any, x: pd.DataFrame) -> np.ndarray:
    """The training code's prediction: regression value or positive-class probability."""
    return modelframe.predict(spec, model, x)


def decide(spec: UseCaseSpec, value: float) -> tuple[int | None, str | None]:
    """Classification: (1/0, label) by the spec's decision_threshold; regression: (None, None)."""
    if spec.target.task is not Task.binary_classification:
        return None, None
    positive = bool(decided_positive(spec, value))
    return int(positive), labels(spec)[positive]


def decided_positive(spec: UseCaseSpec, values: Any) -> Any:
    """The decision rule, on one value or an array: positive from the spec's threshold."""
    return values >= spec.acceptance.decision_threshold


def labels(spec: UseCaseSpec) -> tuple[str, str]:
    """(negative, positive) label of a binary classifier's decision."""
    label = str(spec.target.positive_class)
    return f"not_{label}", label
