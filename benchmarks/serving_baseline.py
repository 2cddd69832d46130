"""The serving benchmark's floor: /predict's work and guarantees in the least code.

A Starlette app under uvicorn that, per request: parses the JSON body once and checks
each field against the spec's type, range and allowed values (400 otherwise, as Shipway
refuses a bad row); reads the stored features of each entity from the same Feast SQLite
online table with ``sqlite3`` (Feast's own entity-key serialization, the values decoded
from Feast's protobuf); applies the declared default of an absent feature; builds the
float32 row with the fitted encoder's category table; calls the champion's LightGBM
``Booster`` on one thread (its default OpenMP pool spins every core for a single row:
about 7 ms of CPU instead of 0.07); and inserts the logged record (the same columns as Shipway's prediction
log, the inputs as JSON) and commits it with ``synchronous=FULL`` in WAL mode, so the
answer is on disk before it is returned, as Shipway promises. Nothing else: no
framework validation layer, no metrics, no access log, no thread hand-off (the endpoint
runs on the event loop; SQLite takes one writer at a time anyway). Each worker process
writes its own log file: two processes sharing one SQLite file wait for its lock in
SQLite's busy handler, which sleeps in steps of up to 100 ms and gave the floor p99s
of seconds at 16 connections, a weakness of the file sharing, not of the work.

The champion comes as a bundle the benchmark wrote (``benchmarks/floor_bundle.py``), so
this process never imports MLflow, scikit-learn or pandas. Run:
``SHIPWAY_FLOOR_BUNDLE=dir SHIPWAY_FLOOR_LOG=path/floor uvicorn benchmarks.serving_baseline:app``.
"""

from __future__ import annotations

import json
import math
import os
import sqlite3
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import lightgbm as lgb
import numpy as np
from feast.infra.key_encoding_utils import serialize_entity_key
from feast.protos.feast.types.EntityKey_pb2 import EntityKey
from feast.protos.feast.types.Value_pb2 import Value
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

MISSING_CATEGORY = "__missing__"
KEY_VERSION = 3
"""Feast's ``entity_key_serialization_version`` (feature_repo/feature_store.yaml)."""

BUNDLE = Path(os.environ.get("SHIPWAY_FLOOR_BUNDLE", "."))
T: dict[str, Any] = json.loads((BUNDLE / "floor.json").read_text())
BOOSTER = lgb.Booster(model_file=str(BUNDLE / "booster.txt"))
FIELDS: list[dict[str, Any]] = T["request_fields"]
CODES = dict(zip(T["cats"], T["codes"], strict=True))
_online = sqlite3.connect(T["online_db"], check_same_thread=False)
_log = sqlite3.connect(
    f"{os.environ.get('SHIPWAY_FLOOR_LOG', 'floor')}-{os.getpid()}.db", isolation_level=None
)
_log.execute("PRAGMA journal_mode=WAL")
_log.execute("PRAGMA synchronous=FULL")
_log.execute("PRAGMA busy_timeout=10000")
_log.execute(
    "CREATE TABLE IF NOT EXISTS predictions (request_id TEXT PRIMARY KEY, ts TEXT NOT NULL,"
    " usecase TEXT NOT NULL, model_name TEXT NOT NULL, model_version TEXT NOT NULL,"
    " variant TEXT NOT NULL, mode TEXT NOT NULL, entity_keys TEXT NOT NULL,"
    " features TEXT NOT NULL, missing TEXT NOT NULL, prediction REAL NOT NULL, label TEXT,"
    " event_time TEXT, latency_ms REAL NOT NULL)"
)
INSERT = (
    "INSERT INTO predictions VALUES (?, ?, ?, ?, ?, 'champion', 'served', ?, ?, ?, ?, NULL, ?, ?)"
)
_NUMBER: dict[str, type | tuple[type, ...]] = {"int": int, "float": (int, float)}


