"""The least-privilege matrix (issue 16, point 1) against a real ``mlflow server --app-name
basic-auth`` (SQLite backend, a private auth ini, ``default_permission =
NO_PERMISSIONS`` as the chart renders it).

``shipway.governance.access.provision`` (what the chart's hook Job runs) creates the users
and grants; then each component's own credentials do what its code does, and the calls a
compromised pod would try are refused with 403: the prediction service reads the champion
but cannot set an alias, delete a version or tag it; the monitor tags versions but cannot
move an alias; the pipeline registers; the promotion identity moves and deletes aliases.
One server for the module (about 5 s to start), all checks against it.
"""

from __future__ import annotations

import importlib.util
import os
import secrets
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from shipway.governance import access
from tests.conftest import free_port, require

pytestmark = pytest.mark.integration
EXPERIMENT, MODEL = "hotel_rates", "hotel_rates"
ADMIN = "admin"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    require(
        importlib.util.find_spec("flask_wtf") is not None,
        "MLflow basic auth needs Flask-WTF: install the project's dev extra (mlflow[auth])",
    )
    tmp = tmp_path_factory.mktemp("mlflow-auth")
    ini = tmp / "basic_auth.ini"
    ini.write_text(
        "[mlflow]\n"
        "default_permission = NO_PERMISSIONS\n"
        f"database_uri = sqlite:///{tmp / 'auth.db'}\n"
        f"admin_username = {ADMIN}\n"
        "authorization_function = mlflow.server.auth:authenticate_request_basic_auth\n"
        "grant_default_workspace_access = false\n"
    )
    admin_pw = "admin-" + secrets.token_hex(8)
    port = free_port()
    env = {
        **os.environ,
        "MLFLOW_AUTH_CONFIG_PATH": str(ini),
        "MLFLOW_AUTH_ADMIN_PASSWORD": admin_pw,
        "MLFLOW_FLASK_SERVER_SECRET_KEY": secrets.token_hex(16),
    }
    log = (tmp / "server.log").open("w")
    proc = subprocess.Popen(
        [
            str(Path(sys.executable).parent / "mlflow"),
            "server",
            "--app-name",
            "basic-auth",
            "--backend-store-uri",
            f"sqlite:///{tmp / 'mlflow.db'}",
            "--serve-artifacts",
            "--artifacts-destination",
            str(tmp / "artifacts"),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            "1",
        ],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.3)
        assert proc.poll() is None, (tmp / "server.log").read_text()[-3000:]
        passwords = {c: f"{c}-{secrets.token_hex(8)}" for c in access.COMPONENTS}
        yield {"url": url, "admin": admin_pw, "passwords": passwords, "tmp": tmp}
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


@contextmanager
def as_user(monkeypatch: pytest.MonkeyPatch, username: str, password: str) -> Iterator[Any]:
    """An MlflowClient that authenticates as ``username`` (MLflow reads the env per call)."""
    from mlflow import MlflowClient

    with monkeypatch.context() as m:
        m.setenv("MLFLOW_TRACKING_USERNAME", username)
        m.setenv("MLFLOW_TRACKING_PASSWORD", password)
        m.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
        yield MlflowClient(tracking_uri=os.environ["_SHIPWAY_TEST_MLFLOW"])


def _who(server: dict[str, Any], component: str) -> tuple[str, str]:
    return access.role(component).username, server["passwords"][component]


def _denied(fn: Any, *args: Any) -> str:
    from mlflow.exceptions import MlflowException

    with pytest.raises(MlflowException) as err:
        fn(*args)
    return str(err.value.error_code)


@pytest.fixture(scope="module")
def provisioned(server: dict[str, Any]) -> Iterator[dict[str, Any]]:
    with pytest.MonkeyPatch.context() as m:
        m.setenv("_SHIPWAY_TEST_MLFLOW", server["url"])
        m.setenv("MLFLOW_TRACKING_USERNAME", ADMIN)
        m.setenv("MLFLOW_TRACKING_PASSWORD", server["admin"])
        target = access.Target(EXPERIMENT, MODEL)
        lines = access.provision(server["url"], server["passwords"], [target])
        again = access.provision(server["url"], server["passwords"], [target])  # idempotent
        yield {**server, "lines": lines, "again": again}


def test_provision_creates_one_user_per_component_and_says_so(provisioned) -> None:
    text = "\n".join(provisioned["lines"] + provisioned["again"])
    for component in access.COMPONENTS:
        assert f"user shipway-{component} created" in text
        assert f"user shipway-{component} exists, password set" in text
    for pw in [provisioned["admin"], *provisioned["passwords"].values()]:
        assert pw not in text, "no password in what provision reports"


