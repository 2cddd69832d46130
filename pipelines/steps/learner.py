"""The learner: an sklearn Pipeline (encoding + estimator) chosen by the spec.

Encoding lives inside the pipeline, so the registered model takes the raw model frame
(``shipway.core.modelframe``) and answers unseen categories (encoded as -1) and missing
numbers (native NaN handling) with a defined prediction instead of an error.
"""

from __future__ import annotations

import inspect
import logging
from typing import Any, get_args

import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, OrdinalEncoder, StandardScaler

from shipway.core.spec import ModelConfig, Task, UseCaseSpec

log = logging.getLogger(__name__)
ALGORITHMS: tuple[str, ...] = get_args(ModelConfig.model_fields["algorithm"].annotation)
"""Every ``model.algorithm`` the spec accepts."""
LINEAR_PARAMS = {"C", "alpha"}
"""What the linear learner takes: C (logistic regression), alpha (ridge)."""

# Each estimator family is imported where the spec chooses it: every KFP step that loads
# or fits a model is a fresh process, and sklearn.ensemble (random forests) is not needed
# to fit or unpickle a LightGBM or linear pipeline.


def hyperparameters(spec: UseCaseSpec, params: dict[str, Any]) -> dict[str, Any]:
    """params.yaml ``train.<algorithm>``, then the use case's ``train.overrides.<usecase>``.

    A use case's overrides are tuned for one learner (``shipway init`` writes small-data
    LightGBM trees: ``learning_rate``, ``num_leaves``...), and its spec may switch to
    another algorithm: a random forest would fail on ``learning_rate``. So overrides under
    ``overrides.<usecase>.<algorithm>`` apply to that algorithm only, and top-level
    overrides apply where the estimator takes them; the others are skipped, with a warning
    that names them.
    """
    train = params.get("train", {}) or {}
    algo = spec.model.algorithm
    hp = dict(train.get(algo, {}) or {})
    overrides = dict((train.get("overrides", {}) or {}).get(spec.name, {}) or {})
    per_algorithm = {a: overrides.pop(a) for a in ALGORITHMS if isinstance(overrides.get(a), dict)}
    accepted = _accepted(spec)
    skipped = sorted(k for k in overrides if accepted is not None and k not in accepted)
    if skipped:
        log.warning(
            "params.yaml train.overrides.%s: %s not taken by %s, skipped (nest overrides "
            "for one algorithm under train.overrides.%s.<algorithm>)",
            spec.name,
            ", ".join(skipped),
            algo,
            spec.name,
        )
    hp.update((k, v) for k, v in overrides.items() if k not in skipped)
    hp.update(per_algorithm.get(algo, {}))
    return hp


def _estimator_class(spec: UseCaseSpec) -> type | None:
    """The tree estimator's class; None for the linear learner (it takes LINEAR_PARAMS)."""
    clf = spec.target.task is Task.binary_classification
    if spec.model.algorithm == "lightgbm":
        from lightgbm import LGBMClassifier, LGBMRegressor

        return LGBMClassifier if clf else LGBMRegressor
    if spec.model.algorithm == "random_forest":
        from sklearn.ensemble import RandomForestClassifier, RandomForestRegressor

        return RandomForestClassifier if clf else RandomForestRegressor
    return None


def _accepted(spec: UseCaseSpec) -> set[str] | None:
    """The hyperparameter names the spec's estimator takes; None: any name (LightGBM's
    ``**kwargs`` go to the booster, which knows its own parameters and aliases)."""
    cls = _estimator_class(spec)
    if cls is None:
        return LINEAR_PARAMS
    kinds = {p.kind for p in inspect.signature(cls).parameters.values()}
    return None if inspect.Parameter.VAR_KEYWORD in kinds else set(cls().get_params())


def _estimator(spec: UseCaseSpec, hp: dict[str, Any]) -> Any:
    cls = _estimator_class(spec)
    if cls is not None:
        return cls(**hp)
    from sklearn.linear_model import LogisticRegression, Ridge

    if spec.target.task is Task.binary_classification:
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
