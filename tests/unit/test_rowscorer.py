"""The serving fast path gives exactly the registered pipeline's numbers, or is not used.

``services.rowscorer`` replaces sklearn's per-call pandas layer for a few rows; these
tests fit the real learner (LightGBM and random forest, regression and classification)
and compare bit for bit with the sklearn pipeline, unseen categories and missing values
included. ``model_columns`` (the serving path's model inputs) must equal
``model_frame`` (the training path's) for the same rows.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from typing import Any

import numpy as np
import pandas as pd
import pytest

from shipway.core import modelframe
from shipway.core.modelframe import MISSING_CATEGORY, model_columns, model_frame
from shipway.core.usecases import load_usecase
from shipway.scoring import rowscorer
from shipway.scoring.features import Features
from tests.syntheticrows import awkward_rows, fit_small, random_rows, synthetic_target


@pytest.mark.parametrize("usecase", ["hotel_rates", "credit_risk"])
@pytest.mark.parametrize("algorithm", ["lightgbm", "random_forest"])
def test_compiled_scorer_is_bit_identical_to_the_pipeline(usecase: str, algorithm: str) -> None:
    spec = load_usecase(usecase)
    model, x = fit_small(spec, algorithm)
    scorer = rowscorer.predictor(spec, model)
    assert isinstance(scorer, rowscorer.TreeRows)  # the fast path is really taken
    assert (scorer.booster is not None) == (algorithm == "lightgbm")  # LightGBM: its Booster
    for df in (pd.concat([x.head(50)]), awkward_rows(spec)):
        frame = model_frame(spec, df)
        want = modelframe.predict(spec, model, frame)
        got = scorer(model_columns(spec, df, len(df)))
        assert np.array_equal(want, got), np.abs(want - got).max()
    one = awkward_rows(spec).head(1)
    assert (
        scorer(model_columns(spec, one, 1)).tolist()
        == modelframe.predict(spec, model, model_frame(spec, one)).tolist()
    )


def test_other_layouts_score_through_the_pipeline() -> None:
    spec = load_usecase("hotel_rates")
    model, x = fit_small(spec, "linear")
    scorer = rowscorer.predictor(spec, model)
    assert not isinstance(scorer, rowscorer.TreeRows)
    cols = model_columns(spec, x.head(5), 5)
    assert np.array_equal(scorer(cols), modelframe.predict(spec, model, x.head(5)))


def test_a_scorer_that_disagrees_is_not_used(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    spec = load_usecase("hotel_rates")
    model, x = fit_small(spec, "lightgbm")
    compiled = rowscorer._tree_rows(spec, model)
    assert compiled is not None
    swapped = [dict(zip(t, reversed(list(t.values())), strict=True)) for t in compiled.codes]
    monkeypatch.setattr(rowscorer, "_tree_rows", lambda s, m: replace(compiled, codes=swapped))
    with caplog.at_level(logging.WARNING, logger="shipway.service"):
        scorer = rowscorer.predictor(spec, model)
    assert not isinstance(scorer, rowscorer.TreeRows)
    assert "differs from the pipeline" in caplog.text
    assert np.array_equal(
        scorer(model_columns(spec, x.head(8), 8)), modelframe.predict(spec, model, x.head(8))
    )


def test_a_booster_that_disagrees_falls_back_with_one_line(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """The load-time check compares the Booster's numbers too: another model's Booster
    (real trees, other numbers) is refused and the pipeline scores."""
    spec = load_usecase("hotel_rates")
    model, x = fit_small(spec, "lightgbm")
    other, _ = fit_small(spec.model_copy(), "lightgbm")
    other.set_params(model__random_state=99, model__n_estimators=7)
    other.fit(x, synthetic_target(spec, x, seed=5))
    compiled = rowscorer._tree_rows(spec, model)
    assert compiled is not None and compiled.booster is not None
    foreign = replace(compiled, booster=other.named_steps["model"].booster_)
    monkeypatch.setattr(rowscorer, "_tree_rows", lambda s, m: foreign)
    with caplog.at_level(logging.INFO, logger="shipway.service"):
        scorer = rowscorer.predictor(spec, model)
    assert not isinstance(scorer, rowscorer.TreeRows)
    assert len(caplog.records) == 1 and "differs from the pipeline" in caplog.text
    assert np.array_equal(
        scorer(model_columns(spec, x.head(8), 8)), modelframe.predict(spec, model, x.head(8))
    )


def test_model_columns_type_like_model_frame() -> None:
    spec = load_usecase("hotel_rates")
    df = awkward_rows(spec)
    cat, num = spec.categorical_features[0], spec.model_feature_names[-1]
    df.loc[7, cat] = pd.NA
    df.loc[8, cat] = 5
    df.loc[9, num] = "abc"
    cols = model_columns(spec, df, len(df))
    assert list(cols) == spec.model_feature_names
    assert cols[cat][1] == cols[cat][7] == MISSING_CATEGORY
    assert cols[cat][8] == "5"
    assert np.isnan(cols[num][9])
    nums = [c for c in spec.model_feature_names if c not in spec.categorical_features]
    assert cols[nums[0]][4] == np.float32(7.5) and cols[nums[0]][6] == 1.0
    assert all(cols[c].dtype == np.float32 for c in nums)
    # the serving path hands plain lists; the training path a DataFrame: same values
    as_lists = {c: df[c].tolist() for c in df.columns}
    pd.testing.assert_frame_equal(
        pd.DataFrame(model_columns(spec, as_lists, len(df))), model_frame(spec, df)
    )
    with pytest.raises(KeyError, match=spec.request_field_names[0]):
        model_columns(spec, df.drop(columns=[spec.request_field_names[0]]), len(df))


def test_logged_inputs_equal_the_frame_records() -> None:
    spec = load_usecase("hotel_rates")
    df = awkward_rows(spec)
    feats = Features(model_columns(spec, df, len(df)), [[] for _ in range(len(df))])
    got, want = feats.records(), feats.x.to_dict("records")
    assert len(got) == len(want)
    for g, w in zip(got, want, strict=True):
        assert g.keys() == w.keys()
        assert all(g[k] == w[k] or (g[k] != g[k] and w[k] != w[k]) for k in g)  # NaN == NaN
        assert all(type(g[k]) is type(w[k]) for k in g)
    first = spec.model_feature_names[0]
    assert np.array_equal(
        feats.take([1, 3])[first], feats.x[first].iloc[[1, 3]].to_numpy(), equal_nan=True
    )


@pytest.mark.parametrize(
    "values",
    [
        [1.5, None, 3, True, np.float64(2.2), np.int64(7), 2**40 + 1, 1e300, -0.0],
        [None],
        [0.1],
        ["12", 1.0],  # text: pandas' coercion
        [pd.NA, 2.0],
        [float("nan"), "abc", 4],
    ],
)
def test_plain_number_cast_gives_pandas_bits(values: list[Any]) -> None:
    """The per-request cast skips pandas only where it gives the very same float32 bits."""
    arr = np.asarray(values, dtype=object)
    want = np.asarray(pd.to_numeric(arr, errors="coerce"), dtype=np.float32)
    assert modelframe._number(arr).tobytes() == want.tobytes()


@pytest.mark.parametrize(
    "values", [["a", None, "b"], [None], ["x"], ["a", float("nan")], [pd.NA, "b"], [5, "c"]]
)
def test_plain_category_cast_gives_pandas_strings(values: list[Any]) -> None:
    arr = np.asarray(values, dtype=object)
    want = [MISSING_CATEGORY if pd.isna(v) else str(v) for v in values]
    assert modelframe._category(arr).tolist() == want


def test_model_columns_follow_the_spec_object_they_are_given() -> None:
    """The per-spec plan is cached by identity: another spec gets its own columns."""
    hotel, credit = load_usecase("hotel_rates"), load_usecase("credit_risk")
    for spec in (hotel, credit, hotel):
        cols = model_columns(spec, random_rows(spec, 3), 3)
        assert list(cols) == spec.model_feature_names
