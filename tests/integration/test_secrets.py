"""The canary sweep: no credential in any banner, log line, error message or file.

One canary secret goes into every URI and token setting (the MLflow tracking URI's
password, the PostgreSQL prediction log's, the Redis connection's, the API and trigger
tokens). Then the commands and servers run as a user runs them, each a real process:
``shipway serve`` (bentoml serve; its registry unreachable, so it logs the failure paths
too), ``shipway trigger serve`` (answering a valid and a refused alert), ``shipway
monitor run``, ``shipway status``, ``shipway pipeline submit`` and ``shipway batch
schedule`` (failing on the unreachable stores, so their error messages are checked), and
``shipway pipeline package`` refusing a default that carries a credential. The canary must appear in no
output, no log under the state dir, and no file any of them wrote: every one of these
secrets lives in the environment, so no file may hold it.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from shipway.core.launch import ServiceHandle
from shipway.core.net import free_port
from tests.conftest import ROOT, require, tool_env

pytestmark = pytest.mark.integration

CANARY = "cnry" + secrets.token_hex(12)


@dataclass
class Sweep:
    root: Path
    env: dict[str, str]
    exe: str
    outputs: dict[str, str]

    @property
    def state(self) -> Path:
        return self.root / "state"


@pytest.fixture(scope="module")
def sweep(tmp_path_factory: pytest.TempPathFactory, postgres_url: str) -> Iterator[Sweep]:
    exe = shutil.which("shipway", path=tool_env()["PATH"])
    require(exe is not None, "the shipway CLI is not installed in this venv")
    assert exe is not None
    root = tmp_path_factory.mktemp("canary")
    closed = free_port()  # nothing listens: the registry is unreachable
    pg = postgres_url.replace("postgresql://shipway@", f"postgresql://shipway:{CANARY}@")
    env = {
        **tool_env(),
        "SHIPWAY_ROOT": str(ROOT),
        "SHIPWAY_STATE_DIR": str(root / "state"),
        "SHIPWAY_MLFLOW_TRACKING_URI": f"http://shipway:{CANARY}@127.0.0.1:{closed}",
        "SHIPWAY_PREDICTION_LOG_URI": pg,  # PostgreSQL trusts the user: a real connection
        "SHIPWAY_FEAST_REDIS_CONNECTION": f"127.0.0.1:{free_port()},password={CANARY}",
        "SHIPWAY_API_TOKEN": CANARY,
        "SHIPWAY_TRIGGER_TOKEN": CANARY,
        "SHIPWAY_KFP_HOST": f"http://kfp:{CANARY}@127.0.0.1:{closed}",
        "SHIPWAY_STARTUP_RETRY_SECONDS": "1",
        # an unreachable registry fails in seconds instead of MLflow's minutes of retries
        "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0",
        "MLFLOW_HTTP_REQUEST_TIMEOUT": "3",
        "BENTOML_HOME": str(root / "bentoml"),
        "HOME": str(root / "home"),  # whatever a library writes under ~ is swept too
    }
    (root / "home").mkdir()
    yield Sweep(root, env, exe, {})


def _wait_http(url: str, proc: subprocess.Popen[bytes], timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, f"exited with {proc.returncode}"
        try:
            httpx.get(url, timeout=2)
            return
        except httpx.TransportError:
            time.sleep(0.5)
    pytest.fail(f"nothing answered at {url} within {timeout}s")


def _cli(sweep: Sweep, name: str, *args: str) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        [sweep.exe, *args],
        env=sweep.env,
        capture_output=True,
        text=True,
        timeout=300,
        cwd=sweep.root,
    )
    sweep.outputs[name] = proc.stdout + proc.stderr
    return proc


def test_shipway_serve(sweep: Sweep) -> None:
    port = free_port()
    out = sweep.root / "serve.out"
    with out.open("wb") as sink:
        proc = subprocess.Popen(
            [sweep.exe, "serve", "-u", "hotel_rates", "--port", str(port)],
            env=sweep.env,
            stdout=sink,
            stderr=subprocess.STDOUT,
            cwd=sweep.root,
            start_new_session=True,  # ServiceHandle stops the group and its workers
        )
    handle = ServiceHandle(proc, f"http://127.0.0.1:{port}", out)  # type: ignore[arg-type]
    try:
        _wait_http(f"{handle.url}/livez", proc)
        time.sleep(5)  # a few of the registry's failed connection attempts get logged
        auth = {"Authorization": f"Bearer {CANARY}"}
        assert httpx.get(f"{handle.url}/readyz", timeout=10).status_code == 503
        r = httpx.post(f"{handle.url}/predict", json={}, headers=auth, timeout=30)
        assert r.status_code in (400, 503), r.text
        wrong = {"Authorization": f"Bearer {CANARY}x"}
        assert httpx.post(f"{handle.url}/predict", json={}, headers=wrong).status_code == 401
    finally:
        handle.stop()
    sweep.outputs["serve"] = text = out.read_text(errors="replace")
    assert "registry http://shipway:***@127.0.0.1" in text  # the banner, masked


def test_shipway_trigger_serve(sweep: Sweep) -> None:
    port = free_port()
    out = sweep.root / "trigger.out"
    with out.open("wb") as sink:
        proc = subprocess.Popen(
            [sweep.exe, "trigger", "serve", "--port", str(port)],
            env=sweep.env,
            stdout=sink,
            stderr=subprocess.STDOUT,
            cwd=sweep.root,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_http(f"{url}/healthz", proc)
        # a retraining alert: the run goes to the (unreachable) Kubeflow host and fails,
        # and the decision and the failure are recorded in the retraining log
        body = [{"labels": {"alertname": "ShipwayDataDrift", "usecase": "hotel_rates"}}]
        ok = httpx.post(
            f"{url}/api/v2/alerts", json=body, headers={"Authorization": f"Bearer {CANARY}"}
        )
        assert ok.status_code == 200, ok.text
        refused = httpx.post(
            f"{url}/api/v2/alerts", json=body, headers={"Authorization": f"Bearer x{CANARY}"}
        )
        assert refused.status_code == 401
        retraining = sweep.state / "retraining" / "hotel_rates.jsonl"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and len(_lines(retraining)) < 2:
            time.sleep(0.5)
        assert [e.get("outcome") for e in _lines(retraining)] == ["started", "failed"]
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    sweep.outputs["trigger"] = out.read_text(errors="replace")


def _lines(path: Path) -> list[dict[str, object]]:
    text = path.read_text() if path.is_file() else ""
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def test_shipway_monitor_run_status_and_submit(sweep: Sweep) -> None:
    monitor = _cli(sweep, "monitor", "monitor", "run", "-u", "hotel_rates")
    assert monitor.returncode != 0  # no reachable registry: one error line
    assert "127.0.0.1" in sweep.outputs["monitor"]
    _cli(sweep, "status", "status", "--no-html")
    host = f"http://kfp:{CANARY}@127.0.0.1:{free_port()}"
    submit = _cli(sweep, "submit", "pipeline", "submit", "-u", "hotel_rates", "--host", host)
    assert submit.returncode != 0
    data = sweep.root / "batch-in"
    data.mkdir(exist_ok=True)
    (data / "rows.csv").write_text("booking_id\nb1\n")
    out = str(sweep.root / "batch-out")
    batch = _cli(sweep, "batch schedule", "batch", "schedule", "-u", "hotel_rates",
                 "--cron", "0 3 * * *", "-i", str(data), "-o", out, "--host", host)  # fmt: skip
    assert batch.returncode != 0  # the KFP API is unreachable
    secret_uri = f"http://shipway:{CANARY}@127.0.0.1:{free_port()}"
    package = _cli(sweep, "pipeline package", "pipeline", "package", "-u", "hotel_rates",
                   "--kind", "batch", "-D", f"tracking_uri={secret_uri}",
                   "--output", str(sweep.root / "pkg.yaml"))  # fmt: skip
    assert package.returncode != 0  # a credential in a default is refused, not echoed
    for words in (
        ("train", "--help"),
        ("batch", "run", "--help"),
        ("pipeline", "submit", "--help"),
        ("trigger", "serve", "--help"),
    ):
        assert _cli(sweep, " ".join(words), *words).returncode == 0


def test_the_canary_is_nowhere(sweep: Sweep) -> None:
    """Runs last (same module): every output, every log, every file written."""
    require(len(sweep.outputs) >= 8, "sweeps what the tests above ran: run the whole module")
    leaks = [name for name, text in sweep.outputs.items() if CANARY in text]
    assert not leaks, {n: _around(sweep.outputs[n]) for n in leaks}
    assert list((sweep.state / "logs").glob("*.log")), "the commands wrote their logs"
    written = [p for p in sweep.root.rglob("*") if p.is_file()]
    holding = [str(p) for p in written if CANARY.encode() in p.read_bytes()]
    assert not holding, holding
    assert (sweep.state / "retraining" / "hotel_rates.jsonl").is_file()  # swept above
    assert os.environ.get("SHIPWAY_API_TOKEN") != CANARY  # the test process was never told
    json.dumps(sweep.outputs)  # all text


def _around(text: str) -> str:
    i = text.index(CANARY)
    return text[max(0, i - 200) : i + 60]
