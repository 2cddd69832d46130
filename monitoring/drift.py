"""Feature and prediction drift, one explicit test per column type, on windows of any size.

Why these tests: monitoring windows range from a few hundred to millions of rows, and
p-value tests (KS, chi-square) flag negligible shifts once windows are large. So every
column gets an *effect-size* distance with a fixed threshold, independent of window size
(Evidently's tests, by name and formula):

- continuous numbers: Wasserstein distance normed by the reference's standard deviation
  (0.1 = the mass moved a tenth of a standard deviation);
- categories, and numbers with at most ``MAX_DISCRETE_VALUES`` distinct reference values
  (flags, small counts): Jensen-Shannon distance between the frequency tables.

Why summaries: a window can be larger than memory. ``WindowDrift`` takes the window in
chunks and keeps, per column, a mergeable summary sized by the reference
(``monitoring.sketch``); the distances come from the summaries, so every row of the
window counts and a window cut into chunks gives the same verdicts as the whole window
at once. The Jensen-Shannon distance is exactly Evidently's; the Wasserstein distance is
exactly Evidently's for values on the reference's support and otherwise within the
bound ``NumberSketch.error_bound`` computes (tests/unit/test_monitor_sketch.py). The share
of drifted features is compared with the spec's ``drift_share_threshold``. Evidently
still renders the report page, from a uniform sample of at most ``max_rows`` rows per
side (seeded, the same rows however the window was chunked): the page is for reading,
the verdicts are the summaries'.
"""

from __future__ import annotations

import warnings
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from monitoring.sketch import CategorySketch, ColumnSketch, NumberSketch
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
    """The report page shows a sample (the verdicts always use every row)."""
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


class Reservoir:
    """A uniform sample of at most ``size`` rows of frames seen in order (``None``: all).

    Every row gets a seeded random key and the ``size`` smallest keys are kept, in window
    order: the same rows whatever the chunk sizes, since the keys are one random stream.
    """

    def __init__(self, size: int | None, seed: int) -> None:
        self.size, self.rng = size, np.random.default_rng(seed)
        self.keys = np.empty(0)
        self.frames: list[pd.DataFrame] = []

    def add(self, frame: pd.DataFrame) -> None:
        keys = self.rng.random(len(frame))
        self.frames.append(frame.reset_index(drop=True))
        self.keys = np.concatenate([self.keys, keys])
        if self.size is not None and len(self.keys) > self.size:
            keep = np.sort(np.argpartition(self.keys, self.size)[: self.size])
            self.frames = [pd.concat(self.frames, ignore_index=True).iloc[keep]]
            self.keys = self.keys[keep]

    def frame(self) -> pd.DataFrame:
        return pd.concat(self.frames, ignore_index=True) if self.frames else pd.DataFrame()


def _report(
    reference: pd.DataFrame, current: pd.DataFrame, kinds: dict[str, str], method: dict[str, str]
) -> Any:
    """Evidently's report page (the per-column value drift) on the given rows."""
    from evidently import DataDefinition, Dataset, Report
    from evidently.metrics import ValueDrift

    columns = list(kinds)
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
        return report.run(
            Dataset.from_pandas(
                current[columns].reset_index(drop=True), data_definition=definition
            ),
            Dataset.from_pandas(
                reference[columns].reset_index(drop=True), data_definition=definition
            ),
        )


class WindowDrift:
    """Drift of one window against a reference, fed chunk by chunk (``add``).

    Memory: the reference, one summary per column sized by the reference's distinct
    values, and the report's sample; never the window. ``result`` may be called once all
    chunks are added.
    """

    def __init__(
        self,
        spec: UseCaseSpec,
        reference: pd.DataFrame,
        *,
        features: list[str] | None = None,
        max_rows: int | None = DEFAULT_MAX_ROWS,
        seed: int = 0,
    ) -> None:
        self.spec, self.reference = spec, reference
        self.names = list(features or spec.model_feature_names)
        self.skipped = [c for c in self.names if reference[c].notna().sum() == 0]
        cols = [c for c in self.names if c not in self.skipped]
        if PREDICTION in reference.columns:
            cols.append(PREDICTION)
        self.kinds = column_kinds(spec, reference, cols)
        self.sketches: dict[str, ColumnSketch] = {
            c: (
                CategorySketch.of_reference(reference[c])
                if k == "categorical"
                else NumberSketch.of_reference(reference[c])
            )
            for c, k in self.kinds.items()
        }
        self.max_rows, self.seed = max_rows, seed
        self.sample = Reservoir(max_rows, seed + 1)
        self.rows = 0

    def add(self, current: pd.DataFrame) -> None:
        """Count one chunk of the window (model-frame columns, optional prediction)."""
        cols = [c for c in self.sketches if c != PREDICTION or PREDICTION in current.columns]
        for c in cols:
            self.sketches[c].add(current[c])
        self.rows += len(current)
        self.sample.add(current[cols])

    def merge(self, other: WindowDrift) -> None:
        """Fold in the drift state of another part of the same window (e.g. a shard).

        The report's sample is not merged: the other part's rows are not in it."""
        for c, sk in self.sketches.items():
            sk.merge(other.sketches[c])  # type: ignore[arg-type]  # same kind per column
        self.rows += other.rows

    def result(
        self, drift_share: float | None = None, *, report: bool = True
    ) -> tuple[DriftResult, Any]:
        """The verdicts from the summaries, and Evidently's snapshot of the samples."""
        tested = [c for c in self.names if c in self.sketches and self.sketches[c].rows > 0]
        empty = [c for c in self.names if c in self.sketches and c not in tested]
        pred = self.sketches.get(PREDICTION)
        columns = tested + ([PREDICTION] if pred is not None and pred.rows > 0 else [])
        found = {}
        for c in columns:
            sk = self.sketches[c]
            score = sk.jensenshannon() if isinstance(sk, CategorySketch) else sk.wasserstein()
            method = CATEGORICAL_METHOD if isinstance(sk, CategorySketch) else NUMERICAL_METHOD
            found[c] = ColumnDrift(
                c, self.kinds[c], method, DRIFT_THRESHOLD, score, score >= DRIFT_THRESHOLD
            )
        for c in empty:
            found[c] = ColumnDrift(c, "missing", ALL_MISSING, DRIFT_THRESHOLD, 1.0, True)
        ref = sample(self.reference, self.max_rows, self.seed)
        cur = self.sample.frame()
        snapshot = None
        if report and columns:
            snapshot = _report(
                ref, cur, {c: self.kinds[c] for c in columns}, {c: found[c].method for c in columns}
            )
        share = self.spec.monitoring.drift_share_threshold if drift_share is None else drift_share
        result = DriftResult(
            features=[found[c] for c in self.names if c in found],
            prediction=found.get(PREDICTION),
            threshold=share,
            reference_rows=len(self.reference),
            current_rows=self.rows,
            sampled=len(ref) < len(self.reference) or len(cur) < self.rows,
            skipped=self.skipped,
        )
        return result, snapshot


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
    The whole window in one chunk of ``WindowDrift``: the same code as a chunked window.
    """
    drift = WindowDrift(spec, reference, features=features, max_rows=max_rows, seed=seed)
    drift.add(current)
    return drift.result(drift_share)
