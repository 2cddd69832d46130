"""The real served app's variants: champion/challenger split and shadow, hot reload,
bearer auth, a registry empty at start (503, then ready) and a model failing at predict
time (500 without leaking). Durability (every acknowledged prediction survives kill -9)
is tests/integration/test_faults.py's.

A private MLflow registry per module (copies of the session champion, plus a model that
fails at predict time) keeps the session registry untouched while aliases move here.
"""

from __future__ import annotations

import re
import shutil
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pytest

from services.models import bucket
from shipway.core.launch import ServiceHandle, start_service, wait_ready
from shipway.core.predictionlog import PredictionLog
from shipway.core.settings import Settings
from shipway.core.spec import UseCaseSpec
from shipway.data.replay import future_bookings, request_body
from tests.conftest import free_port, require, tool_env

pytestmark = pytest.mark.integration
TOKEN = "s3cret-token-for-tests"


class Registry:
    """A private registry: register sklearn models, move aliases."""

    def __init__(self, root: Path) -> None:
        from shipway.core import registry

        self.uri = f"sqlite:///{root / 'mlflow.db'}"
        self.artifacts = (root / "artifacts").as_uri()
        self.client = registry.connect(self.uri)
        self.client.search_registered_models()  # creates the schema: an empty registry

    def register(self, model: Any) -> str:
        import mlflow

        from shipway.core import registry

        registry.connect(self.uri)
        exp = registry.experiment(self.client, "hotel_rates", self.artifacts)
        with mlflow.start_run(experiment_id=exp):
            info = mlflow.sklearn.log_model(
                model, name="model", skops_trusted_types=registry.SKOPS_TRUSTED
            )
        return str(mlflow.register_model(info.model_uri, "hotel_rates").version)

    def alias(self, alias: str, version: str) -> None:
        self.client.set_registered_model_alias("hotel_rates", alias, version)


def ghost_feature_model(spec: UseCaseSpec) -> Any:
    """A real fitted pipeline that needs a feature the feature service does not provide:
    predict fails inside sklearn (the failure mode of a model/feature-set mismatch)."""
    from lightgbm import LGBMRegressor
    from sklearn.compose import ColumnTransformer
    from sklearn.pipeline import Pipeline

    cols = [c for c in spec.model_feature_names if c not in spec.categorical_features]
    cols.append("room_upgrade_score")
    rng = np.random.default_rng(0)
    x = pd.DataFrame(rng.random((200, len(cols))), columns=cols)
    pipe = Pipeline(
        [
            ("pre", ColumnTransformer([("num", "passthrough", cols)])),
            ("model", LGBMRegressor(n_estimators=5, verbose=-1)),
        ]
    )
    return pipe.fit(x, rng.random(200))


@dataclass
class Served:
    handle: ServiceHandle
    registry: Registry
    versions: dict[str, str]
    log: PredictionLog
    readyz_before: list[int] = field(default_factory=list)


@pytest.fixture(scope="module")
def bookings(settings: Settings, hotel: UseCaseSpec) -> pd.DataFrame:
    return future_bookings(settings, hotel, 40)


def _start(settings: Settings, hotel: UseCaseSpec, root: Path, **env: str) -> ServiceHandle:
    require(shutil.which("bentoml", path=tool_env()["PATH"]) is not None, "bentoml CLI missing")
    env.setdefault("SHIPWAY_PREDICTION_LOG_URI", str(root / "predictions.db"))
    return start_service(
        settings, hotel, free_port(), env=env, base_env=tool_env(), log_path=root / "service.log"
    )


@pytest.fixture(scope="module")
def split(
    settings: Settings,
    hotel: UseCaseSpec,
    champion_model: Any,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Served]:
    """Split 50% with auth on, started on an EMPTY registry that is filled afterwards."""
    root = tmp_path_factory.mktemp("split")
    reg = Registry(root)
    handle = _start(
        settings,
        hotel,
        root,
        SHIPWAY_MLFLOW_TRACKING_URI=reg.uri,
        SHIPWAY_CHALLENGER_MODE="split",
        SHIPWAY_CHALLENGER_PERCENT="50",
        SHIPWAY_API_TOKEN=TOKEN,
        SHIPWAY_RELOAD_INTERVAL_SECONDS="1",
        SHIPWAY_STARTUP_RETRY_SECONDS="1",
    )
    served = Served(handle, reg, {}, PredictionLog(str(root / "predictions.db")))
    try:
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline and "registry unavailable" not in _log(handle):
            assert handle.proc.poll() is None, _log(handle)
            time.sleep(0.5)
        served.readyz_before.append(httpx.get(f"{handle.url}/readyz").status_code)
        served.readyz_before.append(httpx.get(f"{handle.url}/livez").status_code)
        served.versions["v1"] = reg.register(champion_model)
        served.versions["v2"] = reg.register(champion_model)
        reg.alias("champion", served.versions["v1"])
        reg.alias("challenger", served.versions["v2"])
        wait_ready(handle)
        yield served
    finally:
        handle.stop()


