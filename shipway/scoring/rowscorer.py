"""Low-latency scoring of a few rows: the learner's tree pipeline without its pandas layer.

The registered model is an sklearn ``Pipeline`` (``pipelines.steps.learner``): a
``ColumnTransformer`` (``OrdinalEncoder`` on the categories, numbers passed through),
then the estimator. For one row, sklearn's column selection, validation and pandas
indexing cost several milliseconds, while the estimator itself needs a fraction of
one: that overhead was most of the service's per-request CPU (docs/load.md).

:func:`predictor` returns the function the service scores with. For the tree layout it
applies the *fitted* encoder's own category table with dictionary lookups, stacks the
float32 matrix the ColumnTransformer would produce, and calls the *same fitted
estimator*, so the numbers are bit-identical, not approximately equal. For LightGBM it
calls the fitted ``Booster`` itself (``model.booster_``): the sklearn wrapper's predict
re-validates and re-processes its parameters on every call (about 0.4 ms for one row,
against about 20 us for the Booster, issue 15), for the very same trees and numbers. Every compiled
scorer is checked against the native pipeline on a probe covering every known
category, an unseen one and missing numbers before it is used; any other layout, or a
scorer that does not match exactly, falls back to the native pipeline.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from shipway.core import modelframe
from shipway.core.spec import Task, UseCaseSpec

log = logging.getLogger("shipway.service")

Columns = Mapping[str, np.ndarray]
"""Model columns as :func:`shipway.core.modelframe.model_columns` makes them."""
Predict = Callable[[Columns], np.ndarray]
Factorized = Mapping[str, tuple[np.ndarray, np.ndarray]]
"""Per column: its distinct model values and each row's index into them."""


@dataclass(frozen=True)
class TreeRows:
    """The fitted ordinal-encoder + passthrough + estimator pipeline, on arrays."""

    cats: list[str]
    nums: list[str]
    codes: list[dict[str, float]]
    """Per categorical column: category -> its code in the fitted encoder."""
    unknown: float
    """The encoder's ``unknown_value`` (the code of a category unseen in training)."""
    estimator: Any
    proba: bool
    """Binary classification: the positive class's probability, else the value."""
    booster: Any = None
    """LightGBM's fitted Booster of ``estimator`` (its native predict), or None."""

    def __call__(self, columns: Columns) -> np.ndarray:
        return self.predict_matrix(self.matrix(columns))

    def matrix(self, columns: Columns, distinct: Factorized | None = None) -> np.ndarray:
        """The float32 matrix the fitted ColumnTransformer would produce. A categorical
        column in ``distinct`` (its distinct values and each row's index into them, e.g.
        a large batch) is encoded once per distinct value, then spread by index: the same
        codes as the per-row lookup."""
        unknown = self.unknown
        parts = []
        for c, table in zip(self.cats, self.codes, strict=True):
            if distinct is not None and c in distinct:
                values, idx = distinct[c]
                parts.append(np.fromiter((table.get(v, unknown) for v in values), np.float32)[idx])
            else:
                parts.append(np.fromiter((table.get(v, unknown) for v in columns[c]), np.float32))
        parts += [np.asarray(columns[c], dtype=np.float32) for c in self.nums]
        return np.column_stack(parts) if parts else np.empty((0, 0), np.float32)

    def predict_matrix(self, x: np.ndarray, threads: int = 1) -> np.ndarray:
        """The estimator on the encoded matrix: the same trees and numbers as the pipeline
        (``threads``: the Booster's; 1 on the request path, 0 = all cores for a batch)."""
        if self.booster is not None:  # binary: the positive class's probability already
            return np.asarray(self.booster.predict(x, num_threads=threads), dtype=np.float64)
        if self.proba:
            return np.asarray(self.estimator.predict_proba(x))[:, 1]
        return np.asarray(self.estimator.predict(x), dtype=np.float64)


