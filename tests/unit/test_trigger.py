"""The retraining trigger's decisions: cooldown, concurrency, failures, logging.

The pipeline is replaced by a recording runner here; the real pipeline (and its gate)
runs in tests/integration/test_trigger.py.
"""

from __future__ import annotations

import json
import multiprocessing
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from monitoring import trigger as trig
from monitoring.alerts import parse_alerts
from monitoring.drift import ColumnDrift, DriftResult
from monitoring.trigger import RetrainTrigger, history, maybe_retrain
from monitoring.window import WindowResult
from shipway.core.settings import Settings
from shipway.core.spec import Monitoring, UseCaseSpec
from shipway.core.usecases import load_usecase

ROOT = Path(__file__).resolve().parents[2]
REJECTED = {
    "model": "hotel_rates",
    "version": "7",
    "promoted": False,
    "gate_passed": False,
    "failures": ["FAIL beats_champion: 8.4 (needs <= 8.3)"],
}


class Recorder:
    """A stand-in pipeline: counts calls, optionally slow or failing."""

    def __init__(self, seconds: float = 0.0, error: Exception | None = None) -> None:
        self.calls: list[tuple[str, str]] = []
        self.kwargs: list[dict[str, Any]] = []
        self.seconds, self.error = seconds, error

    def __call__(self, settings: Settings, usecase: str, rev: str, **kw: Any) -> dict[str, Any]:
        self.calls.append((usecase, rev))
        self.kwargs.append(kw)
        time.sleep(self.seconds)
        if self.error:
            raise self.error
        return dict(REJECTED)


@pytest.fixture()
def settings(tmp_path: Path) -> Settings:
    return Settings(root=ROOT, state_dir=tmp_path / "state")


@pytest.fixture(scope="module")
def spec() -> UseCaseSpec:
    return load_usecase("hotel_rates", Settings(root=ROOT))  # cooldown 24 h


def cooldown(spec: UseCaseSpec, hours: float) -> UseCaseSpec:
    mon = Monitoring.model_validate(
        {**spec.monitoring.model_dump(), "retrain_cooldown_hours": hours}
    )
    return spec.model_copy(update={"monitoring": mon})


def outcomes(settings: Settings) -> list[str]:
    return [e["outcome"] for e in history(settings, "hotel_rates") if e["event"] == "decision"]


def count(t: RetrainTrigger, outcome: str) -> float:
    v = t.registry.get_sample_value(
        "shipway_retrain_triggers_total", {"usecase": "hotel_rates", "outcome": outcome}
    )
    return v or 0.0


def test_second_request_within_cooldown_does_not_run(settings: Settings, spec: UseCaseSpec) -> None:
    run = Recorder()
    t = RetrainTrigger(settings, runner=run)
    first = t.request(spec, reason="drift", source="test", data_rev="HEAD")
    second = t.request(spec, reason="drift again", source="test", data_rev="HEAD")
    assert first["outcome"] == "started" and first["result"]["version"] == "7"
    assert second["outcome"] == "cooldown" and "cooldown until" in second["why"]
    assert run.calls == [("hotel_rates", "HEAD")]
    assert count(t, "started") == 1 and count(t, "cooldown") == 1
    # the cooldown survives a restart (a new trigger, same state dir)
    again = RetrainTrigger(settings, runner=run).request(spec, reason="x", source="test")
    assert again["outcome"] == "cooldown" and len(run.calls) == 1
    # a person can override it; every step is in the log, with the gate's verdict
    forced = RetrainTrigger(settings, runner=run).request(
        spec, reason="x", source="cli", force=True, data_rev="HEAD"
    )
    assert forced["outcome"] == "started" and len(run.calls) == 2
    events = [e["event"] for e in history(settings, "hotel_rates")]
    assert events == ["decision", "rejected", "decision", "decision", "decision", "rejected"]
    rejected = history(settings, "hotel_rates")[1]
    assert rejected["promoted"] is False and "beats_champion" in rejected["failures"][0]


