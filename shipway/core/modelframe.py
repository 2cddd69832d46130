"""The model's input frame: the one feature logic shared by training and serving.

Training builds it from Feast historical retrieval, serving from Feast online retrieval
plus the request; both call ``model_frame`` so column order, types and missing-value
handling cannot drift apart (no training-serving skew).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from shipway.core.spec import DType, Task, UseCaseSpec

MISSING_CATEGORY = "__missing__"


def _category(values: np.ndarray) -> np.ndarray:
    """Strings, null -> ``MISSING_CATEGORY`` (``str()`` of each value, as pandas' astype)."""
    if all(type(v) is str or v is None for v in values):  # a request's row: no pandas call
        return np.array([MISSING_CATEGORY if v is None else v for v in values], dtype=object)
    mask = pd.isna(values)
    return np.array(
        [MISSING_CATEGORY if m else str(v) for v, m in zip(values, mask, strict=True)],
        dtype=object,
    )


_PLAIN_NUMBERS = frozenset(
    {float, int, bool, type(None), np.float64, np.float32, np.int64, np.int32, np.bool_}
)
"""Types numpy casts to float32 exactly as ``pd.to_numeric`` then ``astype`` would (None
becomes NaN): the values a validated request and the online store hold."""


def _number(values: np.ndarray) -> np.ndarray:
    """float32; anything that is not a number (None, pd.NA, text) becomes NaN.

    A serving call holds one row of plain numbers: numpy's own cast gives the same bits
    as ``pd.to_numeric`` at a fraction of its per-call cost (about 15 us a column, issue
    15), so pandas is kept for the values that need its coercion (text, pd.NA).
    """
    with np.errstate(over="ignore"):  # out of float32 range -> inf, as pandas gives
        return _number_quiet(values)


def _number_quiet(values: np.ndarray) -> np.ndarray:
    """:func:`_number` for a caller that has already silenced numpy's overflow warning
    (one ``np.errstate`` per request instead of one per column)."""
    if values.dtype.kind in "biuf":
        return values.astype(np.float32)
    if all(type(v) in _PLAIN_NUMBERS for v in values):
        return np.array(values, dtype=np.float32)
    return np.asarray(pd.to_numeric(values, errors="coerce"), dtype=np.float32)


@dataclass(frozen=True)
class _Plan:
    """What :func:`model_columns` derives from a spec, computed once per spec object
    (the spec is frozen; its list properties are rebuilt on every access)."""

    names: tuple[str, ...]
    request: frozenset[str]
    categorical: frozenset[str]


_PLANS: dict[int, tuple[UseCaseSpec, _Plan]] = {}


def _plan(spec: UseCaseSpec) -> _Plan:
    hit = _PLANS.get(id(spec))
    if hit is not None and hit[0] is spec:
        return hit[1]
    plan = _Plan(
        names=tuple(spec.model_feature_names),
        request=frozenset(spec.request_field_names),
        categorical=frozenset(c.name for c in spec.request_fields if c.dtype is DType.str),
    )
    if len(_PLANS) >= 64:  # tests build many specs; a service holds one or two
        _PLANS.clear()
    _PLANS[id(spec)] = (spec, plan)  # the spec is kept alive: its id cannot be reused
    return plan


def model_columns(spec: UseCaseSpec, data: Mapping[str, Any], n: int) -> dict[str, np.ndarray]:
    """The model features of ``n`` rows, in order, as typed arrays (see :func:`model_frame`).

    ``data`` maps column names to sequences of ``n`` values (a DataFrame's columns or the
    online store's lists); fields the spec keeps out of the model need not be present.
    """
    plan = _plan(spec)
    missing = [c for c in plan.names if c in plan.request and c not in data]
    if missing:
        raise KeyError(f"missing request field(s): {', '.join(missing)}")
    out: dict[str, np.ndarray] = {}
    with np.errstate(over="ignore"):  # out of float32 range -> inf, as pandas gives
        for name in plan.names:
            if name in data:
                col = data[name]
                values = (
                    col.to_numpy() if isinstance(col, pd.Series) else np.asarray(col, dtype=object)
                )
            else:
                values = np.full(n, np.nan, dtype=object)
            out[name] = _category(values) if name in plan.categorical else _number_quiet(values)
    return out


def model_column(spec: UseCaseSpec, name: str, values: np.ndarray) -> np.ndarray:
    """One model feature typed as the model takes it: strings (null -> ``MISSING_CATEGORY``)
    for a ``str`` request field, float32 for everything else. Element-wise, so a batch may
    convert each distinct value once and index the result."""
    return _category(values) if is_category(spec, name) else _number(values)


def is_category(spec: UseCaseSpec, name: str) -> bool:
    """Whether the model takes ``name`` as a category (a ``str`` request field)."""
    return name in _plan(spec).categorical


def model_frame(spec: UseCaseSpec, df: pd.DataFrame) -> pd.DataFrame:
    """Select the model features in a fixed order with fixed types.

    Categorical fields become strings (null -> ``__missing__``); numbers become float32,
    the precision the ONNX runtime uses, so native and ONNX models see identical values.
    Stored features that are absent stay NaN for the learner, whose missing-value
    handling is part of the model; serving fills them by the declared policy first.
    """
    return pd.DataFrame(model_columns(spec, df, len(df)), index=df.index)


def target_vector(spec: UseCaseSpec, df: pd.DataFrame) -> np.ndarray:
    """The target as floats (regression) or 0/1 (positive class = 1)."""
    y = df[spec.target.column]
    if spec.target.task is Task.binary_classification:
        return (y.astype(str) == str(spec.target.positive_class)).astype(np.int64).to_numpy()
    return pd.to_numeric(y).astype(np.float64).to_numpy()


def predict(spec: UseCaseSpec, model: Any, x: pd.DataFrame) -> np.ndarray:
    """Regression: the value. Classification: the probability of the positive class."""
    if spec.target.task is Task.binary_classification:
        return np.asarray(model.predict_proba(x))[:, 1]
    return np.asarray(model.predict(x), dtype=np.float64)
