"""The training pipeline's steps, called in process on stores of a test's own: for the
tests that need registered versions they can move freely (governance, promotion races,
registration failures) without touching the session's champion."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from pipelines.steps import tasks
from shipway.core.settings import Settings
from shipway.core.usecases import load_usecase
from tests.conftest import ROOT

NAME = "hotel_rates"


def edit_spec(fetched: Path, change: Any) -> None:
    """Change the spec a pipeline run trains with (its fetched copy, never the repo's)."""
    path = fetched / "usecase.yaml"
    data = yaml.safe_load(path.read_text())
    change(data)
    path.write_text(yaml.safe_dump(data))


def relax_latency(data: dict) -> None:
    """Lift the spec's latency budget (for :func:`edit_spec`)."""
    # this machine is shared with other test runs; the model-validation latency criterion
    # is tested in test_training, the gates here are about governance
    data["acceptance"]["latency_p99_ms"] = 5000


def own_stores(repo_data: Path, state: Path) -> Settings:
    """Settings on an isolated state (registry, trail, prediction log, a materialized Feast
    online store), exported for the steps' child processes."""
    from feature_repo.store import apply, feature_store, materialize

    s = Settings(  # explicit: whatever another module exported, these stores are its own
        root=ROOT,
        state_dir=state,
        data_dir=repo_data,
        mlflow_tracking_uri=None,
        mlflow_artifact_root=None,
        prediction_log_uri=None,
    )
    s.export_env()
    spec = load_usecase(NAME, s)
    store = feature_store(s)
    apply(store, [spec], s.data)
    materialize(store, spec, s.data)
    return s


def train_steps(s: Settings, run: Path) -> None:
    """The pipeline's steps up to the model-validation gate, on a latency-relaxed spec."""
    tasks.fetch_task(str(s.root), "HEAD", NAME, run / "data")
    edit_spec(run / "data", relax_latency)
    tasks.training_set_task(run / "data", run / "sets")
    tasks.train_task(run / "data", run / "sets", run / "model")
    tasks.evaluate_task(run / "data", run / "sets", run / "model", run / "eval")
    tasks.gate_task(
        run / "data", run / "sets", run / "model", run / "eval", s.tracking_uri, run / "gate"
    )


def register_steps(
    s: Settings,
    base: Path,
    run_id: str,
    out: Path,
    *,
    fetched: Path | None = None,
    gate: Path | None = None,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The pipeline's last three steps on ``base``'s model (register, production readiness,
    promotion), exactly as runner.run_in_process calls them; (registered, final result)."""
    data = fetched or base / "data"
    registered = tasks.register_task(
        data,
        base / "sets",
        base / "model",
        base / "eval",
        gate or base / "gate",
        s.tracking_uri,
        s.artifact_root,
        run_id,
        "",
        out,
    )
    ready = tasks.readiness_task(data, registered, s.tracking_uri)
    return registered, tasks.promote_task(data, registered, ready, s.tracking_uri, run_id)
