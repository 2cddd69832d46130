"""Split or shadow mode without a challenger is not silent: one log line when it starts,
and the ``shipway_challenger_missing`` gauge on /metrics for as long as it lasts."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from services.engine import Engine
from services.metrics import ServiceMetrics, gauges_text
from services.models import ModelSet, ServedModel
from shipway.core.settings import Settings
from shipway.core.spec import UseCaseSpec, load_spec

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def spec() -> UseCaseSpec:
    return load_spec(ROOT / "usecases" / "hotel_rates" / "usecase.yaml")


def _set(champion: str, challenger: str | None = None) -> ModelSet:
    chall = ServedModel("hotel_rates", challenger, "challenger", None, 0.0) if challenger else None
    return ModelSet(ServedModel("hotel_rates", champion, "champion", None, 0.0), chall)


def _gauge(text: str) -> list[str]:
    return [ln for ln in text.splitlines() if ln.startswith("shipway_challenger_missing{")]


@pytest.mark.parametrize(
    ("mode", "models", "expected"),
    [
        ("split", _set("3"), ['{mode="split",usecase="hotel_rates"} 1.0']),
        ("shadow", _set("3"), ['{mode="shadow",usecase="hotel_rates"} 1.0']),
        ("split", _set("3", "4"), ['{mode="split",usecase="hotel_rates"} 0.0']),
        ("off", _set("3"), ['{mode="off",usecase="hotel_rates"} 0.0']),
        ("split", None, []),  # nothing loaded yet: unknown, not "missing"
    ],
)
def test_the_gauge_says_whether_the_mode_lacks_its_challenger(
    spec: UseCaseSpec, mode: str, models: ModelSet | None, expected: list[str]
) -> None:
    metrics = ServiceMetrics(spec, CollectorRegistry())
    metrics.challenger_mode = mode
    got = _gauge(gauges_text(metrics, models))
    assert got == [f"shipway_challenger_missing{e}" for e in expected]


class _Loader:
    """Hands out the model sets a model feed would, one per refresh."""

    def __init__(self, sets: list[ModelSet]) -> None:
        self.sets = sets

    def build(self, current: ModelSet | None, with_challenger: bool) -> tuple[ModelSet, None]:
        nxt = self.sets.pop(0)
        same = current is not None and current.versions() == nxt.versions()
        return (current if same and current is not None else nxt), None


def test_the_engine_logs_it_once_per_spell(
    spec: UseCaseSpec, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    settings = Settings(root=ROOT, state_dir=tmp_path, challenger_mode="split")
    metrics = ServiceMetrics(spec, CollectorRegistry())
    engine = Engine(settings, spec, metrics)
    assert metrics.challenger_mode == "split"  # the gauge reports the served mode
    loader: Any = _Loader([_set("3"), _set("3"), _set("4"), _set("4", "5"), _set("4")])
    engine.loader, engine.publisher = loader, None
    with caplog.at_level(logging.WARNING, logger="shipway.service"):
        for _ in range(5):
            engine._load_models()
    said = [r.getMessage() for r in caplog.records if "no challenger" in r.getMessage()]
    # v3 alone (said), v3 again (no swap), v4 alone (same spell), v4 + v5, v4 alone (said)
    assert len(said) == 2, said
    assert said[0].startswith("shipway: challenger mode split, but hotel_rates has no challenger")
    assert "champion v3 answers every request" in said[0]
    assert "champion v4 answers every request" in said[1]


def test_off_mode_says_nothing(
    spec: UseCaseSpec, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    engine = Engine(
        Settings(root=ROOT, state_dir=tmp_path, challenger_mode="off"),
        spec,
        ServiceMetrics(spec, CollectorRegistry()),
    )
    engine.loader, engine.publisher = _Loader([_set("3")]), None  # type: ignore[assignment]
    with caplog.at_level(logging.WARNING, logger="shipway.service"):
        engine._load_models()
    assert engine.models is not None and not caplog.records
