"""The serving form scores exactly like the registered pipeline, or is refused.

A worker serving a version through its serving form never imports scikit-learn, skops or
the ``lightgbm`` package (issue 15): these tests fit the real learner, export the form,
load it back and compare bit for bit with the sklearn pipeline on rows it never saw (one
at a time and together, unseen categories and missing values included); a tampered
form, a form of other features and an unknown format are refused; and a fresh Python
process loading a form imports none of those packages.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from shipway.core import modelframe
from shipway.core.modelframe import model_columns, model_frame
from shipway.core.usecases import load_usecase
from shipway.scoring import servingform
from shipway.scoring.lgbm import LightGBMError, NativeBooster
from tests.syntheticrows import awkward_rows, fit_small

ROOT = Path(__file__).resolve().parents[2]


def _write(files: dict[str, bytes], folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, data in files.items():
        (folder / name).write_bytes(data)
    return folder


@pytest.mark.parametrize("usecase", ["hotel_rates", "credit_risk"])
def test_form_scores_bit_identically_to_the_pipeline(usecase: str, tmp_path: Path) -> None:
    spec = load_usecase(usecase)
    model, x = fit_small(spec, "lightgbm")
    files = servingform.export(spec, model)
    assert files is not None and set(files) == {servingform.LAYOUT, servingform.BOOSTER}
    scorer = servingform.load(spec, _write(files, tmp_path / "form"))
    assert isinstance(scorer.booster, NativeBooster) and scorer.estimator is None
    for df in (x.head(60), awkward_rows(spec)):
        want = modelframe.predict(spec, model, model_frame(spec, df))
        got = scorer(model_columns(spec, df, len(df)))
        assert np.array_equal(want, got), np.abs(want - got).max()
        for i in range(len(df)):
            one = df.iloc[i : i + 1]
            assert scorer(model_columns(spec, one, 1)).tolist() == want[i : i + 1].tolist()


def test_other_algorithms_have_no_form() -> None:
    spec = load_usecase("hotel_rates")
    for algorithm in ("random_forest", "linear"):
        model, _ = fit_small(spec, algorithm)
        assert servingform.export(spec, model) is None


def _exported(tmp_path: Path) -> tuple[Any, Path]:
    spec = load_usecase("hotel_rates")
    model, _ = fit_small(spec, "lightgbm")
    files = servingform.export(spec, model)
    assert files is not None
    return spec, _write(files, tmp_path / "form")


def test_a_form_that_answers_differently_is_refused(tmp_path: Path) -> None:
    spec, folder = _exported(tmp_path)
    doc = json.loads((folder / servingform.LAYOUT).read_text())
    doc["expected"][3] = (float.fromhex(doc["expected"][3]) + 1e-9).hex()
    (folder / servingform.LAYOUT).write_text(json.dumps(doc))
    with pytest.raises(servingform.FormRefused, match="probe answers"):
        servingform.load(spec, folder)


def test_a_form_of_other_features_or_format_is_refused(tmp_path: Path) -> None:
    spec, folder = _exported(tmp_path)
    layout = folder / servingform.LAYOUT
    doc = json.loads(layout.read_text())
    layout.write_text(json.dumps({**doc, "format": "shipway.serving/99"}))
    with pytest.raises(servingform.FormRefused, match="format"):
        servingform.load(spec, folder)
    layout.write_text(json.dumps({**doc, "features": doc["features"][:-1]}))
    with pytest.raises(servingform.FormRefused, match="model features"):
        servingform.load(spec, folder)


def test_native_booster_refuses_a_matrix_of_the_wrong_width(tmp_path: Path) -> None:
    spec, folder = _exported(tmp_path)
    scorer = servingform.load(spec, folder)
    with pytest.raises(LightGBMError, match="features"):
        scorer.booster.predict(np.zeros((2, 3), np.float32))
    with pytest.raises(LightGBMError):
        NativeBooster("not a model")


def test_loading_a_form_imports_no_sklearn_skops_or_lightgbm_package(tmp_path: Path) -> None:
    _, folder = _exported(tmp_path)
    code = (
        "import sys\n"
        "from shipway.core.usecases import load_usecase\n"
        "from shipway.scoring import servingform\n"
        f"s = servingform.load(load_usecase('hotel_rates'), __import__('pathlib').Path({str(folder)!r}))\n"
        "print(sorted(m for m in ('sklearn', 'skops', 'lightgbm', 'scipy') if m in sys.modules))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "[]", out.stdout + out.stderr
