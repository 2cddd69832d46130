"""Faults (issue 9, point 3) on the real components: stores that are down, steps that fail.

* The online store unavailable when the prediction service starts (Redis not running on
  the cluster configuration; the SQLite file absent locally): ``/readyz`` is 503 with
  one log line naming the store and its address, ``/livez`` stays 200, and once the
  store is back and materialized the same process becomes ready and serves the
  predictions the offline path computes, without a restart.
* A training run whose register step fails after the MLflow run started (artifact store
  unwritable) or after the version was created (the audit-trail store unwritable):
  the champion and challenger aliases and the set of versions are as before, nothing
  half-registered stays behind, and the error names the step and the cause.

The faults are real: a ``redis-server`` that is not started yet, a deleted database
file, a path whose parent is a regular file (tests run as root, so permissions would
not stop a write, but no one can create a directory inside a file).
"""

from __future__ import annotations

import itertools
import os
import re
import shutil
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pytest

from shipway.core import modelframe
from shipway.core.launch import ServiceHandle, start_service, wait_ready
from shipway.core.settings import Settings
from shipway.core.spec import UseCaseSpec
from shipway.data.replay import future_bookings, request_body
from tests.conftest import free_port, require, tool_env
from tests.pgdb import create_database, sa_url

pytestmark = pytest.mark.integration
MODEL = "hotel_rates"


# ---------------------------------------------------------------- serving: online store
@pytest.fixture(scope="module")
def bookings(settings: Settings, hotel: UseCaseSpec) -> pd.DataFrame:
    """Real bookings from after the training window (known agents and countries)."""
    return future_bookings(settings, hotel, 12)


@pytest.fixture(scope="module")
def expected(
    settings: Settings, hotel: UseCaseSpec, feast_store: Any, champion: dict, bookings: Any
) -> np.ndarray:
    """What the champion predicts for ``bookings`` on the offline path (historical features
    at the materialization time): independent of any online store."""
    from feature_repo.store import feature_end, historical
    from shipway.core import registry
    from shipway.core.modelframe import model_frame
    from shipway.data.readiness import EVENT_TS

    entity_df = bookings[hotel.entity_columns + hotel.request_field_names].copy()
    for k in hotel.entity_columns:
        entity_df[k] = entity_df[k].astype(str)
    entity_df[EVENT_TS] = pd.Timestamp(feature_end(hotel, settings.data))
    offline = historical(feast_store, hotel, entity_df)
    registry.connect(champion["uri"])
    model = registry.load(f"models:/{MODEL}/{champion['version']}")
    registry.connect(settings.tracking_uri)
    return np.asarray(modelframe.predict(hotel, model, model_frame(hotel, offline)))


def _log(handle: ServiceHandle) -> str:
    return handle.log_path.read_text(errors="replace") if handle.log_path.exists() else ""


def _start(settings: Settings, hotel: UseCaseSpec, root: Path, **env: str) -> ServiceHandle:
    require(shutil.which("bentoml", path=tool_env()["PATH"]) is not None, "bentoml CLI missing")
    env.setdefault("SHIPWAY_STARTUP_RETRY_SECONDS", "1")
    return start_service(
        settings, hotel, free_port(), env=env, base_env=tool_env(), log_path=root / "service.log"
    )


def _await_line(handle: ServiceHandle, pattern: str, timeout: float = 180) -> None:
    """Wait until the service log has a line matching ``pattern`` (the process must live)."""
    deadline = time.monotonic() + timeout
    while not re.search(pattern, _log(handle)):
        assert handle.proc.poll() is None, f"service exited:\n{_log(handle)[-3000:]}"
        assert time.monotonic() < deadline, f"no {pattern!r} in:\n{_log(handle)[-3000:]}"
        time.sleep(0.3)


def _assert_down_but_alive(handle: ServiceHandle, line: str, body: dict[str, Any]) -> None:
    """The problem logged as ``line``, once (retries every second meanwhile: a line per
    retry would bury the cause); 503 on /readyz and /predict, 200 on /livez."""
    _await_line(handle, line)
    time.sleep(3.5)  # several retries
    with httpx.Client(base_url=handle.url, timeout=30) as c:
        assert c.get("/readyz").status_code == 503
        assert c.get("/livez").status_code == 200
        assert c.post("/predict", json=body).status_code == 503
    assert len(re.findall(line, _log(handle))) == 1, _log(handle)[-3000:]
    assert handle.proc.poll() is None


