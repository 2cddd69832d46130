"""The scored table of one chunk of batch input: what every batch output row carries.

Both batch paths (``shipway predict batch`` and a shard of the KFP batch pipeline) build
their rows here, through the real-time scoring path (:func:`shipway.scoring.features.fetch`
and the version's exact scorer), so a batch row gets the number ``/predict`` answers,
plus the lineage a reader needs to trust it: the row's key, the model name and version,
the feature service and the data version.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from shipway.core.spec import Task, UseCaseSpec
from shipway.scoring import features
from shipway.scoring.models import Pinned
from shipway.scoring.rowscorer import Predict

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


def score_table(
    spec: UseCaseSpec,
    store: Any,
    scorer: Predict,
    pinned: Pinned,
    table: pa.Table | pa.RecordBatch,
    keys: pa.Table | None = None,
) -> pa.Table:
    """Score one chunk; ``keys``: the columns that identify each row in the output
    (pass-through input columns or :func:`row_keys`), placed first."""
    check_columns(spec, table.schema.names, (), "input")
    rows = table.select(required_columns(spec)).to_pylist()
    feats = features.fetch(store, spec, rows)
    values = np.asarray(scorer(feats.columns), dtype=np.float64)
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
    out["missing_features"] = pa.array(feats.missing, type=pa.list_(pa.string()))
    n = len(values)
    lineage = (pinned.name, pinned.version, pinned.feature_service, pinned.data_version)
    out.update({col: constant(v, n) for col, v in zip(LINEAGE_COLUMNS, lineage, strict=True)})
    return pa.table(out)
