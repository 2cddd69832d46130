"""Edge deployment: export the trained pipeline to ONNX and check parity with the native model.

What an ONNX tree or linear model promises is the native model's answer in float32
arithmetic on float32 inputs: a tree threshold is a float32, a linear coefficient is a
float32, and a sum of many leaves or terms rounds like one. :func:`compare` holds the
export to exactly that promise and to no more: both models are fed the same
float32-rounded inputs, a regression answer is compared relative to its own size (float32
keeps about 7 significant digits, so a house price of 500,000 moves by 0.03 in its last
bit), and a classifier is compared on the positive-class probability and on the class it
decides at the spec's ``decision_threshold``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pandas as pd

from shipway.core import modelframe
from shipway.core.spec import Task, UseCaseSpec

_TREE_OPS = ("TreeEnsembleClassifier", "TreeEnsembleRegressor")


def float32_threshold(threshold: float, mode: str) -> float:
    """The float32 threshold that sends every float32 input the way ``threshold`` does.

    LightGBM splits on double thresholds such as 267.19999694824224, just below the data
    value 267.2f. Rounded to the nearest float32 (what the LightGBM converter writes) that
    threshold *is* 267.2f, so a row holding exactly that value takes the other branch in
    ONNX: one tree's leaf differs and a probability moves by a few hundredths. Rounding
    towards the side the comparison keeps (down for ``x <= t`` and ``x > t``, up for
    ``x < t`` and ``x >= t``) keeps every float32 comparison exact, as skl2onnx already does
    for scikit-learn's trees (``skl2onnx.common.tree_ensemble.sklearn_threshold``).
    """
    if mode not in ("BRANCH_LEQ", "BRANCH_GT", "BRANCH_LT", "BRANCH_GTE"):
        return threshold  # leaves and set membership: nothing is compared
    nearest = np.float32(threshold)
    if mode in ("BRANCH_LEQ", "BRANCH_GT") and float(nearest) > threshold:
        nearest = np.nextafter(nearest, np.float32(-np.inf))
    elif mode in ("BRANCH_LT", "BRANCH_GTE") and float(nearest) < threshold:
        nearest = np.nextafter(nearest, np.float32(np.inf))
    return float(nearest)


class _ExactThresholds:
    """A converter container whose tree-ensemble nodes get :func:`float32_threshold`s.

    The LightGBM converter still holds the booster's double thresholds when it adds the
    node; the container is the one place they can be rounded the right way before ONNX
    stores them as floats. Everything else passes through unchanged.
    """

    def __init__(self, container: Any) -> None:
        self._container = container

    def __getattr__(self, name: str) -> Any:
        return getattr(self._container, name)

    def add_node(self, op_type: str, *args: Any, **attrs: Any) -> Any:
        if op_type in _TREE_OPS and "nodes_values" in attrs:
            attrs["nodes_values"] = [
                float32_threshold(float(v), m)
                for v, m in zip(attrs["nodes_values"], attrs["nodes_modes"], strict=True)
            ]
        return self._container.add_node(op_type, *args, **attrs)


def _convert_lightgbm(scope: Any, operator: Any, container: Any) -> None:
    """onnxmltools' LightGBM converter, with thresholds exact for float32 inputs."""
    from onnxmltools.convert.lightgbm.operator_converters.LightGbm import convert_lightgbm

    convert_lightgbm(scope, operator, _ExactThresholds(container))


def _register_lightgbm() -> None:
    from lightgbm import LGBMClassifier, LGBMRegressor
    from skl2onnx import update_registered_converter
    from skl2onnx.common.shape_calculator import (
        calculate_linear_classifier_output_shapes,
        calculate_linear_regressor_output_shapes,
    )

    update_registered_converter(
        LGBMRegressor,
        "LightGbmLGBMRegressor",
        calculate_linear_regressor_output_shapes,
        _convert_lightgbm,
    )
    update_registered_converter(
        LGBMClassifier,
        "LightGbmLGBMClassifier",
        calculate_linear_classifier_output_shapes,
        _convert_lightgbm,
        options={"nocl": [True, False], "zipmap": [True, False, "columns"]},
    )


def to_onnx(spec: UseCaseSpec, model: Any) -> bytes:
    """Serialise the whole pipeline (encoders included) with one input per model column."""
    from skl2onnx import to_onnx as sk_to_onnx
    from skl2onnx.common.data_types import FloatTensorType, StringTensorType

    if spec.model.algorithm == "lightgbm":
        _register_lightgbm()
    cats = set(spec.categorical_features)
    inputs = [
        (n, StringTensorType([None, 1]) if n in cats else FloatTensorType([None, 1]))
        for n in spec.model_feature_names
    ]
    options = None
    if spec.target.task is Task.binary_classification:
        options = {id(model.steps[-1][1]): {"zipmap": False}}
    onx = sk_to_onnx(
        model, initial_types=inputs, options=options, target_opset={"": 17, "ai.onnx.ml": 3}
    )
    if spec.model.algorithm == "random_forest":
        _missing_values_as_trained(onx, model.steps[-1][1])
    return bytes(onx.SerializeToString())