def test_cooldown_elapses(settings: Settings, spec: UseCaseSpec) -> None:
    run = Recorder()
    t = RetrainTrigger(settings, runner=run)
    short = cooldown(spec, 0.0005)  # 1.8 s
    assert t.request(short, reason="a", source="test", data_rev="HEAD")["outcome"] == "started"
    assert t.request(short, reason="b", source="test", data_rev="HEAD")["outcome"] == "cooldown"
    time.sleep(2.0)
    assert t.request(short, reason="c", source="test", data_rev="HEAD")["outcome"] == "started"
    assert len(run.calls) == 2


def test_concurrent_threads_start_at_most_one_run(settings: Settings, spec: UseCaseSpec) -> None:
    run = Recorder(seconds=0.5)
    t = RetrainTrigger(settings, runner=run)
    gate = threading.Barrier(8)
    results: list[str] = []

    def call() -> None:
        gate.wait()
        d = t.request(cooldown(spec, 0), reason="storm", source="test", data_rev="HEAD")
        results.append(d["outcome"])

    threads = [threading.Thread(target=call) for _ in range(8)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    # even with no cooldown at all, a run in progress holds every other request back
    assert sorted(results) == ["cooldown"] * 7 + ["started"]
    assert len(run.calls) == 1


def _request_from_process(state_dir: str, barrier: Any) -> None:
    s = Settings(root=ROOT, state_dir=Path(state_dir))
    barrier.wait()
    RetrainTrigger(s, runner=Recorder(seconds=0.3)).request(
        load_usecase("hotel_rates", s), reason="storm", source="test", data_rev="HEAD"
    )


def test_concurrent_processes_start_at_most_one_run(settings: Settings) -> None:
    ctx = multiprocessing.get_context("fork")
    barrier = ctx.Barrier(4)
    procs = [
        ctx.Process(target=_request_from_process, args=(str(settings.state), barrier))
        for _ in range(4)
    ]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    assert sorted(outcomes(settings)) == ["cooldown"] * 3 + ["started"]


def test_failed_run_is_logged_counted_and_releases_the_run(
    settings: Settings, spec: UseCaseSpec
) -> None:
    t = RetrainTrigger(settings, runner=Recorder(error=RuntimeError("dvc pull failed")))
    d = t.request(cooldown(spec, 0), reason="a", source="test", data_rev="HEAD")
    assert d["outcome"] == "started" and "dvc pull failed" in d["result"]["error"]
    assert outcomes(settings) == ["started", "failed"] and count(t, "failed") == 1
    state = json.loads((settings.state / "retraining" / "hotel_rates.state.json").read_text())
    assert state["running"] is None
    again = t.request(cooldown(spec, 0), reason="b", source="test", data_rev="HEAD")
    assert again["outcome"] == "started"


def test_background_run_and_a_dead_runner_from_another_process(
    settings: Settings, spec: UseCaseSpec
) -> None:
    run = Recorder(seconds=0.3)
    t = RetrainTrigger(settings, runner=run)
    d = t.request(cooldown(spec, 0), reason="a", source="test", data_rev="HEAD", wait=False)
    assert d["outcome"] == "started" and "result" not in d
    busy = t.request(cooldown(spec, 0), reason="b", source="test", force=True, data_rev="HEAD")
    assert busy["outcome"] == "cooldown" and "already running" in busy["why"]
    t.join(10)
    assert [e["event"] for e in history(settings, "hotel_rates")][-1] == "rejected"
    # a run marked by a process that died long ago does not block forever
    path = settings.state / "retraining" / "hotel_rates.state.json"
    old = (datetime.now(UTC) - timedelta(hours=13)).isoformat()
    path.write_text(json.dumps({"running": {"token": "dead", "started_at": old}}))
    assert t.request(spec, reason="c", source="test", data_rev="HEAD")["outcome"] == "started"


def test_cluster_settings_submit_to_kubeflow(
    settings: Settings, spec: UseCaseSpec, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pipelines import runner

    sent: list[tuple[str, str, str]] = []
    monkeypatch.setattr(
        runner, "submit", lambda s, h, u, r, **kw: sent.append((h, u, r)) or "run-42"
    )
    cluster = settings.model_copy(update={"kfp_host": "http://kfp.example:8888"})
    d = RetrainTrigger(cluster, runner=runner.retraining_runner(cluster)).request(
        spec, reason="a", source="test"
    )
    assert sent == [("http://kfp.example:8888", "hotel_rates", "HEAD")]
    assert d["result"]["kfp_run_id"] == "run-42"
    assert history(cluster, "hotel_rates")[-1]["event"] == "submitted"


def window(drift_share: float, drop: float | None) -> WindowResult:
    from shipway.core.performance import Performance

    n = 10
    feats = [
        ColumnDrift(f"f{i}", "numerical", "wasserstein", 0.1, 0.5, i < drift_share * n)
        for i in range(n)
    ]
    return WindowResult(
        usecase="hotel_rates",
        window={"start": "2017-07-01", "end": "2017-08-01", "by": "event_time"},
        model={"name": "hotel_rates", "version": "1"},
        rows={"logged": 100, "served": 100, "shadow": 0, "labelled": 100},
        drift=DriftResult(feats, None, 0.3, 100, 100, False),
        performance=Performance("mae", 100, 10.0, 8.0, drop, 0.2, {}),
        challenger=None,
        spec_thresholds={"drift_share": 0.3, "performance_drop": 0.2},
    )


def test_monitor_results_decide_against_the_spec(settings: Settings, spec: UseCaseSpec) -> None:
    run = Recorder()
    t = RetrainTrigger(settings, runner=run)
    healthy = maybe_retrain(settings, spec, window(0.1, 0.05), trigger=t)
    assert healthy["outcome"] == "ignored" and "healthy" in healthy["reason"]
    degraded = maybe_retrain(settings, spec, window(0.1, 0.5), trigger=t)
    assert degraded["outcome"] == "started" and "degraded" in degraded["reason"]
    drifted = maybe_retrain(settings, spec, window(0.4, None), trigger=t)
    assert drifted["outcome"] == "cooldown"
    assert drifted["details"]["drift_share"] == pytest.approx(0.4)
    assert len(run.calls) == 1 and count(t, "ignored") == 1
    # an event-time window (a replay) retrains on the data up to its last day
    assert run.kwargs == [{"as_of": "2017-07-31"}] and degraded["as_of"] == "2017-07-31"


def test_newest_data_rev_is_head_or_the_working_tree(settings: Settings) -> None:
    assert trig.newest_data_rev(settings) in ("HEAD", "workspace")
    assert trig.newest_data_rev(settings.model_copy(update={"kfp_host": "http://x"})) == "HEAD"


def test_alert_payloads_of_alertmanager_and_prometheus() -> None:
    am = {
        "status": "firing",
        "alerts": [
            {"status": "firing", "labels": {"alertname": "ShipwayDataDrift", "usecase": "u"}},
            {
                "status": "resolved",
                "labels": {"alertname": "ShipwayPerformanceDegraded", "usecase": "u"},
            },
            {"status": "firing", "labels": {"alertname": "Custom", "shipway_action": "retrain"}},
            {"status": "firing", "labels": {"alertname": "ShipwayHighErrorRatio", "usecase": "u"}},
        ],
    }
    a = parse_alerts(am, "alertmanager")
    assert [(x.name, x.firing, x.wants_retrain) for x in a] == [
        ("ShipwayDataDrift", True, True),
        ("ShipwayPerformanceDegraded", False, True),
        ("Custom", True, True),
        ("ShipwayHighErrorRatio", True, False),
    ]
    future = (datetime.now(UTC) + timedelta(minutes=4)).isoformat().replace("+00:00", "Z")
    past = (datetime.now(UTC) - timedelta(minutes=1)).isoformat()
    pushed = [
        {"labels": {"alertname": "ShipwayDataDrift", "usecase": "u"}, "endsAt": future},
        {"labels": {"alertname": "ShipwayDataDrift", "usecase": "v"}, "endsAt": past},
    ]
    assert [x.firing for x in parse_alerts(pushed, "prometheus")] == [True, False]
    for bad, src in (({"alerts": "x"}, "alertmanager"), ({}, "prometheus")):
        with pytest.raises(ValueError):
            parse_alerts(bad, src)
