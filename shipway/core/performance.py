"""Live model performance from ground-truth feedback, against the validation result.

The metrics are the training pipeline's own (``shipway.core.metrics.quality``), so a
live MAE and a validation MAE are the same computation on different rows. The drop is
oriented so that a positive value is always "worse": a relative increase for errors
(mae, rmse), a relative decrease for scores (r2, roc_auc, f1).

Feedback is validated when it arrives, but a log may hold labels stored before that (a
7 for a binary target, 1e308 for a bounded rate): those are counted and left out, never
measured, as one of them would make the live metric meaningless.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from shipway.core import metrics
from shipway.core.labels import valid_actuals
from shipway.core.spec import Task, UseCaseSpec

MIN_LABELLED_ROWS = 30
"""Below this many rows with feedback, a window's metric is noise, not a measurement."""


@dataclass(frozen=True)
class Performance:
    """The spec's metric on the window's labelled rows, and its drop vs validation."""

    metric: str
    rows: int
    live: float | None
    validation: float | None
    drop_ratio: float | None
    threshold: float
    all_metrics: dict[str, float]
    invalid_labels: int = 0
    """Labelled rows left out: their label does not fit the target (see the module doc)."""

    @property
    def degraded(self) -> bool:
        """Worse than validation by more than the threshold (the alert's ``>``)."""
        return self.drop_ratio is not None and self.drop_ratio > self.threshold

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "degraded": self.degraded}


def drop_ratio(spec: UseCaseSpec, live: float, validation: float) -> float | None:
    """Relative degradation of ``live`` vs ``validation``; > 0 is worse, None if undefined."""
    if not math.isfinite(live) or not math.isfinite(validation) or validation == 0:
        return None
    if spec.acceptance.higher_is_better:
        return (validation - live) / abs(validation)
    return (live - validation) / abs(validation)


def live_performance(
    spec: UseCaseSpec,
    actual: np.ndarray,
    prediction: np.ndarray,
    validation: float | None,
    *,
    min_rows: int = MIN_LABELLED_ROWS,
) -> Performance:
    """Metric on the labelled rows (``actual`` not NaN and valid for the target); live is
    None below ``min_rows``."""
    y = np.asarray(actual, dtype=np.float64)
    p = np.asarray(prediction, dtype=np.float64)
    labelled = ~np.isnan(y) & ~np.isnan(p)
    keep = labelled & valid_actuals(spec.target, y)
    invalid = int(labelled.sum() - keep.sum())
    y, p = y[keep], p[keep]
    name = spec.acceptance.metric
    threshold = spec.monitoring.performance_drop_threshold
    if len(y) < min_rows:
        return Performance(name, len(y), None, validation, None, threshold, {}, invalid)
    if spec.target.task is Task.binary_classification:
        y = y.astype(np.int64)
    quality = metrics.quality(spec, y, p)
    live = quality[name]
    drop = drop_ratio(spec, live, validation) if validation is not None else None
    return Performance(name, len(y), live, validation, drop, threshold, quality, invalid)