def _missing_values_as_trained(onx: Any, forest: Any) -> None:
    """Send a missing value down the side each split of ``forest`` learned for it.

    scikit-learn's trees learn, per split, where rows with a missing value go
    (``tree_.missing_go_to_left``); skl2onnx writes "missing goes right" at every split of
    a random forest, so an applicant with no declared income scored 0.35 in ONNX and 0.81
    natively. The ONNX tree ensemble has the same per-split switch
    (``nodes_missing_value_tracks_true``): it gets each tree's own value.
    """
    from onnx import helper

    (node,) = [n for n in onx.graph.node if n.op_type in _TREE_OPS]
    attrs = {a.name: a for a in node.attribute}
    trees, ids = attrs["nodes_treeids"].ints, attrs["nodes_nodeids"].ints
    modes = attrs["nodes_modes"].strings
    tracks = [
        int(mode != b"LEAF" and bool(forest.estimators_[t].tree_.missing_go_to_left[i]))
        for t, i, mode in zip(trees, ids, modes, strict=True)
    ]
    name = "nodes_missing_value_tracks_true"
    if name in attrs:
        node.attribute.remove(attrs[name])
    node.attribute.append(helper.make_attribute(name, tracks))


def onnx_inputs(spec: UseCaseSpec, x: pd.DataFrame) -> pd.DataFrame:
    """``x`` as the ONNX model receives it: categories as strings, numbers as float32.

    The model frame already has these types (``shipway.core.modelframe``); converting again
    makes parity hold for any frame a caller passes, not only for model frames.
    """
    cats = set(spec.categorical_features)
    return pd.DataFrame(
        {
            n: x[n].astype(str) if n in cats else x[n].to_numpy(dtype=np.float32)
            for n in spec.model_feature_names
        },
        index=x.index,
    )


def onnx_predict(spec: UseCaseSpec, onnx_bytes: bytes, x: pd.DataFrame) -> np.ndarray:
    """The ONNX model's answer on ``x``: the value, or the positive class's probability."""
    import onnxruntime as ort

    sess = ort.InferenceSession(onnx_bytes, providers=["CPUExecutionProvider"])
    fed = onnx_inputs(spec, x)
    feeds = {n: fed[n].to_numpy().reshape(-1, 1) for n in spec.model_feature_names}
    outs = sess.run(None, feeds)
    if spec.target.task is Task.binary_classification:
        return np.asarray(outs[1])[:, 1].astype(np.float64)
    return np.asarray(outs[0]).reshape(-1).astype(np.float64)


@dataclass(frozen=True)
class Parity:
    """What :func:`compare` found; ``max_error`` is the figure the gate holds to tolerance."""

    rows: int
    max_error: float
    """Max over rows of |onnx - native| / max(1, |native|): the absolute difference for a
    probability (and any value below 1), the relative one for larger values."""
    tolerance: float
    decision_threshold: float | None = None
    """Classification: the cut-off both models' classes are decided at."""
    class_disagreements: int | None = None
    """Classification: rows whose decided class differs, among those held to agreement."""
    near_threshold: int | None = None
    """Classification: rows whose native probability is within ``tolerance`` of the
    threshold; an allowed difference can flip their class, so they are not held to it."""

    @property
    def passed(self) -> bool:
        """Within tolerance, and (classifiers) no decided class differs outside the band.

        A class can only flip outside the band if the probability moved by more than the
        tolerance, so the second condition never fails alone; it is kept so the evidence
        states the decision agreement instead of leaving it to be inferred.
        """
        return self.max_error <= self.tolerance and not self.class_disagreements

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "passed": self.passed}


def compared(spec: UseCaseSpec) -> str:
    """One sentence for the evidence: what parity compares for this use case."""
    tol = spec.acceptance.onnx_tolerance
    if spec.target.task is Task.binary_classification:
        thr = spec.acceptance.decision_threshold
        return (
            "ONNX vs native on the test split, both fed the same float32 inputs: "
            f"|difference| of the positive-class probability, and the class decided at "
            f"{thr:g} (rows within {tol:g} of it are not held to class agreement)"
        )
    return (
        "ONNX vs native on the test split, both fed the same float32 inputs: "
        "|difference| / max(1, |native prediction|) (float32 keeps ~7 significant digits)"
    )


def compare(spec: UseCaseSpec, model: Any, onnx_bytes: bytes, x: pd.DataFrame) -> Parity:
    """Parity of the ONNX export with the native ``model`` on the rows of ``x``, both fed
    the same float32-rounded inputs (:func:`onnx_inputs`)."""

    fed = onnx_inputs(spec, x)
    return measure(spec, modelframe.predict(spec, model, fed), onnx_predict(spec, onnx_bytes, fed))


def measure(spec: UseCaseSpec, native: np.ndarray, got: np.ndarray) -> Parity:
    """:class:`Parity` of ONNX answers ``got`` with the ``native`` ones, row by row."""
    tol = spec.acceptance.onnx_tolerance
    err = np.abs(got - native) / np.maximum(1.0, np.abs(native))
    # NaN on both sides agrees; NaN on one side only is as wrong as it gets
    err = np.where(np.isnan(got) & np.isnan(native), 0.0, np.nan_to_num(err, nan=np.inf))
    worst = float(err.max()) if len(err) else 0.0
    if spec.target.task is not Task.binary_classification:
        return Parity(len(err), worst, tol)
    thr = spec.acceptance.decision_threshold
    held = np.abs(native - thr) > tol
    flipped = (native >= thr) != (got >= thr)
    return Parity(len(err), worst, tol, thr, int((flipped & held).sum()), int((~held).sum()))
