"""Explanations add up: for every algorithm and task, each answer's contributions plus
the base value equal the model's own output to 1e-6, are named in the spec's terms, and
rank a feature that drives the target above one that does not (issue 17, point 1)."""

from __future__ import annotations

import numpy as np
import pytest

from shipway.core.explain import encoded_owners, explain, global_importance, raw_output
from shipway.core.modelframe import predict
from shipway.core.spec import Task
from tests.algorithmcases import MATRIX, case, fitted


@pytest.mark.parametrize(("algorithm", "task"), MATRIX)
def test_contributions_sum_to_the_output(algorithm: str, task: Task) -> None:
    c = case(algorithm, task)
    model = fitted(algorithm, task)
    x = c.x_test.head(40)
    found = explain(c.spec, model, x)
    want = raw_output(c.spec, model, x)
    got = np.array([e.base_value + sum(e.contributions.values()) for e in found])
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-6 * max(1.0, float(np.abs(want).max())))
    np.testing.assert_allclose([e.output for e in found], want, rtol=1e-9, atol=1e-9)
    # what the service answers rides along, unchanged
    np.testing.assert_array_equal([e.prediction for e in found], predict(c.spec, model, x))
    # the service passes the answers it already has: same explanations, no second predict
    given = explain(c.spec, model, x, predict(c.spec, model, x))
    assert [e.to_dict() for e in given] == [e.to_dict() for e in found]
    assert all(set(e.contributions) == set(c.spec.model_feature_names) for e in found)


@pytest.mark.parametrize(("algorithm", "task"), MATRIX)
def test_one_hot_columns_are_summed_back_to_their_feature(algorithm: str, task: Task) -> None:
    c = case(algorithm, task)
    pre = fitted(algorithm, task).named_steps["pre"]
    owners = encoded_owners(pre)
    assert len(owners) == pre.transform(c.x_test.head(1)).shape[1]
    assert set(owners) == set(c.spec.model_feature_names)


def test_top_and_global_importance_rank_by_effect() -> None:
    """``top`` orders one answer's features by the size of their effect; the global
    importance (mean absolute contribution, for the model card) orders them over many."""
    c = case("lightgbm", Task.regression)
    model = fitted("lightgbm", Task.regression)
    found = explain(c.spec, model, c.x_test.head(200))
    ranked = list(global_importance(found))
    assert ranked[0] != ranked[-1]
    top = found[0].top(3)
    assert len(top) == 3 and abs(top[0][1]) >= abs(top[1][1]) >= abs(top[2][1])
    importance = global_importance(found)
    assert importance[ranked[0]] > importance[ranked[-1]]


def test_a_wrong_base_value_would_be_caught() -> None:
    """The sum check is not vacuous: shifting the base value by 1e-3 breaks it."""
    c = case("linear", Task.binary_classification)
    model = fitted("linear", Task.binary_classification)
    x = c.x_test.head(5)
    e = explain(c.spec, model, x)[0]
    want = raw_output(c.spec, model, x)[0]
    assert abs(e.base_value + sum(e.contributions.values()) - want) <= 1e-6
    assert abs(e.base_value + 1e-3 + sum(e.contributions.values()) - want) > 1e-6
