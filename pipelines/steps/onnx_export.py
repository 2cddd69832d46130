"""Edge deployment: export the trained pipeline to ONNX and check parity with the native model."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from shipway.spec import Task, UseCaseSpec


def _register_lightgbm() -> None:
    from lightgbm import LGBMClassifier, LGBMRegressor
    from onnxmltools.convert.lightgbm.operator_converters.LightGbm import convert_lightgbm
    from skl2onnx import update_registered_converter
    from skl2onnx.common.shape_calculator import (
        calculate_linear_classifier_output_shapes,
        calculate_linear_regressor_output_shapes,
    )

    update_registered_converter(
        LGBMRegressor,
        "LightGbmLGBMRegressor",
        calculate_linear_regressor_output_shapes,
        convert_lightgbm,
    )
    update_registered_converter(
        LGBMClassifier,
        "LightGbmLGBMClassifier",
        calculate_linear_classifier_output_shapes,
        convert_lightgbm,
        options={"nocl": [True, False], "zipmap": [True, False, "columns"]},
    )


def to_onnx(spec: UseCaseSpec, model: Any) -> bytes:
    """Serialise the whole pipeline (encoders included) with one input per model column."""
    from skl2onnx import to_onnx as sk_to_onnx
    from skl2onnx.common.data_types import FloatTensorType, StringTensorType

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
    return bytes(onx.SerializeToString())


def onnx_predict(spec: UseCaseSpec, onnx_bytes: bytes, x: pd.DataFrame) -> np.ndarray:
    import onnxruntime as ort

    sess = ort.InferenceSession(onnx_bytes, providers=["CPUExecutionProvider"])
    cats = set(spec.categorical_features)
    feeds = {
        n: (
            x[n].astype(str).to_numpy().reshape(-1, 1)
            if n in cats
            else x[n].to_numpy(dtype=np.float32).reshape(-1, 1)
        )
        for n in spec.model_feature_names
    }
    outs = sess.run(None, feeds)
    if spec.target.task is Task.binary_classification:
        return np.asarray(outs[1])[:, 1].astype(np.float64)
    return np.asarray(outs[0]).reshape(-1).astype(np.float64)


def parity(spec: UseCaseSpec, native: np.ndarray, onnx_bytes: bytes, x: pd.DataFrame) -> float:
    """Maximum absolute difference between ONNX and native predictions on ``x``."""
    diff = np.abs(onnx_predict(spec, onnx_bytes, x) - native)
    return float(np.max(diff)) if len(diff) else 0.0