def invalid(row: Any) -> str | None:
    """Why ``row`` is not a valid request (the first problem), or None."""
    if not isinstance(row, dict):
        return "body must be a JSON object"
    known = {f["name"] for f in FIELDS} | set(T["entity_columns"])
    extra = set(row) - known
    if extra:
        return f"unknown field(s): {sorted(extra)}"
    for key in T["entity_columns"]:
        if not isinstance(row.get(key), str) or not 0 < len(row[key]) <= 256:
            return f"{key}: a key of 1-256 characters is required"
    for f in FIELDS:
        v = row.get(f["name"])
        if v is None:
            if f["nullable"] and f["name"] in row:
                continue
            return f"{f['name']}: required"
        if f["dtype"] == "str":
            if not isinstance(v, str) or (f["allowed"] and v not in f["allowed"]):
                return f"{f['name']}: not one of the allowed values"
            continue
        if isinstance(v, bool) or not isinstance(v, _NUMBER.get(f["dtype"], bool)):
            return f"{f['name']}: a {f['dtype']} is required"
        if (f["min"] is not None and v < f["min"]) or (f["max"] is not None and v > f["max"]):
            return f"{f['name']}: out of range"
    return None


def stored(entity: str, table: str, key: str) -> dict[str, Any]:
    """Feature name -> value of one entity key in Feast's online table (absent: {})."""
    ek = serialize_entity_key(
        EntityKey(join_keys=[entity], entity_values=[Value(string_val=key)]), KEY_VERSION
    )
    out: dict[str, Any] = {}
    for name, raw in _online.execute(
        f"SELECT feature_name, value FROM {table} WHERE entity_key = ?", (ek,)
    ):
        v = Value()
        v.ParseFromString(raw)
        kind = v.WhichOneof("val")
        out[name] = getattr(v, kind) if kind and kind != "null_val" else None
    return out


def features(row: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """The model inputs of ``row`` (request fields + stored features, defaults applied)."""
    values = {f["name"]: row.get(f["name"]) for f in FIELDS}
    missing: list[str] = []
    for e in T["entities"]:
        got = stored(e["entity"], e["table"], row[e["entity"]])
        for name, default in e["defaults"].items():
            v = got.get(name)
            if v is None or v != v:
                v = default
                missing.append(name)
            values[name] = v
    return values, missing


def vector(values: dict[str, Any]) -> np.ndarray:
    """The float32 row the fitted ColumnTransformer would build: codes, then numbers."""
    unknown = T["unknown"]
    x = [
        CODES[c].get(MISSING_CATEGORY if values[c] is None else str(values[c]), unknown)
        for c in T["cats"]
    ]
    x += [math.nan if values[c] is None else float(values[c]) for c in T["nums"]]
    return np.array([x], dtype=np.float32)


async def predict(request: Request) -> Response:
    t0 = time.perf_counter()
    try:
        row = json.loads(await request.body())
    except ValueError:
        return JSONResponse({"error": "body is not JSON"}, status_code=400)
    problem = invalid(row)
    if problem:
        return JSONResponse({"error": problem}, status_code=400)
    values, missing = features(row)
    x = vector(values)
    prediction = float(BOOSTER.predict(x, num_threads=1)[0])
    rid = request.headers.get("x-request-id") or str(uuid.uuid4())
    now = datetime.now(UTC).isoformat()
    keys = {k: row[k] for k in T["entity_columns"]}
    _log.execute(
        INSERT,
        (rid, now, T["usecase"], T["model_name"], T["model_version"],
         json.dumps(keys, sort_keys=True), json.dumps(values, sort_keys=True),
         json.dumps(missing), prediction, now, (time.perf_counter() - t0) * 1000.0),
    )  # fmt: skip  # autocommit: one fsync'd transaction, before the answer
    return JSONResponse(
        {
            "request_id": rid,
            "model_version": T["model_version"],
            "prediction": prediction,
            "missing_features": missing,
        }
    )


async def health(_: Request) -> Response:
    return Response("ok")


app = Starlette(routes=[Route("/predict", predict, methods=["POST"]), Route("/healthz", health)])
