"""The learner: an sklearn Pipeline (encoding + estimator) chosen by the spec.

Encoding lives inside the pipeline, so the registered model takes the raw model frame
(``shipway.modelframe``) and answers unseen categories (encoded as -1) and missing
numbers (native NaN handling) with a defined prediction instead of an error.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, OrdinalEncoder, StandardScaler

from shipway.spec import Task, UseCaseSpec

# Each estimator family is imported where the spec chooses it: every KFP step that loads
# or fits a model is a fresh process, and sklearn.ensemble (random forests) is not needed
# to fit or unpickle a LightGBM or linear pipeline.


def hyperparameters(spec: UseCaseSpec, params: dict[str, Any]) -> dict[str, Any]:
    """params.yaml ``train.<algorithm>`` merged with ``train.overrides.<usecase>``."""
    train = params.get("train", {}) or {}
    base = dict(train.get(spec.model.algorithm, {}) or {})
    base.update((train.get("overrides", {}) or {}).get(spec.name, {}) or {})
    return base


def _estimator(spec: UseCaseSpec, hp: dict[str, Any]) -> Any:
    clf = spec.target.task is Task.binary_classification
    algo = spec.model.algorithm
    if algo == "lightgbm":
        from lightgbm import LGBMClassifier, LGBMRegressor

        return (LGBMClassifier if clf else LGBMRegressor)(**hp)
    if algo == "random_forest":
        from sklearn.ensemble import RandomForestClassifier, RandomForestRegressor

        return (RandomForestClassifier if clf else RandomForestRegressor)(**hp)
    from sklearn.linear_model import LogisticRegression, Ridge

    if clf:
        return LogisticRegression(C=float(hp.get("C", 1.0)), max_iter=2000)
    return Ridge(alpha=float(hp.get("alpha", 1.0)))


def make_pipeline(spec: UseCaseSpec, hp: dict[str, Any]) -> Pipeline:
    """Encoding + the spec's estimator; every model column stays an input of the model.

    The linear learner imputes medians with ``keep_empty_features``: a column with no value
    in the training window (an entity feature nobody had yet) would otherwise be dropped
    at fit time, and the pipeline would take fewer columns than the model frame has, which
    its ONNX export (one input per model column) cannot represent.
    """
    cats = spec.categorical_features
    nums = [c for c in spec.model_feature_names if c not in cats]
    if spec.model.algorithm == "linear":
        from sklearn.impute import SimpleImputer

        impute = SimpleImputer(strategy="median", keep_empty_features=True)
        pre = ColumnTransformer(
            [
                ("cat", OneHotEncoder(handle_unknown="ignore", sparse_output=False), cats),
                ("num", Pipeline([("impute", impute), ("scale", StandardScaler())]), nums),
            ]
        )
    else:
        enc = OrdinalEncoder(handle_unknown="use_encoded_value", unknown_value=-1, dtype=np.float32)
        pre = ColumnTransformer([("cat", enc, cats), ("num", "passthrough", nums)])
    return Pipeline([("pre", pre), ("model", _estimator(spec, hp))])


def fit(spec: UseCaseSpec, hp: dict[str, Any], x: pd.DataFrame, y: np.ndarray) -> Pipeline:
    model = make_pipeline(spec, hp)
    model.fit(x, y)
    return model


def predict(spec: UseCaseSpec, model: Any, x: pd.DataFrame) -> np.ndarray:
    """Regression: the value. Classification: the probability of the positive class."""
    if spec.target.task is Task.binary_classification:
        return np.asarray(model.predict_proba(x))[:, 1]
    return np.asarray(model.predict(x), dtype=np.float64)
