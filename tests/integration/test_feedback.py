"""``/feedback`` on the real served app, for regression and classification, and the
no-silent-overwrite rules on the cluster's prediction log (a real PostgreSQL server).

* A label that does not fit the target is a 400 naming ``actual`` and the rule (the
  issue's ``7`` for a binary target, ``1e308`` and ``-5`` for a rate within 0-1000), and
  the OpenAPI page documents the same range or classes; the label ``/predict`` answered,
  and the data's other class, are accepted.
* A second, different label is a 409 that changes nothing; with ``"correction": true`` it
  becomes the label monitoring reads and the first stays in the history.
* The same rules, and racing writers, hold on PostgreSQL as on SQLite.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from shipway.core.launch import ServiceHandle, start_service, wait_ready
from shipway.core.predictionlog import PredictionLog
from shipway.core.settings import Settings
from shipway.core.spec import UseCaseSpec
from shipway.core.usecases import load_usecase
from shipway.data.replay import future_bookings, request_body
from tests.conftest import free_port, require, tool_env
from tests.labelcases import concurrent_labels, label_rules, legacy_label_kept
from tests.pgdb import create_database

pytestmark = pytest.mark.integration


# ---- PostgreSQL ----
@pytest.fixture
def pg_log(postgres_url: str, request: pytest.FixtureRequest) -> PredictionLog:
    """A prediction log in a fresh database of the session's PostgreSQL server."""
    name = "fb_" + request.node.name.lower().replace("[", "_").rstrip("]")[:40]
    create_database(postgres_url, name)
    return PredictionLog(postgres_url.rsplit("/", 1)[0] + f"/{name}")


def test_no_silent_overwrite_postgres(pg_log: PredictionLog) -> None:
    assert pg_log.engine.dialect.name == "postgresql"
    label_rules(pg_log)


def test_concurrent_labels_postgres(pg_log: PredictionLog) -> None:
    concurrent_labels(pg_log, threads=12)


def test_a_label_stored_before_the_history_existed_is_kept_on_correction_postgres(
    pg_log: PredictionLog,
) -> None:
    legacy_label_kept(pg_log)


# ---- the served app ----
@pytest.fixture(scope="module")
def credit(settings: Settings) -> UseCaseSpec:
    return load_usecase("credit_risk", settings)


@pytest.fixture(scope="module")
def credit_champion(
    settings: Settings,
    feast_store: Any,
    hotel: UseCaseSpec,
    credit: UseCaseSpec,
    tmp_path_factory: pytest.TempPathFactory,
) -> dict[str, str]:
    """A credit_risk champion in a private registry: serving needs a champion, not the
    governed promotion ``test_credit_risk`` proves, and the session registry's aliases
    stay untouched."""
    from feature_repo.store import apply, materialize
    from pipelines.runner import run_in_process
    from shipway.core import registry

    apply(feast_store, [hotel, credit], settings.data)
    materialize(feast_store, credit, settings.data)
    root = tmp_path_factory.mktemp("credit-registry")
    private = settings.model_copy(
        update={
            "mlflow_tracking_uri": f"sqlite:///{root / 'mlflow.db'}",
            "mlflow_artifact_root": (root / "artifacts").as_uri(),
        }
    )
    res = run_in_process(private, credit.name, "HEAD", root / "train")
    client = registry.connect(private.tracking_uri)
    registry.set_alias(client, credit.name, registry.CHAMPION, str(res["version"]))
    registry.connect(settings.tracking_uri)
    return {"uri": private.tracking_uri, "version": str(res["version"])}


def _serve(
    settings: Settings, spec: UseCaseSpec, uri: str, root: Path
) -> Iterator[tuple[ServiceHandle, PredictionLog]]:
    require(shutil.which("bentoml", path=tool_env()["PATH"]) is not None, "bentoml CLI missing")
    log_uri = str(root / "predictions.db")
    env = {"SHIPWAY_MLFLOW_TRACKING_URI": uri, "SHIPWAY_PREDICTION_LOG_URI": log_uri}
    handle = start_service(settings, spec, free_port(), env=env, base_env=tool_env())
    try:
        wait_ready(handle)
        yield handle, PredictionLog(log_uri)
    finally:
        handle.stop()


@pytest.fixture(scope="module")
def hotel_served(
    settings: Settings,
    hotel: UseCaseSpec,
    champion: dict[str, str],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[ServiceHandle, PredictionLog]]:
    yield from _serve(settings, hotel, champion["uri"], tmp_path_factory.mktemp("fb-hotel"))


@pytest.fixture(scope="module")
def credit_served(
    settings: Settings,
    credit: UseCaseSpec,
    credit_champion: dict[str, str],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[ServiceHandle, PredictionLog]]:
    yield from _serve(settings, credit, credit_champion["uri"], tmp_path_factory.mktemp("fb-cr"))


def _answers(c: httpx.Client, settings: Settings, spec: UseCaseSpec, n: int) -> list[dict]:
    out = []
    for _, row in future_bookings(settings, spec, n).iterrows():
        resp = c.post("/predict", json=request_body(spec, row))
        assert resp.status_code == 200, resp.text
        out.append(resp.json())
    return out


