"""The one scoring path: online features -> declared missing policy -> model frame -> predict.

The real-time service and the batch job both call :func:`fetch` and :func:`predict`, and
training builds its frame with the same :func:`shipway.modelframe.model_frame`, so a row
scored over HTTP, in a batch file or offline gets the same number (no training-serving
skew). Nothing here knows about HTTP, files or metrics.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from feature_repo.store import online
from pipelines.steps import learner
from shipway.modelframe import model_frame
from shipway.spec import Task, UseCaseSpec


@dataclass
class Features:
    """The model inputs of a batch of rows, with what the missing-value policy filled in."""

    x: pd.DataFrame
    """Model frame (``model_frame``): the exact columns, order and types the model takes."""
    missing: list[list[str]]
    """Per row: stored features the store had no value for (the spec default was used)."""
    missing_entities: dict[str, int] = field(default_factory=dict)
    """Per entity: how many rows had no stored features for their key."""
    seconds: float = 0.0
    """Duration of the online retrieval."""


def entity_rows(spec: UseCaseSpec, rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """What Feast needs per row: the entity keys (as strings) and the booking-time fields."""
    keys = spec.entity_columns
    names = spec.request_field_names
    return [{**{k: str(r[k]) for k in keys}, **{n: r.get(n) for n in names}} for r in rows]


def fill_missing(spec: UseCaseSpec, frame: pd.DataFrame) -> tuple[list[list[str]], dict[str, int]]:
    """Apply the declared policy in place: absent stored features get ``Aggregate.default``.

    Returns the names filled per row and, per entity, the rows that had no stored value.
    """
    n = len(frame)
    missing: list[list[str]] = [[] for _ in range(n)]
    per_entity: dict[str, int] = {}
    for ef in spec.entity_features:
        entity_missing = np.zeros(n, dtype=bool)
        for agg in ef.aggregates:
            col = pd.to_numeric(frame[agg.name], errors="coerce") if agg.name in frame else None
            mask = np.ones(n, dtype=bool) if col is None else col.isna().to_numpy()
            if mask.any():
                for i in np.flatnonzero(mask):
                    missing[i].append(agg.name)
                entity_missing |= mask
                base = col if col is not None else pd.Series(np.nan, index=frame.index)
                frame[agg.name] = base.where(~mask, agg.default).astype("float64")
        if entity_missing.any():
            per_entity[ef.entity] = int(entity_missing.sum())
    return missing, per_entity


def fetch(store: Any, spec: UseCaseSpec, rows: Sequence[dict[str, Any]]) -> Features:
    """Online features of the feature service for ``rows``, defaults applied, as a model frame."""
    t0 = time.perf_counter()
    frame = online(store, spec, entity_rows(spec, rows))
    seconds = time.perf_counter() - t0
    if len(frame) != len(rows):
        raise RuntimeError(f"online retrieval returned {len(frame)} rows for {len(rows)}")
    missing, per_entity = fill_missing(spec, frame)
    return Features(model_frame(spec, frame), missing, per_entity, seconds)


def predict(spec: UseCaseSpec, model: Any, x: pd.DataFrame) -> np.ndarray:
    """The training code's prediction: regression value or positive-class probability."""
    return learner.predict(spec, model, x)


def decide(spec: UseCaseSpec, value: float) -> tuple[int | None, str | None]:
    """Classification: (1/0, label) by the spec's decision_threshold; regression: (None, None)."""
    if spec.target.task is not Task.binary_classification:
        return None, None
    positive = value >= spec.acceptance.decision_threshold
    label = str(spec.target.positive_class)
    return int(positive), (label if positive else f"not_{label}")