def _assert_serves(
    handle: ServiceHandle, hotel: UseCaseSpec, bookings: pd.DataFrame, expected: np.ndarray
) -> None:
    """Ready by itself (same process, no restart) and answering with the stored features."""
    pid = handle.proc.pid
    wait_ready(handle, timeout=120)
    assert handle.proc.pid == pid and handle.proc.poll() is None
    with httpx.Client(base_url=handle.url, timeout=60) as c:
        served = [
            c.post("/predict", json=request_body(hotel, r)).json() for _, r in bookings.iterrows()
        ]
    assert all(s["missing_features"] == [] for s in served), served
    np.testing.assert_allclose([s["prediction"] for s in served], expected, rtol=1e-9, atol=1e-9)
    assert "feature store available again" in _log(handle)


def test_redis_online_store_down_at_start_is_503_then_recovers(
    settings: Settings,
    hotel: UseCaseSpec,
    champion: dict,
    postgres_url: str,
    bookings: pd.DataFrame,
    expected: np.ndarray,
    tmp_path: Path,
) -> None:
    """Cluster configuration (Feast registry in PostgreSQL, Redis online store) with
    nothing listening on the Redis port; then redis-server starts there and is filled."""
    from servers import redis_binary, redis_server

    from feature_repo.store import apply, feature_store, materialize

    require(redis_binary() is not None, "redis-server is not installed (.ci/run installs it)")
    create_database(postgres_url, "feast_faults")
    port = free_port()
    feast_env = {
        "SHIPWAY_FEAST_REGISTRY_PATH": sa_url(postgres_url, "feast_faults"),
        "SHIPWAY_FEAST_REDIS_CONNECTION": f"127.0.0.1:{port}",
    }
    os.environ.update(feast_env)  # the autouse fixture restores SHIPWAY_* afterwards
    cluster = Settings(
        root=settings.root,
        data_dir=settings.data,
        state_dir=tmp_path / "state",
        environment="cluster",
    )
    store = feature_store(cluster)
    apply(store, [hotel], cluster.data)  # the registry is up; the online store is not
    handle = _start(
        cluster,
        hotel,
        tmp_path,
        SHIPWAY_ENVIRONMENT="cluster",
        SHIPWAY_MLFLOW_TRACKING_URI=champion["uri"],
        **feast_env,
    )
    line = (
        rf"shipway: online store redis at 127\.0\.0\.1:{port} unavailable "
        rf"\(ConnectionError: [^)]*{port}[^)]*\); /readyz is 503"
    )
    try:
        _assert_down_but_alive(handle, line, request_body(hotel, bookings.iloc[0]))
        with redis_server(port):
            materialize(store, hotel, cluster.data)
            _assert_serves(handle, hotel, bookings, expected)
    finally:
        handle.stop()


def test_missing_sqlite_online_store_is_503_then_recovers(
    settings: Settings,
    hotel: UseCaseSpec,
    champion: dict,
    bookings: pd.DataFrame,
    expected: np.ndarray,
    tmp_path: Path,
) -> None:
    """Local configuration whose online.db is gone (a fresh volume, a deleted file): the
    service must neither crash nor create an empty database in its place."""
    from feature_repo.store import apply, feature_store, materialize

    local = Settings(root=settings.root, data_dir=settings.data, state_dir=tmp_path / "state")
    apply(feature_store(local), [hotel], local.data)
    online_db = local.state / "feast" / "online.db"
    online_db.unlink()
    handle = _start(local, hotel, tmp_path, SHIPWAY_MLFLOW_TRACKING_URI=champion["uri"])
    line = (
        rf"shipway: online store sqlite at {re.escape(str(online_db))} unavailable "
        r"\(FileNotFoundError: [^)]*does not exist[^)]*\); /readyz is 503"
    )
    try:
        _assert_down_but_alive(handle, line, request_body(hotel, bookings.iloc[0]))
        assert not online_db.exists()  # not replaced by an empty file
        store = feature_store(local)  # the operator's fix: apply (creates tables), materialize
        apply(store, [hotel], local.data)
        materialize(store, hotel, local.data)
        _assert_serves(handle, hotel, bookings, expected)
    finally:
        handle.stop()


# ---------------------------------------------------------------- serving: kill -9, restart
def _load(url: str, rows: list[dict[str, Any]], stop: threading.Event, acked: list[str]) -> None:
    """One client posting rows until told to stop or the server is gone; keeps the ids of
    answered predictions (an answer is an acknowledgement: the log commit came first)."""
    with httpx.Client(base_url=url, timeout=30) as c:
        for i in itertools.count():
            if stop.is_set():
                return
            try:
                resp = c.post("/predict", json=rows[i % len(rows)])
            except httpx.HTTPError:
                return
            if resp.status_code == 200:
                acked.append(resp.json()["request_id"])  # list.append is atomic