def _refused(resp: httpx.Response, field: str, words: str) -> None:
    """A 400 whose detail names the field and what is wrong with the value."""
    assert resp.status_code == 400, resp.text
    detail = resp.json()["detail"]
    assert any(d["loc"][-1] == field and words in d["msg"] for d in detail), detail


def _in_force(plog: PredictionLog, spec: UseCaseSpec, rid: str) -> float:
    return float(plog.window(spec.name).set_index("request_id").loc[rid, "actual"])


def test_regression_feedback_is_validated_and_never_overwritten(
    hotel_served: tuple[ServiceHandle, PredictionLog], settings: Settings, hotel: UseCaseSpec
) -> None:
    handle, plog = hotel_served
    with httpx.Client(base_url=handle.url, timeout=60) as c:
        rid, other = (a["request_id"] for a in _answers(c, settings, hotel, 2))

        def post(actual: Any, **extra: Any) -> httpx.Response:
            return c.post("/feedback", json={"request_id": rid, "actual": actual, **extra})

        _refused(post(1e308), "actual", "less than or equal to 1000")
        _refused(post(-5), "actual", "greater than or equal to 0")
        _refused(post("yes"), "actual", "valid number")
        _refused(post(7, correction="yes"), "correction", "valid boolean")
        assert plog.feedback_history(rid) == []  # nothing refused was stored

        first = post(7)  # a cheap room, but a rate within the declared 0-1000
        assert first.status_code == 200, first.text
        assert first.json() == {
            "request_id": rid,
            "recorded": True,
            "status": "recorded",
            "revision": 1,
            "actual": 7.0,
        }
        clash = post(8)
        assert clash.status_code == 409 and "correction" in clash.json()["error"], clash.text
        assert _in_force(plog, hotel, rid) == 7.0
        assert post(7).json()["status"] == "unchanged"  # a retry is no conflict
        fixed = post(8, correction=True)
        assert fixed.status_code == 200 and fixed.json()["status"] == "corrected"
        assert fixed.json()["revision"] == 2
        assert _in_force(plog, hotel, rid) == 8.0  # what monitoring reads
        assert [h["actual"] for h in plog.feedback_history(rid)] == [7.0, 8.0]

        assert c.post("/feedback", json={"request_id": "no-such", "actual": 1}).status_code == 404
        ok = c.post("/feedback", json={"request_id": other, "actual": 1000})
        assert ok.status_code == 200 and ok.json()["actual"] == 1000.0

        doc = c.get("/docs.json").json()["paths"]["/feedback"]["post"]
        props = doc["requestBody"]["content"]["application/json"]["schema"]["properties"]
        assert (props["actual"]["minimum"], props["actual"]["maximum"]) == (0, 1000)
        assert props["correction"]["type"] == "boolean"
        assert "409" in doc["responses"]


def test_classification_feedback_takes_the_class_labels(
    credit_served: tuple[ServiceHandle, PredictionLog], settings: Settings, credit: UseCaseSpec
) -> None:
    handle, plog = credit_served
    with httpx.Client(base_url=handle.url, timeout=60) as c:
        answers = _answers(c, settings, credit, 4)

        def post(rid: str, actual: Any, **extra: Any) -> httpx.Response:
            return c.post("/feedback", json={"request_id": rid, "actual": actual, **extra})

        first = answers[0]
        for bad in (7, 0.5, "yes", True, "Bad"):
            _refused(post(first["request_id"], bad), "actual", "'bad', 'good', 'not_bad', 0 or 1")
        # the label /predict answered is a valid label, stored as its class
        ok = post(first["request_id"], first["label"])
        assert ok.status_code == 200, ok.text
        assert ok.json()["actual"] == first["predicted_class"]
        flip = "good" if first["label"] == "bad" else "bad"  # the data's words
        assert post(first["request_id"], flip).status_code == 409
        assert _in_force(plog, credit, first["request_id"]) == first["predicted_class"]
        fixed = post(first["request_id"], flip, correction=True)
        assert fixed.status_code == 200 and fixed.json()["status"] == "corrected"
        assert _in_force(plog, credit, first["request_id"]) == 1 - first["predicted_class"]
        history = plog.feedback_history(first["request_id"])
        assert [h["actual"] for h in history] == [
            first["predicted_class"],
            1 - first["predicted_class"],
        ]
        # 0/1 as the training code encodes the classes
        for ans, sent, stored in zip(answers[1:], (1, 0, "good"), (1.0, 0.0, 0.0), strict=True):
            resp = post(ans["request_id"], sent)
            assert resp.status_code == 200 and resp.json()["actual"] == stored, resp.text

        doc = c.get("/docs.json").json()["paths"]["/feedback"]["post"]
        props = doc["requestBody"]["content"]["application/json"]["schema"]["properties"]
        assert props["actual"]["enum"] == ["bad", "good", "not_bad", 0, 1]
