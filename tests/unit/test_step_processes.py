"""Each KFP step is a fresh process: it imports only what its task uses, ends without a
last collection of its heap, and production readiness builds the Bento while it loads."""

from __future__ import annotations

import subprocess
import sys
from concurrent.futures import Future
from typing import Any

import pytest

from shipway.core.settings import Settings
from shipway.core.usecases import load_usecase
from shipway.governance import probes, readiness


def _run(code: str) -> list[str]:
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return out.stdout.split()


def test_the_tasks_module_loads_no_heavy_library() -> None:
    """fetch needs none of them; every other task imports its own."""
    loaded = _run(
        "import sys, pipelines.steps.tasks\n"
        "for m in ('pandas', 'sklearn', 'mlflow', 'feast', 'bentoml', 'dvc'):\n"
        "    print(m in sys.modules)"
    )
    assert loaded == ["False"] * 6


def test_the_learner_loads_only_the_estimators_the_spec_chooses() -> None:
    loaded = _run(
        "import sys\n"
        "from pipelines.steps import learner\n"
        "from shipway.core.usecases import load_usecase\n"
        "learner.make_pipeline(load_usecase('hotel_rates'), {})\n"  # LightGBM
        "print('sklearn.ensemble' in sys.modules, 'sklearn.impute' in sys.modules)"
    )
    assert loaded == ["False", "False"]


def test_a_step_process_freezes_its_heap_at_exit_once() -> None:
    """The exit handler runs after the task (frozen then), not while it runs."""
    out = _run(
        "import atexit, gc\n"
        "atexit.register(lambda: print('at-exit', gc.get_freeze_count() > 0))\n"
        "from pipelines.steps import tasks\n"
        "tasks._step_process(); tasks._step_process()\n"
        "print('running', gc.get_freeze_count())"
    )
    assert out == ["running", "0", "at-exit", "True"]


@pytest.fixture
def built(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    calls: list[str] = []

    def fake_build(settings: Settings, spec: Any, timeout: float = 600) -> dict[str, Any]:
        calls.append(spec.name)
        return {"ok": True, "tag": f"shipway-prediction:{spec.name}", "detail": "built"}

    monkeypatch.setattr(probes, "build_bento", fake_build)
    return calls


def test_start_build_returns_the_build_record(built: list[str]) -> None:
    spec = load_usecase("hotel_rates")
    future: Future[dict[str, Any]] = probes.start_build(Settings(), spec)
    assert future.result(timeout=30)["tag"] == "shipway-prediction:hotel_rates"
    assert built == ["hotel_rates"]


def test_readiness_starts_the_build_only_when_the_gate_will_run(built: list[str]) -> None:
    spec = load_usecase("hotel_rates")
    failed = {"gate_passed": False, "governance": {}}
    assert readiness.start(Settings(), spec, failed) is None
    assert built == []
    passed = {"gate_passed": True, "governance": {"use_case_approval": True}}
    # hotel_rates is designed to be promoted by the pipeline (conftest's ``trained``)
    assert readiness.skip_reason(spec, passed) == ""
    started = readiness.start(Settings(), spec, passed)
    assert started is not None and started.build.result(timeout=30)["ok"]
    assert built == ["hotel_rates"]