def _tree_rows(spec: UseCaseSpec, model: Any) -> TreeRows | None:
    """The compiled form when ``model`` has exactly the learner's tree layout, else None."""
    from sklearn.compose import ColumnTransformer
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OrdinalEncoder

    if not isinstance(model, Pipeline) or [n for n, _ in model.steps] != ["pre", "model"]:
        return None
    pre, est = model.named_steps["pre"], model.named_steps["model"]
    if not isinstance(pre, ColumnTransformer) or not hasattr(pre, "transformers_"):
        return None
    fitted = [(n, t, list(c)) for n, t, c in pre.transformers_ if n != "remainder"]
    remainder = [t for n, t, c in pre.transformers_ if n == "remainder" and len(c)]
    if remainder or [n for n, _, _ in fitted] != ["cat", "num"]:
        return None
    (_, enc, cats), (_, _, nums) = fitted
    declared = {n: t for n, t, _ in pre.transformers}  # fitted passthrough is a wrapper
    if not isinstance(enc, OrdinalEncoder) or declared.get("num") != "passthrough":
        return None
    if enc.handle_unknown != "use_encoded_value" or np.dtype(enc.dtype) != np.float32:
        return None
    if any(not all(isinstance(v, str) for v in c) for c in enc.categories_):
        return None  # the model frame's categories are strings; anything else: native path
    codes = [{str(v): float(i) for i, v in enumerate(c)} for c in enc.categories_]
    proba = spec.target.task is Task.binary_classification
    return TreeRows(cats, nums, codes, float(enc.unknown_value), est, proba, _booster(est))


def _booster(estimator: Any) -> Any:
    """The fitted LightGBM Booster of a binary classifier or a regressor, else None."""
    try:
        from lightgbm import LGBMClassifier, LGBMRegressor
    except ImportError:  # pragma: no cover - lightgbm is a dependency
        return None
    if isinstance(estimator, LGBMClassifier) and len(estimator.classes_) != 2:
        return None
    if isinstance(estimator, LGBMClassifier | LGBMRegressor):
        return estimator.booster_
    return None


def probe_columns(spec: UseCaseSpec, compiled: TreeRows) -> dict[str, np.ndarray]:
    """Rows that visit every known category, an unseen one, and NaN/0/extreme numbers."""
    n = max([len(t) for t in compiled.codes] + [1]) + 1
    cols: dict[str, np.ndarray] = {}
    for c, table in zip(compiled.cats, compiled.codes, strict=True):
        known = list(table)
        cols[c] = np.array(
            [known[i % len(known)] if i < n - 1 else "__unseen__" for i in range(n)], dtype=object
        )
    pattern = np.array([np.nan, 0.0, 1.0, -1e6, 1e6, 3.5], dtype=np.float32)
    for j, c in enumerate(compiled.nums):
        cols[c] = np.resize(np.roll(pattern, j), n)
    return {c: cols[c] for c in spec.model_feature_names if c in cols}


def native(spec: UseCaseSpec, model: Any) -> Predict:
    """The registered pipeline as trained: one DataFrame, sklearn's own transform."""

    def predict(columns: Columns) -> np.ndarray:
        return modelframe.predict(spec, model, pd.DataFrame(dict(columns)))

    return predict


def predictor(spec: UseCaseSpec, model: Any) -> Predict:
    """The fastest scorer that gives exactly the registered pipeline's numbers."""
    try:
        compiled = _tree_rows(spec, model)
        if compiled is None:
            return native(spec, model)
        probe = probe_columns(spec, compiled)
        want = native(spec, model)(probe)
        got = compiled(probe)
    except Exception:  # never let the shortcut stop a model from being served
        log.exception("shipway: row scorer not compiled; scoring through the sklearn pipeline")
        return native(spec, model)
    if not np.array_equal(want, got, equal_nan=True):
        log.warning(
            "shipway: row scorer differs from the pipeline (max |diff| %g); "
            "scoring through the sklearn pipeline",
            float(np.nanmax(np.abs(want - got))),
        )
        return native(spec, model)
    return compiled
