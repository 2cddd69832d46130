"""Every algorithm the spec accepts, through the real pipeline, registry, batch job and service.

For both bundled use cases (hotel_rates: regression, credit_risk: binary classification)
and each ``model.algorithm`` (lightgbm, random_forest, linear), the pipeline's own steps
train on the real point-in-time training set, export to ONNX and check parity in
evaluate, judge in the gate and register in MLflow (skops). The version is then loaded
the way the prediction service loads it (``services.modelfeed``, ``services.models``),
scored by the batch job (``services.batch.run``) and served by ``bentoml serve``, whose
answers must be the batch job's numbers for the same rows. The module owns its state (registry, Feast
online store, prediction log) so moving the champion here disturbs no other test.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import joblib
import numpy as np
import pandas as pd
import pytest
import yaml

from pipelines.steps import onnx_export, tasks
from pipelines.steps.fetch import load_fetched
from services import batch, rowscorer, scoring
from services.modelfeed import Publisher
from services.models import ModelLoader
from shipway.core import modelframe, registry
from shipway.core.launch import ServiceHandle, start_service, wait_ready
from shipway.core.modelframe import model_columns, model_frame
from shipway.core.settings import Settings
from shipway.core.spec import Task, UseCaseSpec
from shipway.core.usecases import load_usecase
from shipway.data.replay import future_bookings, request_body
from shipway.scoring.lgbm import NativeBooster
from tests.conftest import ROOT, free_port, require, tool_env

pytestmark = pytest.mark.integration
USECASES = {"hotel_rates": Task.regression, "credit_risk": Task.binary_classification}
ALGORITHMS = ("lightgbm", "random_forest", "linear")
ESTIMATORS = {  # algorithm -> the final estimator's class name, per task
    "lightgbm": ("LGBMRegressor", "LGBMClassifier"),
    "random_forest": ("RandomForestRegressor", "RandomForestClassifier"),
    "linear": ("Ridge", "LogisticRegression"),
}
MATRIX = [pytest.param(u, a, id=f"{u}-{a}") for u in USECASES for a in ALGORITHMS]


@dataclass(frozen=True)
class World:
    settings: Settings
    store: Any
    specs: dict[str, UseCaseSpec]


@dataclass(frozen=True)
class Trained:
    run: Path
    spec: UseCaseSpec
    version: str
    summary: dict[str, Any]


@pytest.fixture(scope="module")
def world(repo_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    """Isolated state: an empty registry and a Feast store with both use cases materialized.

    Its settings are exported for the module (child processes read them) and the previous
    SHIPWAY_* environment is put back afterwards: a module fixture runs before the
    per-test environment guard saves anything, so without this the rest of the session
    (the session registry included) would point at this module's stores."""
    from feature_repo.store import apply, feature_store, materialize

    saved = {k: v for k, v in os.environ.items() if k.startswith("SHIPWAY_")}
    s = Settings(root=ROOT, state_dir=tmp_path_factory.mktemp("algorithms"), data_dir=repo_data)
    s.export_env()
    try:
        specs = {name: load_usecase(name, s) for name in USECASES}
        store = feature_store(s)
        apply(store, list(specs.values()), s.data)
        for spec in specs.values():
            materialize(store, spec, s.data)
        yield World(s, store, specs)
    finally:
        for k in [k for k in os.environ if k.startswith("SHIPWAY_")]:
            del os.environ[k]
        os.environ.update(saved)


def _with_algorithm(fetched: Path, algorithm: str) -> None:
    """The fetched spec (the run's copy, never the repo's) with ``algorithm``; the latency
    budget is relaxed because this machine is shared (test_training measures latency)."""
    path = fetched / "usecase.yaml"
    data = yaml.safe_load(path.read_text())
    data["model"]["algorithm"] = algorithm
    data["acceptance"]["latency_p99_ms"] = 5000
    path.write_text(yaml.safe_dump(data))


