"""The scored table of one chunk of batch input: what every batch output row carries.

Both batch paths (``shipway predict batch`` and a shard of the KFP batch pipeline) build
their rows here, through the real-time scoring path (:func:`shipway.scoring.features.fetch`
and the version's exact scorer), so a batch row gets the number ``/predict`` answers,
plus the lineage a reader needs to trust it: the row's key, the model name and version,
the feature service and the data version.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from shipway.core import modelframe
from shipway.core.spec import Task, UseCaseSpec
from shipway.scoring import features
from shipway.scoring.models import Pinned
from shipway.scoring.rowscorer import Predict, TreeRows

ROW_KEY = "row_key"
"""The default key column: ``<file relative to the input>#<row number in the file>``."""
LINEAGE_COLUMNS = ("model_name", "model_version", "feature_service", "data_version")


def required_columns(spec: UseCaseSpec) -> list[str]:
    """The input columns scoring needs: entity keys and request (booking-time) fields."""
    return spec.entity_columns + spec.request_field_names


def check_columns(spec: UseCaseSpec, names: Sequence[str], keys: Sequence[str], where: str) -> None:
    """A clear error naming the columns (and the file) when the input lacks any."""
    absent = [c for c in [*required_columns(spec), *keys] if c not in names]
    if absent:
        raise ValueError(f"{where} lacks column(s): {', '.join(dict.fromkeys(absent))}")


def row_keys(name: str, first_row: int, n: int) -> pa.Array:
    """``name#row`` for rows ``first_row .. first_row + n - 1`` of one file."""
    numbers = pa.array(np.arange(first_row, first_row + n, dtype=np.int64)).cast(pa.string())
    return pc.binary_join_element_wise(pa.scalar(f"{name}#"), numbers, "")


def constant(value: str, n: int) -> pa.Array:
    """A string column of one repeated value, dictionary-encoded (cheap at any length)."""
    return pa.DictionaryArray.from_arrays(
        pa.array(np.zeros(n, dtype=np.int32)), pa.array([value], pa.string())
    )


