"""What the serving floor needs from the champion, written once by the benchmark process.

The floor (``benchmarks/serving_baseline.py``) must do /predict's work with the least
code: it should not pay for MLflow, scikit-learn or pandas in its process, since a bare
implementation would not load them either. So the benchmark reads the champion through
the registry here, takes the *fitted* pipeline apart (the ordinal encoder's category
table, the column order, the LightGBM Booster) and writes a small bundle: the Booster
as LightGBM's own model text and a JSON of everything else. The benchmark then checks
that the floor answers exactly what Shipway answers on real bookings before anything is
timed, so a bundle that lost precision would stop the run rather than skew it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from shipway.core import registry
from shipway.core.settings import Settings
from shipway.core.spec import UseCaseSpec

BOOSTER = "booster.txt"
TABLES = "floor.json"


def _fitted_parts(model: Any) -> tuple[Any, list[str], list[str], Any]:
    """(encoder, categorical columns, numeric columns, LightGBM estimator) of the learner's
    ``Pipeline([("pre", ColumnTransformer), ("model", estimator)])``."""
    pre, est = model.named_steps["pre"], model.named_steps["model"]
    fitted = {name: (t, list(cols)) for name, t, cols in pre.transformers_ if name != "remainder"}
    (enc, cats), (_, nums) = fitted["cat"], fitted["num"]
    if not hasattr(est, "booster_"):
        raise SystemExit("the serving floor needs a LightGBM champion (a fitted booster_)")
    return enc, cats, nums, est


def write_bundle(settings: Settings, spec: UseCaseSpec, out: Path) -> dict[str, Any]:
    """Write the champion's Booster and tables to ``out``; returns the JSON part."""
    client = registry.connect(settings.tracking_uri)
    mv = registry.alias_version(client, spec.registered_model_name, registry.CHAMPION)
    if mv is None:
        raise SystemExit(f"{spec.registered_model_name} has no champion to benchmark")
    model = registry.load(f"models:/{spec.registered_model_name}@{registry.CHAMPION}")
    enc, cats, nums, est = _fitted_parts(model)
    out.mkdir(parents=True, exist_ok=True)
    est.booster_.save_model(str(out / BOOSTER))
    types = {c.name: c.dtype.value for c in spec.request_fields}
    tables = {
        "usecase": spec.name,
        "model_name": spec.registered_model_name,
        "model_version": str(mv.version),
        "online_db": str(settings.state / "feast" / "online.db"),
        "entities": [
            {
                "entity": ef.entity,
                "table": f"shipway_{spec.feature_view_name(ef.entity)}",
                "defaults": {a.name: a.default for a in ef.aggregates},
            }
            for ef in spec.entity_features
        ],
        "entity_columns": spec.entity_columns,
        "request_fields": [
            {
                "name": c.name,
                "dtype": c.dtype.value,
                "min": c.min,
                "max": c.max,
                "allowed": c.allowed,
                "nullable": c.nullable,
            }
            for c in spec.request_fields
        ],
        "cats": cats,
        "codes": [{str(v): float(i) for i, v in enumerate(c)} for c in enc.categories_],
        "unknown": float(enc.unknown_value),
        "nums": nums,
        "types": types,
    }
    (out / TABLES).write_text(json.dumps(tables, indent=1))
    return tables