def _log(handle: ServiceHandle) -> str:
    return handle.log_path.read_text(errors="replace") if handle.log_path.exists() else ""


def _auth() -> dict[str, str]:
    return {"Authorization": f"Bearer {TOKEN}"}


def test_unavailable_registry_at_start_is_503_then_recovers(split: Served) -> None:
    assert split.readyz_before == [503, 200]  # not ready, but alive (no crash loop)
    assert re.search(r"model registry unavailable .*/readyz is 503", _log(split.handle))
    assert httpx.get(f"{split.handle.url}/readyz").status_code == 200


def test_bearer_auth(split: Served, bookings: pd.DataFrame, hotel: UseCaseSpec) -> None:
    body = request_body(hotel, bookings.iloc[0])
    with httpx.Client(base_url=split.handle.url) as c:
        none = c.post("/predict", json=body)
        assert none.status_code == 401 and none.headers["www-authenticate"].startswith("Bearer")
        assert (
            c.post("/predict", json=body, headers={"Authorization": "Bearer nope"}).status_code
            == 401
        )
        assert c.post("/predict_batch", json=[body]).status_code == 401
        assert c.post("/feedback", json={"request_id": "x", "actual": 1}).status_code == 401
        assert c.post("/predict", json=body, headers=_auth()).status_code == 200
        assert c.get("/readyz").status_code == 200 and c.get("/metrics").status_code == 200
    assert TOKEN not in _log(split.handle)


def test_split_is_deterministic_by_entity_key(
    split: Served, bookings: pd.DataFrame, hotel: UseCaseSpec
) -> None:
    rows = [request_body(hotel, r) for _, r in bookings.iterrows()]
    with httpx.Client(base_url=split.handle.url, headers=_auth(), timeout=60) as c:
        first = [c.post("/predict", json=r).json() for r in rows]
        second = c.post("/predict_batch", json=rows).json()
    for row, a, b in zip(rows, first, second, strict=True):
        expected = "challenger" if bucket([row["agent"], row["country"]]) < 50 else "champion"
        assert a["variant"] == b["variant"] == expected
        version = split.versions["v2" if expected == "challenger" else "v1"]
        assert a["model_version"] == b["model_version"] == version
    assert {a["variant"] for a in first} == {"champion", "challenger"}
    logged = split.log.get(first[0]["request_id"])
    assert logged is not None and logged["variant"] == first[0]["variant"]


def test_oip_versions_are_the_served_ones_and_a_version_route_forces_it(
    split: Served, bookings: pd.DataFrame, hotel: UseCaseSpec
) -> None:
    """The OIP lists champion and challenger as the model's versions; infer on a version
    answers every row with that version (logged as such, no shadow copy); without one
    the rows are split exactly as /predict splits them. Auth guards infer as /predict."""
    rows = [request_body(hotel, r) for _, r in bookings.iterrows()][:12]
    base = f"{split.handle.url}/v2/models/{hotel.name}"
    v1, v2 = split.versions["v1"], split.versions["v2"]
    with httpx.Client(headers=_auth(), timeout=60) as c:
        meta = c.get(base).json()
        assert meta["versions"] == [v1, v2]
        types = {t["name"]: t["datatype"] for t in meta["inputs"]}
        inputs = [
            {"name": n, "shape": [len(rows)], "datatype": types[n], "data": [r[n] for r in rows]}
            for n in types
        ]
        assert httpx.post(f"{base}/infer", json={"inputs": inputs}).status_code == 401
        answers = {}
        for version, path in ((v1, f"/versions/{v1}"), (v2, f"/versions/{v2}"), (None, "")):
            resp = c.post(f"{base}{path}/infer", json={"inputs": inputs})
            assert resp.status_code == 200, resp.text
            out = {o["name"]: o["data"] for o in resp.json()["outputs"]}
            answers[version] = out
            if version is not None:
                assert set(out["model_version"]) == {version}
                assert resp.json()["model_version"] == version
        assert set(answers[v1]["variant"]) == {"champion"}
        assert set(answers[v2]["variant"]) == {"challenger"}
        split_rows = answers[None]
        for i, row in enumerate(rows):
            expected = "challenger" if bucket([row["agent"], row["country"]]) < 50 else "champion"
            assert split_rows["variant"][i] == expected
        for rid in answers[v2]["request_id"]:
            logged = split.log.get(rid)
            assert logged is not None and logged["variant"] == "challenger"
            assert logged["model_version"] == v2
        assert c.get(f"{base}/versions/999999").status_code == 404


def _hammer(url: str, body: dict, stop: threading.Event, out: list[httpx.Response]) -> None:
    with httpx.Client(base_url=url, headers=_auth(), timeout=60) as c:
        while not stop.is_set():
            out.append(c.post("/predict", json=body))