def _distinct(column: pa.ChunkedArray | pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """Distinct values of a column (nulls included, as None) as an object array, and each
    row's index into them (Arrow's hash-based dictionary encoding)."""
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks()
    encoded = pc.dictionary_encode(column, null_encoding="encode")
    return np.asarray(encoded.dictionary.to_pylist(), dtype=object), encoded.indices.to_numpy()


@dataclass(frozen=True)
class BatchColumns:
    """The model columns of a batch: numbers as arrays, categories factorized."""

    dense: dict[str, np.ndarray]
    factorized: dict[str, tuple[np.ndarray, np.ndarray]]
    """Per categorical column: its distinct model values and each row's index into them."""
    order: list[str]

    def columns(self) -> dict[str, np.ndarray]:
        """Every column spread to the rows, in model order (what a generic scorer takes)."""
        cats = {c: values[idx] for c, (values, idx) in self.factorized.items()}
        return {c: self.dense[c] if c in self.dense else cats[c] for c in self.order}

    def predict(self, scorer: Predict, threads: int = 1) -> np.ndarray:
        """``scorer`` on these rows; the tree layout encodes each category once."""
        if isinstance(scorer, TreeRows):
            return scorer.predict_matrix(scorer.matrix(self.dense, self.factorized), threads)
        return np.asarray(scorer(self.columns()), dtype=np.float64)


def columnar_features(
    spec: UseCaseSpec, store: Any, table: pa.Table | pa.RecordBatch
) -> tuple[BatchColumns, pa.Array]:
    """The model columns and the per-row missing-feature lists of :func:`features.fetch`,
    computed per *distinct* value instead of per row: the stored features are read once
    per distinct entity-key tuple (with the declared defaults applied there), every
    category is typed once per distinct value (``modelframe.model_column``, element-wise)
    and the stored features are spread back to the rows by index: the same values as the
    per-row path, at any batch size. Only for feature services whose views are all stored
    (``features.stored_refs``): an on-demand transformation needs whole rows."""
    n = table.num_rows
    stored: dict[str, list[Any]] = {}
    inverse = np.zeros(n, dtype=np.int64)
    missing = pa.array([[]] * n, pa.list_(pa.string()))
    if spec.entity_columns:
        texts = [table.column(k).cast(pa.string()) for k in spec.entity_columns]
        joined = (
            pc.binary_join_element_wise(*[pc.fill_null(t, "\x00") for t in texts], "\x1f")
            if len(texts) > 1
            else texts[0]
        )
        _, inverse = _distinct(joined)
        firsts = pa.array(_first_rows(inverse))
        keys = {
            k: t.take(firsts).to_pylist() for k, t in zip(spec.entity_columns, texts, strict=True)
        }
        rows = [dict(zip(keys, vals, strict=True)) for vals in zip(*keys.values(), strict=True)]
        stored = features.read_online(store, spec, rows)
        per_key, _ = features.fill_missing(spec, stored, len(rows))
        missing = pa.array(per_key, pa.list_(pa.string())).take(pa.array(inverse))
    dense: dict[str, np.ndarray] = {}
    factorized: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for name in spec.model_feature_names:
        if modelframe.is_category(spec, name):
            values, idx = _distinct(table.column(name))
            factorized[name] = (modelframe.model_column(spec, name, values), idx)
        elif name in spec.request_field_names:
            values = table.column(name).to_numpy(zero_copy_only=False)
            dense[name] = modelframe.model_column(spec, name, values)
        elif name in stored:
            per_key_values = np.asarray(stored[name], dtype=object)
            dense[name] = modelframe.model_column(spec, name, per_key_values)[inverse]
        else:  # declared but never stored: what model_columns gives an absent column
            dense[name] = modelframe.model_column(spec, name, np.full(n, np.nan, object))
    return BatchColumns(dense, factorized, list(spec.model_feature_names)), missing


def _first_rows(inverse: np.ndarray) -> np.ndarray:
    """For each distinct value (``inverse`` indexes them), the first row that holds it."""
    _, first = np.unique(inverse, return_index=True)
    return first


def score_table(
    spec: UseCaseSpec,
    store: Any,
    scorer: Predict,
    pinned: Pinned,
    table: pa.Table | pa.RecordBatch,
    keys: pa.Table | None = None,
    threads: int = 1,
) -> pa.Table:
    """Score one chunk; ``keys``: the columns that identify each row in the output
    (pass-through input columns or :func:`row_keys`), placed first; ``threads``: of a
    LightGBM Booster (0: all cores, for a job alone on the machine; 1 for parallel shards)."""
    check_columns(spec, table.schema.names, (), "input")
    if features.stored_refs(store, spec) is None:  # a real on-demand transformation: per row
        feats = features.fetch(store, spec, table.select(required_columns(spec)).to_pylist())
        values = np.asarray(scorer(feats.columns), dtype=np.float64)
        missing = pa.array(feats.missing, pa.list_(pa.string()))
    else:
        batch, missing = columnar_features(spec, store, table)
        values = batch.predict(scorer, threads)
    out: dict[str, Any] = {}
    if keys is not None:
        out.update({name: keys.column(name) for name in keys.schema.names})
    out.update({k: table.column(k).cast(pa.string()) for k in spec.entity_columns if k not in out})
    out["prediction"] = pa.array(values, type=pa.float64())
    if spec.target.task is Task.binary_classification:
        positive = features.decided_positive(spec, values)
        negative_label, positive_label = features.labels(spec)
        out["predicted_class"] = pa.array(positive.astype(np.int8), type=pa.int8())
        out["label"] = pa.array(np.where(positive, positive_label, negative_label), pa.string())
    out["missing_features"] = missing
    n = len(values)
    lineage = (pinned.name, pinned.version, pinned.feature_service, pinned.data_version)
    out.update({col: constant(v, n) for col, v in zip(LINEAGE_COLUMNS, lineage, strict=True)})
    return pa.table(out)