def test_least_privilege_matrix(provisioned, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("_SHIPWAY_TEST_MLFLOW", provisioned["url"])
    pipeline = _who(provisioned, "pipeline")
    with as_user(monkeypatch, *pipeline) as c:  # the pipeline registers
        exp = c.get_experiment_by_name(EXPERIMENT)
        run = c.create_run(exp.experiment_id)
        c.log_metric(run.info.run_id, "validation_mae", 1.0)
        v1 = c.create_model_version(MODEL, f"{run.info.artifact_uri}/model", run.info.run_id)
        v2 = c.create_model_version(MODEL, f"{run.info.artifact_uri}/model", run.info.run_id)
        c.set_model_version_tag(MODEL, v1.version, "gate_passed", "true")
        c.set_registered_model_alias(MODEL, "challenger", v2.version)
        c.delete_model_version(MODEL, v2.version)  # withdrawing a failed registration
    with as_user(monkeypatch, *_who(provisioned, "promotion")) as c:
        c.set_registered_model_alias(MODEL, "champion", v1.version)
        c.set_registered_model_alias(MODEL, "challenger", v1.version)
        c.delete_registered_model_alias(MODEL, "challenger")  # rollback removes it
    with as_user(monkeypatch, *_who(provisioned, "prediction")) as c:
        assert c.get_model_version_by_alias(MODEL, "champion").version == v1.version
        assert c.get_run(run.info.run_id).data.metrics["validation_mae"] == 1.0
        assert _denied(c.set_registered_model_alias, MODEL, "champion", v1.version) == (
            "PERMISSION_DENIED"
        )
        assert _denied(c.delete_registered_model_alias, MODEL, "champion") == "PERMISSION_DENIED"
        assert _denied(c.delete_model_version, MODEL, v1.version) == "PERMISSION_DENIED"
        assert _denied(c.set_model_version_tag, MODEL, v1.version, "x", "y") == (
            "PERMISSION_DENIED"
        )
        assert _denied(c.create_run, exp.experiment_id) == "PERMISSION_DENIED"
        assert _denied(c.create_model_version, MODEL, "s3://x/model") == "PERMISSION_DENIED"
    with as_user(monkeypatch, *_who(provisioned, "monitor")) as c:
        assert c.get_model_version_by_alias(MODEL, "champion").version == v1.version
        c.set_model_version_tag(MODEL, v1.version, "reviewed", "2026-12-05")  # the review
        c.create_run(exp.experiment_id)  # the audit-trail run
        assert _denied(c.set_registered_model_alias, MODEL, "champion", v1.version) == (
            "PERMISSION_DENIED"
        )
        assert _denied(c.delete_model_version, MODEL, v1.version) == "PERMISSION_DENIED"
    with as_user(monkeypatch, "shipway-prediction", "wrong-password") as c:
        assert _denied(c.get_model_version_by_alias, MODEL, "champion") == "UNAUTHENTICATED"
    with as_user(monkeypatch, *pipeline) as c:  # nothing above moved what it must not
        assert c.get_model_version_by_alias(MODEL, "champion").version == v1.version
        assert c.get_model_version(MODEL, v1.version).tags["reviewed"] == "2026-12-05"


def test_provision_refuses_incomplete_input(server) -> None:
    target = [access.Target(EXPERIMENT, MODEL)]
    partial = {c: "pw-123456" for c in access.COMPONENTS if c != "monitor"}
    with pytest.raises(access.AccessError, match="monitor"):
        access.provision(server["url"], partial, target)
    with pytest.raises(access.AccessError, match="no use case"):
        access.provision(server["url"], server["passwords"], [])
    with pytest.raises(access.AccessError, match="unknown component\\(s\\) trigger"):
        access.provision(server["url"], {**server["passwords"], "trigger": "x"}, target)


def test_resolve_tells_a_refused_registry_from_a_missing_version(
    provisioned, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``shipway promote/rollback/approve`` resolve a reference first: credentials the
    registry refuses (403, 401) are the registry failing, named by address, never "no
    such version"; only MLflow's "does not exist" is a missing version."""
    from shipway.core.registry import RegistryUnavailable
    from shipway.governance.versions import GovernanceError, ModelRef, resolve

    monkeypatch.setenv("_SHIPWAY_TEST_MLFLOW", provisioned["url"])
    with as_user(monkeypatch, ADMIN, provisioned["admin"]) as c:
        c.create_registered_model("not_granted_model")  # no component is granted it
        with pytest.raises(GovernanceError, match="no model version hotel_rates@999"):
            resolve(c, ModelRef.parse(f"{MODEL}@999"))
        with pytest.raises(GovernanceError, match="no model version hotel_rates@nosuchalias"):
            resolve(c, ModelRef.parse(f"{MODEL}@nosuchalias"))
    with as_user(monkeypatch, *_who(provisioned, "prediction")) as c:
        with pytest.raises(RegistryUnavailable, match="PERMISSION_DENIED") as err:
            resolve(c, ModelRef.parse("not_granted_model@1"))
        assert f"MLflow registry at {provisioned['url']}" in str(err.value)
    with as_user(monkeypatch, "shipway-prediction", "wrong-password") as c:
        with pytest.raises(RegistryUnavailable, match="UNAUTHENTICATED") as err:
            resolve(c, ModelRef.parse(f"{MODEL}@champion"))
        assert "wrong-password" not in str(err.value)