def _champion_body(rows: list[dict]) -> dict:
    return next(r for r in rows if bucket([r["agent"], r["country"]]) >= 50)


def _challenger_body(rows: list[dict]) -> dict:
    return next(r for r in rows if bucket([r["agent"], r["country"]]) < 50)


def test_new_champion_is_hot_swapped_without_downtime(
    split: Served, bookings: pd.DataFrame, hotel: UseCaseSpec, champion_model: Any
) -> None:
    rows = [request_body(hotel, r) for _, r in bookings.iterrows()]
    v3 = split.registry.register(champion_model)
    stop, seen = threading.Event(), []
    worker = threading.Thread(
        target=_hammer, args=(split.handle.url, _champion_body(rows), stop, seen)
    )
    worker.start()
    try:
        time.sleep(1.0)
        split.registry.alias("champion", v3)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if seen and seen[-1].status_code == 200 and seen[-1].json()["model_version"] == v3:
                break
            time.sleep(0.2)
        time.sleep(0.5)
    finally:
        stop.set()
        worker.join(60)
        split.registry.alias("champion", split.versions["v1"])
    assert [r.status_code for r in seen if r.status_code != 200] == []  # no downtime
    versions = [r.json()["model_version"] for r in seen]
    assert versions[0] == split.versions["v1"] and versions[-1] == v3
    switch = versions.index(v3)
    assert set(versions[switch:]) == {v3}  # swapped once, atomically, never flapping


def test_internal_failure_is_500_without_leaking(
    split: Served, bookings: pd.DataFrame, hotel: UseCaseSpec
) -> None:
    rows = [request_body(hotel, r) for _, r in bookings.iterrows()]
    broken = split.registry.register(ghost_feature_model(hotel))
    split.registry.alias("challenger", broken)
    try:
        with httpx.Client(base_url=split.handle.url, headers=_auth(), timeout=60) as c:
            deadline, resp = time.monotonic() + 60, None
            while time.monotonic() < deadline:
                resp = c.post("/predict", json=_challenger_body(rows))
                if resp.status_code != 200:
                    break
                time.sleep(0.3)
            assert resp is not None and resp.status_code == 500
            text = resp.text
            for leak in ("room_upgrade_score", "Traceback", "ValueError", "sklearn", "/work"):
                assert leak not in text
            assert "error" in resp.json()
            # the champion's entities keep being answered while the challenger is broken
            ok = c.post("/predict", json=_champion_body(rows))
            assert ok.status_code == 200 and ok.json()["variant"] == "champion"
            metrics = c.get("/metrics").text
        assert (
            'shipway_requests_total{endpoint="/predict",status="500",usecase="hotel_rates"}'
            in metrics
        )
        log = _log(split.handle)
        assert "failed to score" in log and "room_upgrade_score" in log  # the operator sees why
    finally:
        split.registry.alias("challenger", split.versions["v2"])


@pytest.fixture(scope="module")
def shadow(
    settings: Settings,
    hotel: UseCaseSpec,
    champion_model: Any,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Served]:
    root = tmp_path_factory.mktemp("shadow")
    reg = Registry(root)
    versions = {"v1": reg.register(champion_model), "v2": reg.register(champion_model)}
    reg.alias("champion", versions["v1"])
    reg.alias("challenger", versions["v2"])
    handle = _start(
        settings, hotel, root, SHIPWAY_MLFLOW_TRACKING_URI=reg.uri, SHIPWAY_CHALLENGER_MODE="shadow"
    )
    try:
        wait_ready(handle)
        yield Served(handle, reg, versions, PredictionLog(str(root / "predictions.db")))
    finally:
        handle.stop()


def test_shadow_scores_challenger_but_champion_answers(
    shadow: Served, bookings: pd.DataFrame, hotel: UseCaseSpec
) -> None:
    rows = [request_body(hotel, r) for _, r in bookings.iterrows()]
    with httpx.Client(base_url=shadow.handle.url, timeout=60) as c:
        answers = [c.post("/predict", json=r).json() for r in rows]
        metrics = c.get("/metrics").text
    assert {(a["variant"], a["model_version"]) for a in answers} == {
        ("champion", shadow.versions["v1"])
    }
    for a in answers:
        served = shadow.log.get(a["request_id"])
        shadow_row = shadow.log.get(a["request_id"] + ":shadow")
        assert served is not None and served["mode"] == "served"
        assert shadow_row is not None
        assert (shadow_row["mode"], shadow_row["variant"], shadow_row["model_version"]) == (
            "shadow",
            "challenger",
            shadow.versions["v2"],
        )
        assert shadow_row["features"] == served["features"]
    line = next(
        ln
        for ln in metrics.splitlines()
        if ln.startswith("shipway_predictions_total") and 'variant="challenger"' in ln
    )
    assert float(line.rsplit(" ", 1)[1]) >= len(rows)