@pytest.fixture(scope="module")
def trained(world: World) -> dict[tuple[str, str], Trained]:
    """Each use case x algorithm through fetch, training set, train, evaluate, gate and
    register: the pipeline's own steps, as ``runner.run_in_process`` calls them."""
    s, out = world.settings, {}
    for name in USECASES:
        base = s.state / "runs" / name
        tasks.fetch_task(str(s.root), "HEAD", name, base / "data")
        tasks.training_set_task(base / "data", base / "sets")
        for algorithm in ALGORITHMS:
            run, sets = base / algorithm, base / "sets"
            shutil.copytree(base / "data", run / "data")
            _with_algorithm(run / "data", algorithm)
            tasks.train_task(run / "data", sets, run / "model")
            summary = tasks.evaluate_task(run / "data", sets, run / "model", run / "eval")
            tasks.gate_task(
                run / "data", sets, run / "model", run / "eval", s.tracking_uri, run / "gate"
            )
            res = tasks.register_task(
                run / "data",
                sets,
                run / "model",
                run / "eval",
                run / "gate",
                s.tracking_uri,
                s.artifact_root,
                f"{name}-{algorithm}",
                "",
                run / "reg",
            )
            spec, _, _ = load_fetched(run / "data")
            out[name, algorithm] = Trained(run, spec, str(res["version"]), summary)
    return out


def _test_frame(t: Trained) -> pd.DataFrame:
    return model_frame(t.spec, pd.read_parquet(t.run.parent / "sets" / "test.parquet"))


@pytest.mark.parametrize(("usecase", "algorithm"), MATRIX)
def test_registers_with_onnx_parity_at_the_spec_tolerance(
    world: World, trained: dict, usecase: str, algorithm: str
) -> None:
    t = trained[usecase, algorithm]
    assert t.spec.model.algorithm == algorithm
    assert t.spec.acceptance.onnx_tolerance == 1e-3  # the default, as both specs state it
    assert "onnx_error" not in t.summary
    assert t.summary["onnx_parity"]["passed"], t.summary["onnx_parity"]
    record = json.loads((t.run / "gate" / "record.json").read_text())
    crit = next(c for c in record["criteria"] if c["name"] == "onnx_parity_max_abs_diff")
    assert crit["passed"] and crit["detail"] == onnx_export.compared(t.spec)
    # the registered version: skops format with the trusted list, the chosen estimator,
    # and its logged ONNX export holds parity against it on the test window
    client = registry.connect(world.settings.tracking_uri)
    run_id = client.get_model_version(t.spec.registered_model_name, t.version).run_id
    assert run_id is not None
    loaded = registry.load(f"models:/{t.spec.registered_model_name}/{t.version}")
    clf = int(t.spec.target.task is Task.binary_classification)
    assert type(loaded.named_steps["model"]).__name__ == ESTIMATORS[algorithm][clf]
    mlmodel = yaml.safe_load(
        Path(client.download_artifacts(run_id, "model/MLmodel", tempfile.mkdtemp())).read_text()
    )
    assert mlmodel["flavors"]["sklearn"]["serialization_format"] == "skops"
    onx = Path(client.download_artifacts(run_id, "onnx/model.onnx", tempfile.mkdtemp()))
    assert onnx_export.compare(t.spec, loaded, onx.read_bytes(), _test_frame(t)).passed


