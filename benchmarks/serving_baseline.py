"""The serving benchmark's baseline: the least a prediction endpoint must do, by hand.

A minimal FastAPI app (run by uvicorn) that reads the same Feast SQLite online table with
``sqlite3`` (entity key serialized as Feast does, values decoded from the protobuf) and
calls ``model.predict`` on the champion. No validation beyond FastAPI's, no missing-value
bookkeeping, no log, no metrics: the floor the Shipway service is compared with.

Run: ``uvicorn benchmarks.serving_baseline:app`` with the same ``SHIPWAY_*`` env.
"""

from __future__ import annotations

import os
import sqlite3
from typing import Any

import pandas as pd
from fastapi import FastAPI
from feast.infra.key_encoding_utils import serialize_entity_key
from feast.protos.feast.types.EntityKey_pb2 import EntityKey
from feast.protos.feast.types.Value_pb2 import Value

from shipway.core import registry
from shipway.core.settings import get_settings
from shipway.core.usecases import load_usecase

settings = get_settings()
spec = load_usecase(os.environ.get("SHIPWAY_USECASE") or settings.usecase, settings)
registry.connect(settings.tracking_uri)
model = registry.load(f"models:/{spec.registered_model_name}@{registry.CHAMPION}")
conn = sqlite3.connect(settings.state / "feast" / "online.db", check_same_thread=False)
tables = {ef.entity: f"shipway_{spec.feature_view_name(ef.entity)}" for ef in spec.entity_features}
app = FastAPI()


def read(entity: str, key: str) -> dict[str, float]:
    ek = EntityKey(join_keys=[entity], entity_values=[Value(string_val=key)])
    rows = conn.execute(
        f"SELECT feature_name, value FROM {tables[entity]} WHERE entity_key = ?",
        (serialize_entity_key(ek, 3),),
    ).fetchall()
    out = {}
    for name, raw in rows:
        v = Value()
        v.ParseFromString(raw)
        out[name] = v.double_val
    return out


@app.post("/predict")
def predict(row: dict[str, Any]) -> dict[str, float]:
    feats = {n: row[n] for n in spec.request_field_names}
    for ef in spec.entity_features:
        feats.update(read(ef.entity, str(row[ef.entity])))
    x = pd.DataFrame([feats], columns=spec.model_feature_names)
    return {"prediction": float(model.predict(x)[0])}