def test_kill_9_under_load_then_restart_serves_every_acknowledged_prediction(
    settings: Settings,
    hotel: UseCaseSpec,
    champion: dict,
    bookings: pd.DataFrame,
    tmp_path: Path,
) -> None:
    """SIGKILL the whole service group while 16 clients are posting; a new service on the
    same prediction log starts cleanly and knows every acknowledged prediction (feedback
    for each is accepted, which looks it up in the log), and keeps appending to it."""
    from shipway.core.predictionlog import PredictionLog

    log_db = tmp_path / "predictions.db"
    env = {
        "SHIPWAY_MLFLOW_TRACKING_URI": champion["uri"],
        "SHIPWAY_PREDICTION_LOG_URI": str(log_db),
        "SHIPWAY_SERVICE_WORKERS": "2",  # as the chart runs it: two writers of one log
    }
    rows = [request_body(hotel, r) for _, r in bookings.iterrows()]
    handle = _start(settings, hotel, tmp_path, **env)
    acked: list[str] = []
    stop = threading.Event()
    try:
        wait_ready(handle)
        clients = [
            threading.Thread(target=_load, args=(handle.url, rows, stop, acked)) for _ in range(16)
        ]
        for t in clients:
            t.start()
        deadline = time.monotonic() + 120
        while len(acked) < 120 and time.monotonic() < deadline:
            time.sleep(0.01)
        killed = handle.kill()  # server and every worker, mid-traffic: requests in flight
        stop.set()
        for t in clients:
            t.join(60)
        assert handle.proc.wait(30) == -signal.SIGKILL
        assert len(killed) >= 2, "both workers were found and killed"
        assert not [p for p in killed if p.is_running() and p.status() != "zombie"]
    finally:
        stop.set()
        handle.stop(signal.SIGKILL)
    assert len(acked) >= 120
    (tmp_path / "restart").mkdir()
    again = _start(settings, hotel, tmp_path / "restart", **env)
    try:
        wait_ready(again)
        with httpx.Client(base_url=again.url, timeout=30) as c:
            for rid in acked:
                resp = c.post("/feedback", json={"request_id": rid, "actual": 100.0})
                assert resp.status_code == 200, (rid, resp.text)
            assert c.post("/predict", json=rows[0]).status_code == 200
    finally:
        again.stop()
    plog = PredictionLog(str(log_db))
    assert plog.integrity_ok()
    assert plog.count(hotel.name) >= len(acked) + 1
    answered = plog.window(hotel.name).set_index("request_id")
    assert (answered.loc[acked, "actual"] == 100.0).all()


# ---------------------------------------------------------------- training: register step
class PrivateRegistry:
    """A SQLite MLflow registry of its own, so aliases here move nobody else's."""

    def __init__(self, root: Path) -> None:
        from shipway.core import registry

        root.mkdir(parents=True, exist_ok=True)
        self.uri = f"sqlite:///{root / 'mlflow.db'}"
        self.artifacts = (root / "artifacts").as_uri()
        self.client = registry.connect(self.uri)

    def register(self, model: Any, experiment: str = f"{MODEL}-imported") -> str:
        """Log ``model`` in ``experiment`` and register it as a new version of the model."""
        import mlflow

        from shipway.core import registry

        registry.connect(self.uri)
        exp = registry.experiment(self.client, experiment, self.artifacts)
        with mlflow.start_run(experiment_id=exp):
            info = mlflow.sklearn.log_model(
                model, name="model", skops_trusted_types=registry.SKOPS_TRUSTED
            )
        return str(mlflow.register_model(info.model_uri, MODEL).version)

    def state(self) -> tuple[dict[str, str | None], list[str]]:
        """(champion/challenger targets, versions that exist), for before/after checks."""
        from shipway.core import registry

        versions = self.client.search_model_versions(f"name='{MODEL}'")
        return registry.alias_targets(self.client, MODEL), sorted(str(v.version) for v in versions)

    def runs(self, experiment: str = MODEL) -> list[Any]:
        exp = self.client.get_experiment_by_name(experiment)
        return self.client.search_runs([exp.experiment_id]) if exp else []


def _registry_with_champion(root: Path, model: Any) -> PrivateRegistry:
    from shipway.core import registry

    reg = PrivateRegistry(root)
    registry.set_alias(reg.client, MODEL, registry.CHAMPION, reg.register(model))
    return reg


def _blocked(root: Path) -> Path:
    """A regular file: nothing can create a directory beneath it, root or not."""
    root.mkdir(parents=True, exist_ok=True)
    path = root / "not-a-directory"
    path.write_text("a file where the store expects a directory\n")
    return path


