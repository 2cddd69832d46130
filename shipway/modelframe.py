"""The model's input frame: the one feature logic shared by training and serving.

Training builds it from Feast historical retrieval, serving from Feast online retrieval
plus the request; both call ``model_frame`` so column order, types and missing-value
handling cannot drift apart (no training-serving skew).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from shipway.spec import DType, Task, UseCaseSpec

MISSING_CATEGORY = "__missing__"


def model_frame(spec: UseCaseSpec, df: pd.DataFrame) -> pd.DataFrame:
    """Select the model features in a fixed order with fixed types.

    Categorical fields become strings (null -> ``__missing__``); numbers become float32,
    the precision the ONNX runtime uses, so native and ONNX models see identical values.
    Stored features that are absent stay NaN for the learner, whose missing-value
    handling is part of the model; serving fills them by the declared policy first.
    """
    # fields the spec keeps out of the model (model.exclude) are not needed to build it
    missing = [c for c in spec.model_feature_names if c in spec.request_field_names]
    missing = [c for c in missing if c not in df.columns]
    if missing:
        raise KeyError(f"missing request field(s): {', '.join(missing)}")
    types = {c.name: c.dtype for c in spec.request_fields}
    columns: dict[str, pd.Series] = {}
    for name in spec.model_feature_names:
        col = df[name] if name in df.columns else pd.Series(np.nan, index=df.index)
        if types.get(name) is DType.str:
            columns[name] = col.astype("object").where(col.notna(), MISSING_CATEGORY).astype(str)
        else:
            columns[name] = pd.to_numeric(col, errors="coerce").astype(np.float32)
    # one constructor call, not a column insert per feature: the same frame, several times
    # faster on the single-row serving path (inserts dominated its latency)
    return pd.DataFrame(columns, index=df.index)


def target_vector(spec: UseCaseSpec, df: pd.DataFrame) -> np.ndarray:
    """The target as floats (regression) or 0/1 (positive class = 1)."""
    y = df[spec.target.column]
    if spec.target.task is Task.binary_classification:
        return (y.astype(str) == str(spec.target.positive_class)).astype(np.int64).to_numpy()
    return pd.to_numeric(y).astype(np.float64).to_numpy()
