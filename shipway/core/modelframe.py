"""The model's input frame: the one feature logic shared by training and serving.

Training builds it from Feast historical retrieval, serving from Feast online retrieval
plus the request; both call ``model_frame`` so column order, types and missing-value
handling cannot drift apart (no training-serving skew).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from shipway.core.spec import DType, Task, UseCaseSpec

MISSING_CATEGORY = "__missing__"


def _category(values: np.ndarray) -> np.ndarray:
    """Strings, null -> ``MISSING_CATEGORY`` (``str()`` of each value, as pandas' astype)."""
    mask = pd.isna(values)
    return np.array(
        [MISSING_CATEGORY if m else str(v) for v, m in zip(values, mask, strict=True)],
        dtype=object,
    )


def _number(values: np.ndarray) -> np.ndarray:
    """float32; anything that is not a number (None, pd.NA, text) becomes NaN."""
    if values.dtype.kind in "biuf":
        return values.astype(np.float32)
    return np.asarray(pd.to_numeric(values, errors="coerce"), dtype=np.float32)


def model_columns(spec: UseCaseSpec, data: Mapping[str, Any], n: int) -> dict[str, np.ndarray]:
    """The model features of ``n`` rows, in order, as typed arrays (see :func:`model_frame`).

    ``data`` maps column names to sequences of ``n`` values (a DataFrame's columns or the
    online store's lists); fields the spec keeps out of the model need not be present.
    """
    missing = [c for c in spec.model_feature_names if c in spec.request_field_names]
    missing = [c for c in missing if c not in data]
    if missing:
        raise KeyError(f"missing request field(s): {', '.join(missing)}")
    types = {c.name: c.dtype for c in spec.request_fields}
    out: dict[str, np.ndarray] = {}
    for name in spec.model_feature_names:
        if name in data:
            col = data[name]
            values = col.to_numpy() if isinstance(col, pd.Series) else np.asarray(col, dtype=object)
        else:
            values = np.full(n, np.nan, dtype=object)
        out[name] = _category(values) if types.get(name) is DType.str else _number(values)
    return out


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
