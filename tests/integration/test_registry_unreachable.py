"""An unreachable registry is diagnosed fast and clearly (issue 16, point 2).

The registry is really unreachable: a TCP port nothing listens on. The tracking URI carries
a canary user and password (people do put them in URIs), which must appear nowhere.

* The registry client raises ``RegistryUnavailable`` naming the address within seconds
  (MLflow's own retry defaults took about four minutes), while a reachable but empty
  registry still means "no such alias" (None).
* ``bentoml serve`` on that URI logs one line naming the registry's address within 10 s of
  the loader turning to the registry, never "no version has the alias", and /readyz stays
  503 (/livez 200).
* A CLI command that reads the registry exits with that one line, no traceback.
"""

from __future__ import annotations

import re
import shutil
import time
from pathlib import Path

import httpx
import pytest

from shipway.core import registry
from shipway.core.launch import ServiceHandle, start_service
from shipway.core.settings import Settings
from shipway.core.usecases import load_usecase
from tests.conftest import ROOT, free_port, require, tool_env

pytestmark = pytest.mark.integration
CANARY = "canary-Pw-7f3e9a1c"


def _closed_uri() -> tuple[str, str]:
    port = free_port()  # nothing listens there
    return f"http://shipway-svc:{CANARY}@127.0.0.1:{port}", f"http://127.0.0.1:{port}"


@pytest.fixture
def mlflow_http_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    """Shipway's bounds, not whatever the environment or an earlier test set."""
    for key in registry.HTTP_DEFAULTS:
        monkeypatch.delenv(key, raising=False)


def test_closed_port_raises_naming_the_address_within_seconds(
    mlflow_http_defaults, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    uri, where = _closed_uri()
    client = registry.connect(uri)
    with monkeypatch.context() as m:  # MLflow imports its REST client on first use: not
        m.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")  # the registry's time, so warm it
        with pytest.raises(registry.RegistryUnavailable):
            registry.alias_version(client, "hotel_rates", registry.CHAMPION)
    started = time.monotonic()
    with pytest.raises(registry.RegistryUnavailable) as err:
        registry.alias_version(client, "hotel_rates", registry.CHAMPION)
    elapsed = time.monotonic() - started
    message = str(err.value)
    assert elapsed < 10, f"took {elapsed:.1f}s"
    assert f"MLflow registry at {where} could not read the alias hotel_rates@champion" in message
    assert "connection refused" in message
    assert CANARY not in message and "shipway-svc" not in message
    # reachable and empty is not an error: no model, no alias
    empty = registry.connect(f"sqlite:///{tmp_path / 'mlflow.db'}")
    assert registry.alias_version(empty, "hotel_rates", registry.CHAMPION) is None
    empty.create_registered_model("hotel_rates")
    assert registry.alias_version(empty, "hotel_rates", registry.CHAMPION) is None


def test_resolving_a_reference_on_a_closed_port_is_not_a_missing_version(
    mlflow_http_defaults, monkeypatch: pytest.MonkeyPatch
) -> None:
    from shipway.governance.versions import ModelRef, resolve

    uri, where = _closed_uri()
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    client = registry.connect(uri)
    for ref in ("hotel_rates@3", "hotel_rates@champion"):
        with pytest.raises(registry.RegistryUnavailable) as err:
            resolve(client, ModelRef.parse(ref))
        message = str(err.value)
        assert f"MLflow registry at {where} could not read the model version {ref}" in message
        assert "connection refused" in message and CANARY not in message


def test_address_drops_credentials_query_and_fragment() -> None:
    assert registry.address("https://u:p@mlflow.example.com:8443/x?token=t#f") == (
        "https://mlflow.example.com:8443/x"
    )
    assert registry.address("sqlite:////tmp/mlflow.db") == "sqlite:////tmp/mlflow.db"
    assert registry.address("http://[::1]:5000") == "http://[::1]:5000"


def _log(handle: ServiceHandle) -> str:
    return handle.log_path.read_text(errors="replace") if handle.log_path.exists() else ""


def _await(handle: ServiceHandle, pattern: str, timeout: float) -> float:
    """Seconds until the service log matches ``pattern`` (the process must live)."""
    started = time.monotonic()
    while not re.search(pattern, _log(handle)):
        assert handle.proc.poll() is None, f"service exited:\n{_log(handle)[-3000:]}"
        waited = time.monotonic() - started
        assert waited < timeout, f"no {pattern!r} after {waited:.0f}s:\n{_log(handle)[-3000:]}"
        time.sleep(0.2)
    return time.monotonic() - started


def test_service_on_an_unreachable_registry_says_so_within_10s(
    mlflow_http_defaults, tmp_path: Path
) -> None:
    require(shutil.which("bentoml", path=tool_env()["PATH"]) is not None, "bentoml CLI missing")
    uri, where = _closed_uri()
    settings = Settings(root=ROOT, state_dir=tmp_path / "state")
    spec = load_usecase("hotel_rates", settings)
    env = {"SHIPWAY_MLFLOW_TRACKING_URI": uri, "SHIPWAY_STARTUP_RETRY_SECONDS": "1"}
    handle = start_service(
        settings, spec, free_port(), env=env, base_env=tool_env(), log_path=tmp_path / "svc.log"
    )
    try:
        # The loader opens the prediction log and the feature store first (none here: one
        # line for it); the clock starts when it turns to the registry.
        _await(handle, r"shipway: feature store (unavailable|available|.*online)", timeout=300)
        waited = _await(
            handle,
            rf"shipway: model registry unavailable \(RegistryUnavailable: MLflow registry at "
            rf"{re.escape(where)} could not read the alias hotel_rates@champion",
            timeout=10,
        )
        print(f"registry line {waited:.1f}s after the feature-store line")
        time.sleep(2.5)  # a few retries: still one line, still not ready
        with httpx.Client(base_url=handle.url, timeout=30) as c:
            assert c.get("/readyz").status_code == 503
            assert c.get("/livez").status_code == 200
        log = _log(handle)
        assert len(re.findall(r"model registry unavailable", log)) == 1, log[-3000:]
        assert "has the alias" not in log, "an unreachable registry is not an empty one"
        assert CANARY not in log, "the registry password reached the log"
    finally:
        handle.stop()


def test_cli_on_an_unreachable_registry_says_so_in_one_line(
    mlflow_http_defaults, tmp_path: Path
) -> None:
    """A registry command (``shipway rollback``) exits 1 with one line naming the address,
    without a traceback or the password, within seconds of reaching the registry."""
    import os
    import subprocess
    import sys

    uri, where = _closed_uri()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("SHIPWAY_")},
        "SHIPWAY_MLFLOW_TRACKING_URI": uri,
        "SHIPWAY_STATE_DIR": str(tmp_path / "state"),
    }
    started = time.monotonic()
    proc = subprocess.run(
        [str(Path(sys.executable).parent / "shipway"), "rollback", "-u", "hotel_rates"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    elapsed = time.monotonic() - started
    out = proc.stdout + proc.stderr
    assert proc.returncode == 1, out
    assert f"error: MLflow registry at {where} could not read the alias hotel_rates@" in (
        re.sub(r"\s+", " ", out)
    ), out
    assert "Traceback" not in out and CANARY not in out, out
    assert elapsed < 60, f"{elapsed:.0f}s (CLI start and MLflow imports included)"