def test_artifact_store_unwritable_in_register_step_leaves_registry_untouched(
    settings: Settings, champion_model: Any, tmp_path: Path
) -> None:
    """In-process pipeline; the register step's MLflow run starts, then its first artifact
    write fails. No version appears, the run is FAILED, and a retry after the fix works."""
    from pipelines.runner import run_in_process
    from pipelines.steps import tasks
    from shipway.core import registry

    reg = _registry_with_champion(tmp_path / "registry", champion_model)
    before = reg.state()
    blocker = _blocked(tmp_path)
    s = Settings(
        root=settings.root,
        data_dir=settings.data,
        state_dir=tmp_path / "state",
        mlflow_tracking_uri=reg.uri,
        mlflow_artifact_root=(blocker / "artifacts").as_uri(),
    )
    work = tmp_path / "work"
    with pytest.raises(registry.RegistrationFailed) as failed:
        run_in_process(s, MODEL, "HEAD", work)
    msg = str(failed.value)
    assert msg.startswith(f"register step failed before a version of {MODEL} was created")
    assert "NotADirectoryError" in msg and str(blocker) in msg
    assert reg.state() == before  # same champion, same (absent) challenger, same versions
    (run,) = reg.runs()
    assert run.info.status == "FAILED" and run.data.tags["kfp_run_id"] == "in-process"

    blocker.unlink()  # the store is writable again: the same step's retry registers cleanly
    res = tasks.register_task(
        work / "data",
        work / "sets",
        work / "model",
        work / "eval",
        work / "gate",
        s.tracking_uri,
        s.artifact_root,
        "retry",
        "",
        work / "register-retry",
    )
    assert str(res["version"]) == str(int(before[1][-1]) + 1)


def test_kfp_register_step_failing_after_version_created_withdraws_it(
    settings: Settings, champion_model: Any, tmp_path: Path
) -> None:
    """kfp.local run; the version is created, then writing the governance evidence fails
    (the audit-trail store is a file). The version must not stay half-registered."""
    from pipelines.runner import PipelineFailed, run_local
    from shipway.core import registry

    reg = _registry_with_champion(tmp_path / "registry", champion_model)
    before = reg.state()
    state = tmp_path / "state"
    audit = _blocked(state).rename(state / "audit")  # the local trail lives in <state>/audit
    s = Settings(
        root=settings.root,
        data_dir=settings.data,
        state_dir=state,
        mlflow_tracking_uri=reg.uri,
        mlflow_artifact_root=reg.artifacts,
    )
    with pytest.raises(PipelineFailed) as failed:
        run_local(s, MODEL, "HEAD")
    msg = str(failed.value)
    new = str(int(before[1][-1]) + 1)
    assert "Inner task failed: 'register-model'" in msg, msg
    assert f"register step failed after creating {MODEL} v{new}" in msg, msg
    assert f"v{new} deleted" in msg and "NotADirectoryError" in msg and str(audit) in msg, msg
    assert reg.state() == before  # aliases where they were; the new version is gone
    with pytest.raises(Exception, match=r"RESOURCE_DOES_NOT_EXIST|not found|does not exist"):
        reg.client.get_model_version(MODEL, new)
    (run,) = reg.runs()
    assert run.info.status == "FAILED"
    assert "NotADirectoryError" in run.data.tags[registry.REGISTRATION_ERROR_TAG]


def test_withdraw_puts_moved_aliases_back(tmp_path: Path) -> None:
    """The undo on its own, against a real registry: a version that already took the
    challenger and champion aliases before its registration failed gives both back."""
    from sklearn.dummy import DummyRegressor

    from shipway.core import registry

    reg = PrivateRegistry(tmp_path)
    assert registry.alias_targets(reg.client, MODEL) == {"champion": None, "challenger": None}
    model = DummyRegressor().fit([[0.0], [1.0]], [1.0, 2.0])
    v1, v2 = reg.register(model), reg.register(model)
    registry.set_alias(reg.client, MODEL, registry.CHAMPION, v1)
    before = registry.alias_targets(reg.client, MODEL)
    assert before == {"champion": v1, "challenger": None}
    for alias in (registry.CHALLENGER, registry.CHAMPION):  # what register_task would do
        registry.set_alias(reg.client, MODEL, alias, v2)
    mv = reg.client.get_model_version(MODEL, v2)
    err = registry.withdraw(reg.client, mv, before, OSError(28, "No space left on device"))
    assert isinstance(err, registry.RegistrationFailed)
    assert str(err).startswith(f"register step failed after creating {MODEL} v{v2}")
    for part in (f"champion restored to v{v1}", "challenger restored to unset", f"v{v2} deleted"):
        assert part in str(err)
    assert "No space left on device" in str(err)
    assert reg.state() == (before, [v1])
    run = reg.client.get_run(mv.run_id)
    assert run.info.status == "FAILED"
    assert "No space left" in run.data.tags[registry.REGISTRATION_ERROR_TAG]


@pytest.fixture(autouse=True)
def _mlflow_back_to_session(request: pytest.FixtureRequest) -> Iterator[None]:
    """Private registries set MLflow's process-wide URI; later modules expect the session's."""
    yield
    if "settings" in request.fixturenames:
        from shipway.core import registry

        registry.connect(request.getfixturevalue("settings").tracking_uri)
