"""Random rows of a spec's fields and small models fitted on them, for the tests that
compare a fast scoring path with the registered pipeline (row scorer, serving form)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from pipelines.steps import learner
from shipway.core.modelframe import model_frame
from shipway.core.spec import DType, Task, UseCaseSpec


def random_rows(spec: UseCaseSpec, n: int, seed: int = 0) -> pd.DataFrame:
    """Random rows of every model field; categories drawn from the spec's allowed values."""
    rng = np.random.default_rng(seed)
    data: dict[str, Any] = {}
    for c in spec.request_fields:
        if c.dtype is DType.str:
            data[c.name] = rng.choice(c.allowed or ["p", "q", "r"], n)
        else:
            data[c.name] = rng.integers(0, 30, n).astype(float)
    for name in spec.stored_feature_names:
        data[name] = rng.normal(100, 10, n)
    return pd.DataFrame(data)


def synthetic_target(spec: UseCaseSpec, x: pd.DataFrame, seed: int = 1) -> np.ndarray:
    """A noisy target the numeric columns explain, of the spec's task."""
    rng = np.random.default_rng(seed)
    nums = x.select_dtypes("number").fillna(0).to_numpy().sum(axis=1)
    signal = nums - nums.mean() + rng.normal(0, nums.std() + 1, len(x))
    if spec.target.task is Task.binary_classification:
        return (signal > 0).astype(np.int64)
    return signal


def fit_small(spec: UseCaseSpec, algorithm: str) -> tuple[Any, pd.DataFrame]:
    """``algorithm`` fitted on 400 random rows (30 trees): the model and its inputs."""
    spec = spec.model_copy(update={"model": spec.model.model_copy(update={"algorithm": algorithm})})
    x = model_frame(spec, random_rows(spec, 400))
    hp: dict[str, Any] = {"n_estimators": 30, "n_jobs": 1}
    if algorithm == "lightgbm":
        hp["verbose"] = -1
    return learner.fit(spec, hp, x, synthetic_target(spec, x)), x


def awkward_rows(spec: UseCaseSpec) -> pd.DataFrame:
    """Rows a client can send: unseen categories, nulls, numbers as text, extremes."""
    df = random_rows(spec, 12, seed=7).astype(object)
    cats = spec.categorical_features
    nums = [c for c in spec.model_feature_names if c not in cats]
    df.loc[0, cats[0]] = "never_seen_in_training"
    df.loc[1, cats[0]] = None
    df.loc[2, cats[-1]] = np.nan
    df.loc[3, nums[0]] = None
    df.loc[4, nums[0]] = "7.5"
    df.loc[5, nums[-1]] = 1e9
    df.loc[6, nums[0]] = True
    return df
