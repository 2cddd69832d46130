"""A model's serving form: what a prediction worker needs to score it, and nothing more.

The registered model is a scikit-learn pipeline saved in MLflow's skops format. Loading it
means importing scikit-learn, SciPy, skops (which pulls in pytest and dask) and the
``lightgbm`` package: about 170 MB of every worker's memory before the first request,
for a model whose prediction is a category table and LightGBM's C library (issue 15).

At registration, :func:`export` writes the fitted pipeline's tree layout
(:class:`shipway.scoring.rowscorer.TreeRows`: categorical and numeric columns, the
fitted encoder's category table, the unknown-category code) and the Booster's own text,
plus a probe (rows visiting every known category, an unseen one, NaN and extreme
numbers) with the registered pipeline's answers to it, as exact hex floats. A worker
:func:`load`s that with LightGBM's C library only (:mod:`shipway.scoring.lgbm`) and
refuses it unless it reproduces every probe answer bit for bit, one row at a time and as
one matrix. Any other model layout has no serving form and is served through its
pipeline, as before.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from shipway.core.spec import UseCaseSpec
from shipway.scoring.lgbm import NativeBooster
from shipway.scoring.rowscorer import TreeRows, native, probe_columns

FORMAT = "shipway.serving/1"
LAYOUT, BOOSTER = "layout.json", "booster.txt"


class FormRefused(ValueError):
    """A serving form that cannot be used (unknown format, or answers that differ)."""


def _column(values: np.ndarray) -> list[Any]:
    if values.dtype == object:
        return [str(v) for v in values]
    return [None if math.isnan(float(v)) else float(v) for v in values]


def _probe_from(data: Mapping[str, list[Any]], layout: TreeRows) -> dict[str, np.ndarray]:
    cols: dict[str, np.ndarray] = {}
    for name, values in data.items():
        if name in layout.cats:
            cols[name] = np.array(values, dtype=object)
        else:
            cols[name] = np.array([np.nan if v is None else v for v in values], np.float32)
    return cols


def export(spec: UseCaseSpec, model: Any) -> dict[str, bytes] | None:
    """The serving form's files for a fitted pipeline, or None when it has none (not the
    LightGBM tree layout, or the C library's answers differ from the pipeline's)."""
    from shipway.scoring.rowscorer import _tree_rows

    layout = _tree_rows(spec, model)
    if layout is None or layout.booster is None:
        return None
    booster = layout.booster
    text = booster.model_to_string(num_iteration=-1)
    probe = probe_columns(spec, layout)
    expected = np.asarray(native(spec, model)(probe), dtype=np.float64)
    doc = {
        "format": FORMAT,
        "usecase": spec.name,
        "features": list(spec.model_feature_names),
        "cats": layout.cats,
        "nums": layout.nums,
        "categories": [list(table) for table in layout.codes],
        "unknown": layout.unknown,
        "proba": layout.proba,
        "num_iteration": int(booster.best_iteration),
        "probe": {name: _column(values) for name, values in probe.items()},
        "expected": [float(v).hex() for v in expected],
    }
    files = {LAYOUT: json.dumps(doc, indent=1).encode(), BOOSTER: text.encode()}
    try:
        _verified(spec, doc, text)
    except FormRefused:
        return None
    return files


def _verified(spec: UseCaseSpec, doc: Mapping[str, Any], booster_text: str) -> TreeRows:
    """The form as a scorer, once it reproduces every recorded probe answer exactly."""
    if doc.get("format") != FORMAT:
        raise FormRefused(f"serving form format {doc.get('format')!r}, expected {FORMAT!r}")
    if list(doc["features"]) != list(spec.model_feature_names):
        raise FormRefused("serving form was made for other model features than the spec's")
    codes = [{str(v): float(i) for i, v in enumerate(c)} for c in doc["categories"]]
    layout = TreeRows(
        cats=list(doc["cats"]),
        nums=list(doc["nums"]),
        codes=codes,
        unknown=float(doc["unknown"]),
        estimator=None,
        proba=bool(doc["proba"]),
        booster=NativeBooster(booster_text, int(doc["num_iteration"])),
    )
    probe = _probe_from(doc["probe"], layout)
    want = np.array([float.fromhex(v) for v in doc["expected"]], dtype=np.float64)
    together = layout(probe)
    one_by_one = np.concatenate(
        [layout({c: v[i : i + 1] for c, v in probe.items()}) for i in range(len(want))]
    )
    for got in (together, one_by_one):
        if not np.array_equal(want, got, equal_nan=True):
            raise FormRefused(
                "serving form does not reproduce the registered pipeline's probe answers "
                f"(max |diff| {float(np.nanmax(np.abs(want - got))):g})"
            )
    return layout


def load(spec: UseCaseSpec, folder: Path) -> TreeRows:
    """A downloaded serving form as the scorer of the version it belongs to."""
    doc = json.loads((folder / LAYOUT).read_text())
    return _verified(spec, doc, (folder / BOOSTER).read_text())
