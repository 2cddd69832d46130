"""The whole loop, end to end, through the same command users run (`shipway demo`):
DVC data -> Feast -> KFP training (kfp.local) -> MLflow champion -> `bentoml serve` ->
replayed later months with feedback -> Evidently monitor -> retraining trigger -> gated
promotion -> hot reload, scraped by a real Prometheus."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
from conftest import ROOT, require, tool_env

from pipelines.steps import registry
from shipway.predictionlog import PredictionLog

pytestmark = pytest.mark.e2e
REPLAY = 300


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict, str]:
    require(
        shutil.which("prometheus") is not None,
        "the loop is scraped by a real Prometheus (apt-get install prometheus)",
    )
    state = tmp_path_factory.mktemp("e2e")
    env = {**tool_env(), "SHIPWAY_STATE_DIR": str(state), "SHIPWAY_SERVICE_PORT": "3931"}
    proc = subprocess.run(
        ["shipway", "demo", "--replay", str(REPLAY)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=1800,
    )
    assert proc.returncode == 0, f"demo failed:\n{proc.stdout[-6000:]}\n{proc.stderr[-6000:]}"
    summary = json.loads((state / "demo-summary.json").read_text())
    return state, summary, proc.stdout


def test_first_champion_is_trained_and_gated(demo: tuple[Path, dict, str]) -> None:
    _, summary, out = demo
    first = summary["first"]
    assert first["gate_passed"] and first["promoted"]
    assert (
        summary["data_version"].endswith(".dir")
        and first["data_version"] == summary["data_version"]
    )
    assert "step 4: train" in out


def test_replay_is_logged_with_feedback(demo: tuple[Path, dict, str]) -> None:
    state, summary, _ = demo
    assert summary["replayed"] == REPLAY
    log = PredictionLog(str(state / "predictions.db"))
    w = log.window("hotel_rates")
    served = w[w["mode"] == "served"]
    assert len(served) >= REPLAY
    assert served["actual"].notna().sum() >= REPLAY
    assert log.integrity_ok()


def test_monitor_detects_the_seasonal_drift_and_writes_reports(
    demo: tuple[Path, dict, str],
) -> None:
    state, summary, _ = demo
    assert summary["drift_detected"] is True
    report = Path(summary["report"])
    assert report.is_file() and report.stat().st_size > 1000
    assert (state / "monitoring" / "hotel_rates" / "index.html").is_file()


def test_retraining_is_triggered_and_promotion_follows_the_gate(
    demo: tuple[Path, dict, str],
) -> None:
    state, summary, _ = demo
    assert summary["retrain"] == "started"
    lines = [
        json.loads(x) for x in (state / "retraining" / "hotel_rates.jsonl").read_text().splitlines()
    ]
    outcome = lines[-1]
    client = registry.connect(f"sqlite:///{state / 'mlflow.db'}")
    champ = registry.alias_version(client, "hotel_rates", registry.CHAMPION)
    versions = client.search_model_versions("name='hotel_rates'")
    assert len(versions) >= 2, "the retraining registered a candidate"
    candidate = max(versions, key=lambda v: int(v.version))
    passed = candidate.tags.get("gate_passed") == "true"
    assert champ is not None
    if passed:
        assert str(champ.version) == str(candidate.version) == str(summary["champion_after"])
        assert str(summary.get("served_after")) == str(candidate.version), "hot reload"
        assert outcome["event"] in ("promoted", "promotion")
    else:
        assert str(champ.version) == str(summary["champion_before"])


def test_prometheus_scraped_service_and_monitor(demo: tuple[Path, dict, str]) -> None:
    _, summary, _ = demo
    assert summary.get("prometheus_targets_up", 0) >= 2
