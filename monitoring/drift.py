"""Feature and prediction drift with Evidently, one explicit test per column type.

Why these tests: monitoring windows range from a few hundred to millions of rows, and
p-value tests (KS, chi-square) flag negligible shifts once windows are large. So every
column gets an *effect-size* distance with a fixed threshold, independent of window size:

- continuous numbers: Wasserstein distance normed by the reference's standard deviation
  (0.1 = the mass moved a tenth of a standard deviation);
- categories, and numbers with at most ``MAX_DISCRETE_VALUES`` distinct reference values
  (flags, small counts): Jensen-Shannon distance between the frequency tables.

Evidently computes both and gives the per-column verdict (``ValueDrift`` with tests);
the share of drifted features is compared with the spec's ``drift_share_threshold``.
Windows larger than ``max_rows`` are sampled uniformly (seeded): a distance estimated on
50,000 rows is within ~0.01 of the full-data value, far below the 0.1 threshold, and it
keeps a million-row window within a small multiple of computing the statistics directly
(see benchmarks/drift.py and tests/unit/test_monitor_drift.py).
"""

from __future__ import annotations

import warnings
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from shipway.core.spec import UseCaseSpec

NUMERICAL_METHOD = "wasserstein"
CATEGORICAL_METHOD = "jensenshannon"
DRIFT_THRESHOLD = 0.1
"""Distance from which one column counts as drifted (Evidently's default for both tests)."""
MAX_DISCRETE_VALUES = 5
"""Numeric columns with at most this many distinct reference values are compared as
categories: a Wasserstein distance normed by the std of a 0/1 flag is unstable."""
DEFAULT_MAX_ROWS = 50_000
PREDICTION = "prediction"
ALL_MISSING = "all_missing"


@dataclass(frozen=True)
class ColumnDrift:
    """One column's drift: the test used, its score and Evidently's verdict."""

    name: str
    kind: str
    method: str
    threshold: float
    score: float
    drifted: bool


@dataclass(frozen=True)
class DriftResult:
    """Per-feature drift, the share of drifted features and the prediction drift."""

    features: list[ColumnDrift]
    prediction: ColumnDrift | None
    threshold: float
    reference_rows: int
    current_rows: int
    sampled: bool
    skipped: list[str] = field(default_factory=list)
    """Features without reference values: nothing to compare, not in the share."""

    @property
    def drifted(self) -> list[str]:
        return [f.name for f in self.features if f.drifted]

    @property
    def share(self) -> float:
        return len(self.drifted) / len(self.features) if self.features else 0.0

    @property
    def dataset_drift(self) -> bool:
        """At or above the threshold, as Evidently and the ShipwayDataDrift alert define it."""
        return bool(self.features) and self.share >= self.threshold

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d.update(share=self.share, dataset_drift=self.dataset_drift, drifted=self.drifted)
        return d


def column_kinds(spec: UseCaseSpec, reference: pd.DataFrame, columns: list[str]) -> dict[str, str]:
    """``categorical`` or ``numerical`` per column, from the spec and the reference."""
    kinds = {}
    for c in columns:
        discrete = reference[c].nunique(dropna=True) <= MAX_DISCRETE_VALUES
        is_cat = c in spec.categorical_features or (c != PREDICTION and discrete)
        kinds[c] = "categorical" if is_cat else "numerical"
    return kinds


def sample(frame: pd.DataFrame, max_rows: int | None, seed: int = 0) -> pd.DataFrame:
    """At most ``max_rows`` rows, drawn uniformly without replacement (seeded)."""
    if max_rows is None or len(frame) <= max_rows:
        return frame
    return frame.sample(n=max_rows, random_state=seed)


def _status_failed(status: Any) -> bool:
    return str(getattr(status, "value", status)).upper() == "FAIL"


def compute_drift(
    spec: UseCaseSpec,
    reference: pd.DataFrame,
    current: pd.DataFrame,
    *,
    features: list[str] | None = None,
    drift_share: float | None = None,
    max_rows: int | None = DEFAULT_MAX_ROWS,
    seed: int = 0,
) -> tuple[DriftResult, Any]:
    """Compare ``current`` with ``reference`` (model-frame columns, optional prediction).

    Returns the result and the Evidently snapshot (for its HTML). A feature with values
    in the reference but none in the window counts as drifted (a broken feed is drift).
    """
    from evidently import DataDefinition, Dataset, Report
    from evidently.metrics import ValueDrift

    names = list(features or spec.model_feature_names)
    ref, cur = sample(reference, max_rows, seed), sample(current, max_rows, seed + 1)
    skipped = [c for c in names if ref[c].notna().sum() == 0]
    empty = [c for c in names if c not in skipped and cur[c].notna().sum() == 0]
    tested = [c for c in names if c not in skipped and c not in empty]
    with_pred = (
        PREDICTION in ref.columns and PREDICTION in cur.columns and cur[PREDICTION].notna().any()
    )
    columns = tested + ([PREDICTION] if with_pred else [])
    kinds = column_kinds(spec, ref, columns)
    method = {
        c: CATEGORICAL_METHOD if k == "categorical" else NUMERICAL_METHOD for c, k in kinds.items()
    }
    definition = DataDefinition(
        numerical_columns=[c for c in columns if kinds[c] == "numerical"],
        categorical_columns=[c for c in columns if kinds[c] == "categorical"],
    )
    report = Report(
        [ValueDrift(column=c, method=method[c], threshold=DRIFT_THRESHOLD) for c in columns],
        include_tests=True,
    )
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")  # Evidently's plotting divides by zero-width bins
        snapshot = report.run(
            Dataset.from_pandas(cur[columns].reset_index(drop=True), data_definition=definition),
            Dataset.from_pandas(ref[columns].reset_index(drop=True), data_definition=definition),
        )
    body = snapshot.dict()
    failed = {
        t["metric_config"]["params"]["column"]: _status_failed(t["status"])
        for t in body["tests"]
        if t.get("metric_config", {}).get("params", {}).get("column") is not None
    }
    scores = {
        m["config"]["column"]: float(m["value"])
        for m in body["metrics"]
        if m["config"].get("type", "").endswith("ValueDrift")
    }
    result = {
        c: ColumnDrift(c, kinds[c], method[c], DRIFT_THRESHOLD, scores[c], failed[c])
        for c in columns
    }
    for c in empty:
        result[c] = ColumnDrift(c, "missing", ALL_MISSING, DRIFT_THRESHOLD, 1.0, True)
    return (
        DriftResult(
            features=[result[c] for c in names if c in result],
            prediction=result.get(PREDICTION),
            threshold=spec.monitoring.drift_share_threshold if drift_share is None else drift_share,
            reference_rows=len(ref),
            current_rows=len(cur),
            sampled=len(ref) < len(reference) or len(cur) < len(current),
            skipped=skipped,
        ),
        snapshot,
    )
