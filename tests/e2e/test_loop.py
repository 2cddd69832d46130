"""The whole loop, end to end, through the command the README gives (`make demo`):
DVC data -> Feast -> KFP training (kfp.local) -> MLflow champion -> `bentoml serve` ->
replayed later months with feedback -> Evidently monitor -> retraining trigger -> gated
promotion -> hot reload, scraped by a real Prometheus. Then `make demo` again on the same
state: a second run must end with a served champion and an honest summary too.

The first run starts on an empty state directory, which is what `make clean` leaves."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pandas as pd
import pytest
from conftest import ROOT, require, tool_env
from mlflow import MlflowClient

from shipway.core import registry
from shipway.core.predictionlog import PredictionLog

pytestmark = pytest.mark.e2e
REPLAY = 400  # the demo's default


def make_demo(state: Path, port: int) -> tuple[dict, str]:
    """`make demo` on ``state``; its summary and its output."""
    env = {**tool_env(), "SHIPWAY_STATE_DIR": str(state), "SHIPWAY_SERVICE_PORT": str(port)}
    proc = subprocess.run(
        ["make", "demo"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=2400
    )
    assert proc.returncode == 0, f"demo failed:\n{proc.stdout[-6000:]}\n{proc.stderr[-6000:]}"
    return json.loads((state / "demo-summary.json").read_text()), proc.stdout


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict, str]:
    require(
        shutil.which("prometheus") is not None,
        "the loop is scraped by a real Prometheus (apt-get install prometheus)",
    )
    state = tmp_path_factory.mktemp("e2e")
    summary, out = make_demo(state, 3931)
    return state, summary, out


@pytest.fixture(scope="module")
def demo_again(demo: tuple[Path, dict, str]) -> tuple[Path, dict, str]:
    state, _, _ = demo
    summary, out = make_demo(state, 3932)
    return state, summary, out


def client_of(state: Path) -> MlflowClient:
    return registry.connect(f"sqlite:///{state / 'mlflow.db'}")


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


def test_retraining_learns_the_new_period_beats_the_champion_and_is_promoted(
    demo: tuple[Path, dict, str],
) -> None:
    """The designed outcome: the drifted summer months are learned (the retraining trains
    on rows after the first training period) and the retrained model beats the old
    champion on rows neither trained on, so it is promoted and hot-reloaded."""
    state, summary, _ = demo
    assert summary["retrain"] == "started"
    outcome = json.loads((state / "retraining" / "hotel_rates.jsonl").read_text().splitlines()[-1])
    assert outcome["event"] == "promotion", outcome
    client = client_of(state)
    old = client.get_model_version("hotel_rates", str(summary["first"]["version"]))
    new = registry.alias_version(client, "hotel_rates", registry.CHAMPION)
    assert new is not None and str(new.version) == str(summary["champion_after"])
    assert str(new.version) != str(old.version)
    assert str(summary.get("served_after")) == str(new.version), "hot reload"
    # what each version trained and was judged on is recorded on the version
    w_old, w_new = json.loads(old.tags["windows"]), json.loads(new.tags["windows"])
    first_end = pd.Timestamp("2017-05-01", tz="UTC")  # the spec's split.end + 1 day
    assert pd.Timestamp(w_old["train"]["last_event"]) < first_end
    assert pd.Timestamp(w_new["train"]["last_event"]) >= first_end + pd.Timedelta(days=31)
    assert w_new["as_of"] is not None
    assert pd.Timestamp(w_new["test"]["from"]) >= pd.Timestamp(old.tags["train_before"])
    # and on those rows the new champion's error is lower than the old one's
    cmp = summary["comparison"]
    assert cmp["comparison_rows"] >= 30
    assert cmp["candidate_metric_on_comparison_rows"] < cmp["champion_metric"]


def test_prometheus_scraped_service_and_monitor(demo: tuple[Path, dict, str]) -> None:
    _, summary, _ = demo
    assert summary.get("prometheus_targets_up", 0) >= 2


def test_a_second_run_serves_a_champion_and_says_what_happened(
    demo_again: tuple[Path, dict, str],
) -> None:
    state, summary, out = demo_again
    client = client_of(state)
    champ = registry.alias_version(client, "hotel_rates", registry.CHAMPION)
    assert champ is not None
    trained = summary["first"]
    if trained["promoted"]:
        assert str(summary["served"]) == str(trained["version"])
    else:  # the honest line: which version was not promoted, and which keeps serving
        assert f"champion v{summary['served']} keeps serving" in " ".join(out.split())
    assert "no champion to serve" not in out
    assert summary["replayed"] > 0 and summary.get("prometheus_targets_up", 0) >= 2
    assert str(summary["champion_after"]) == str(champ.version)