@pytest.mark.parametrize(("usecase", "algorithm"), MATRIX)
def test_service_loader_and_batch_job_score_it_as_trained(
    world: World, trained: dict, usecase: str, algorithm: str, tmp_path: Path
) -> None:
    t = trained[usecase, algorithm]
    native = joblib.load(t.run / "model" / "model.joblib")
    x = _test_frame(t).head(300)
    want = modelframe.predict(t.spec, native, x)
    feed = Publisher(world.settings, t.spec, tmp_path / "feed")  # as a service worker gets it
    served = ModelLoader(feed.root, t.spec).load(feed.exact(t.version), "champion")
    assert served.scorer is not None
    np.testing.assert_array_equal(served.scorer(model_columns(t.spec, x, len(x))), want)
    assert isinstance(served.scorer, rowscorer.TreeRows) == (algorithm != "linear")
    # LightGBM is served from its serving form (LightGBM's C library, no pipeline loaded)
    lean = algorithm == "lightgbm"
    assert isinstance(getattr(served.scorer, "booster", None), NativeBooster) == lean
    assert served.pipeline.loaded == (not lean)
    mv = registry.connect(world.settings.tracking_uri).get_model_version(
        t.spec.registered_model_name, t.version
    )
    assert (registry.SERVING_TAG in (mv.tags or {})) == lean
    # the batch job scores with the champion: make this version the champion
    client = registry.connect(world.settings.tracking_uri)
    registry.set_alias(client, t.spec.registered_model_name, registry.CHAMPION, t.version)
    rows = future_bookings(world.settings, t.spec, 40)
    rows.to_parquet(tmp_path / "in.parquet", index=False)
    res = batch.run(
        world.settings,
        t.spec,
        tmp_path / "in.parquet",
        tmp_path / "out.parquet",
        progress=False,
        store=world.store,
    )
    assert res.model_version == t.version and res.rows == len(rows)
    out = pd.read_parquet(tmp_path / "out.parquet")
    assert out["prediction"].notna().all() and (out["model_version"] == t.version).all()
    feats = scoring.fetch(world.store, t.spec, rows.to_dict("records"))
    np.testing.assert_array_equal(
        out["prediction"].to_numpy(), modelframe.predict(t.spec, native, feats.x)
    )


@pytest.fixture(scope="module")
def services(world: World, trained: dict) -> Iterator[dict[str, ServiceHandle]]:
    """One ``bentoml serve`` per use case on this module's registry, reloading aliases
    every second, started once the first algorithm's version is champion."""
    require(shutil.which("bentoml", path=tool_env()["PATH"]) is not None, "bentoml CLI missing")
    s = world.settings
    client = registry.connect(s.tracking_uri)
    handles: dict[str, ServiceHandle] = {}
    with contextlib.ExitStack() as started:  # every started service stops, whatever fails
        for name, spec in world.specs.items():
            v = trained[name, ALGORITHMS[0]].version
            registry.set_alias(client, spec.registered_model_name, registry.CHAMPION, v)
            handles[name] = start_service(
                s,
                spec,
                free_port(),
                env={"SHIPWAY_RELOAD_INTERVAL_SECONDS": "1"},
                base_env=tool_env(),
                log_path=s.state / "logs" / f"service-{name}.log",
            )
            started.callback(handles[name].stop)
        for h in handles.values():
            wait_ready(h)
        yield handles


@pytest.mark.parametrize("usecase", list(USECASES))
def test_the_service_serves_every_algorithm_as_the_batch_job_scores_it(
    world: World, trained: dict, services: dict[str, ServiceHandle], usecase: str, tmp_path: Path
) -> None:
    """The champion moves through each algorithm's version; the running service picks each
    up and answers /predict with exactly the batch job's prediction for the same rows."""
    spec = world.specs[usecase]
    rows = future_bookings(world.settings, spec, 10)
    rows.to_parquet(tmp_path / "in.parquet", index=False)
    client = registry.connect(world.settings.tracking_uri)
    with httpx.Client(base_url=services[usecase].url, timeout=60) as http:
        for algorithm in ALGORITHMS:
            v = trained[usecase, algorithm].version
            registry.set_alias(client, spec.registered_model_name, registry.CHAMPION, v)
            expected = batch.run(
                world.settings,
                spec,
                tmp_path / "in.parquet",
                tmp_path / f"{algorithm}.parquet",
                progress=False,
                store=world.store,
            )
            assert expected.model_version == v
            want = pd.read_parquet(tmp_path / f"{algorithm}.parquet")
            deadline = time.monotonic() + 90
            while True:  # the watcher swaps the champion within its reload interval
                ans = http.post("/predict", json=request_body(spec, rows.iloc[0]))
                assert ans.status_code == 200, ans.text
                if ans.json()["model_version"] == v or time.monotonic() > deadline:
                    break
                time.sleep(0.5)
            for i, row in rows.iterrows():
                ans = http.post("/predict", json=request_body(spec, row))
                assert ans.status_code == 200, ans.text
                body = ans.json()
                assert body["model_version"] == v, (algorithm, body)
                assert body["prediction"] == pytest.approx(want["prediction"][i], rel=1e-12)
                if spec.target.task is Task.binary_classification:
                    assert body["predicted_class"] == want["predicted_class"][i]
