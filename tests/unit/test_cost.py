"""Cost per prediction: the measurement's arithmetic, a real process tree measured, the
gate's decision with and without a budget, the budget's validation, and where the cost
is shown (model card, ``shipway status``)."""

from __future__ import annotations

import hashlib
import io
import json
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import jsonschema
import pytest
import yaml
from rich.console import Console

from shipway.cli.portfolio import print_status
from shipway.core.spec import SpecError, UseCaseSpec, load_spec
from shipway.core.usecases import load_usecase
from shipway.governance import PRODUCTION_READINESS, cards, cost, gates
from shipway.governance import portfolio as pf
from shipway.governance.facts import VersionFacts
from shipway.governance.portfolio import sources as pf_sources
from tests.conftest import ROOT


@pytest.fixture(scope="module")
def spec() -> UseCaseSpec:
    return load_usecase("hotel_rates")


def _budgeted(spec: UseCaseSpec, **budget: float) -> UseCaseSpec:
    data = spec.model_dump()
    data["acceptance"]["cost_budget"] = budget
    return UseCaseSpec.model_validate(data)


# ---- the arithmetic ----
def test_cpu_is_the_sum_of_per_process_deltas_and_scales_to_a_thousand() -> None:
    first = {(10, 1.0): 5.0, (11, 1.0): 2.0, (12, 1.0): 1.0}
    last = {
        (10, 1.0): 5.5,  # served throughout: +0.5
        (11, 1.0): 2.25,  # exited after this, its last reading: +0.25
        (12, 1.0): 1.0,  # idle: +0
        (13, 9.0): 0.25,  # born in the window: counted from zero
    }
    assert cost.cpu_used(first, last) == pytest.approx(1.0)
    # a pid reused by a new process is another process (its start time differs)
    assert cost.cpu_used({(10, 1.0): 5.0}, {(10, 2.0): 0.5}) == pytest.approx(0.5)
    assert cost.per_thousand(1.0, 250) == pytest.approx(4.0)
    assert cost.per_thousand(1.0, 0) is None
    measured = cost.ServingCost(250, 1.0, 2.0, 3, 300.0, 320.0)
    d = measured.to_dict()
    assert d["cpu_seconds_per_1k"] == pytest.approx(4.0) and d["rss_peak_mb"] == 320.0


# A parent that starts a worker (as `bentoml serve` does); the worker, on a line from
# stdin, spends 0.3 CPU-seconds and then holds 64 MB more, and says "done".
WORKER = """
import sys, time
print("ready", flush=True)
sys.stdin.readline()
t0 = time.process_time()
while time.process_time() - t0 < 0.3:
    pass
block = bytearray(64 * 1024 * 1024)
for i in range(0, len(block), 4096):
    block[i] = 1
print("done", flush=True)
sys.stdin.readline()
"""
PARENT = "import subprocess, sys; sys.exit(subprocess.call([sys.executable, '-c', sys.argv[1]]))"


def test_the_meter_measures_the_cpu_and_memory_of_a_real_process_tree() -> None:
    proc = subprocess.Popen(
        [sys.executable, "-c", PARENT, WORKER],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdin is not None and proc.stdout is not None
    try:
        assert proc.stdout.readline().strip() == "ready"
        meter = cost.CostMeter(proc.pid)
        meter.start()
        proc.stdin.write("go\n")
        proc.stdin.flush()
        assert proc.stdout.readline().strip() == "done"
        measured = meter.stop(predictions=150)
    finally:
        proc.stdin.close()
        proc.wait(30)
    assert measured.processes == 2  # the parent and its worker
    # the worker's own 0.3 s, counted in 10 ms clock ticks; the parent only waits
    assert 0.28 <= measured.cpu_seconds <= 0.6, measured
    assert measured.cpu_seconds_per_1k == pytest.approx(measured.cpu_seconds / 150 * 1000)
    assert measured.rss_peak_mb - measured.rss_start_mb >= 60, measured
    assert cost.read_tree(proc.pid) == cost.Reading({}, 0)  # gone: an empty tree


# ---- the gate ----
def _probes(**smoke: Any) -> dict[str, Any]:
    measured = {
        "predictions": 200,
        "requests": 200,
        "cpu_seconds": 0.9,
        "cpu_seconds_per_1k": 4.5,
        "rss_start_mb": 410.0,
        "rss_peak_mb": 420.0,
        "processes": 2,
        "wall_seconds": 2.0,
    }
    return {
        "prerequisites": {g: True for g in gates.prerequisite_gates()},
        "bento": {"ok": True, "tag": "shipway-prediction:abc", "detail": "built"},
        "smoke": {
            "ok": True,
            "status": 200,
            "p99_ms": 20.0,
            "requests": 30,
            "detail": "ok",
            "cost": measured,
            **smoke,
        },
        "reference": {"ok": True, "rows": 2231, "detail": "2231 rows"},
        "rules": {"ok": True, "rules": 22, "detail": "promtool passed"},
        "rollback": {"target": "3", "first_model": False, "detail": "current champion v3"},
    }


def test_without_a_budget_the_cost_is_reported_not_enforced(spec: UseCaseSpec) -> None:
    assert spec.acceptance.cost_budget is None  # the shipped specs set none
    rec = gates.production_readiness(spec, {}, _probes())
    assert rec.passed
    crit = {c.name: c for c in rec.criteria}
    assert crit[cost.CPU_CRITERION].value == 4.5 and crit[cost.CPU_CRITERION].comparator == ""
    assert crit[cost.MEMORY_CRITERION].value == 420.0
    assert "no budget" in crit[cost.CPU_CRITERION].detail
    # nothing measured (a smoke that failed before) and no budget: still no cost failure
    down = gates.production_readiness(spec, {}, _probes(cost=None))
    assert {c.value for c in down.criteria if c.name.startswith("cost_")} == {"not measured"}
    assert all(c.passed for c in down.criteria if c.name.startswith("cost_"))


def test_a_budget_fails_the_gate_naming_the_criterion_and_the_miss(spec: UseCaseSpec) -> None:
    within = _budgeted(spec, cpu_seconds_per_1k=5.0, memory_mb=500.0)
    assert gates.production_readiness(within, {}, _probes()).passed
    over_cpu = gates.production_readiness(_budgeted(spec, cpu_seconds_per_1k=3.0), {}, _probes())
    failed = {c.name: c.summary() for c in over_cpu.failures}
    assert set(failed) == {cost.CPU_CRITERION}
    assert "4.5 (needs <= 3)" in failed[cost.CPU_CRITERION]
    assert "missed by 1.5" in failed[cost.CPU_CRITERION]
    over_mem = gates.production_readiness(_budgeted(spec, memory_mb=400.0), {}, _probes())
    assert {c.name for c in over_mem.failures} == {cost.MEMORY_CRITERION}
    unmeasured = gates.production_readiness(
        _budgeted(spec, memory_mb=400.0), {}, _probes(cost=None)
    )
    assert {c.name for c in unmeasured.failures} == {cost.MEMORY_CRITERION}
    assert "budget is set" in unmeasured.failures[0].detail


# ---- the budget in the spec ----
def _spec_file(tmp_path: Path, budget: Any) -> Path:
    data = yaml.safe_load((ROOT / "usecases" / "hotel_rates" / "usecase.yaml").read_text())
    data["acceptance"]["cost_budget"] = budget
    path = tmp_path / "usecase.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.mark.parametrize(
    ("budget", "field", "says"),
    [
        ({"cpu_seconds_per_1k": -1.0}, "cpu_seconds_per_1k", "greater than 0"),
        ({"cpu_seconds_per_1k": 0}, "cpu_seconds_per_1k", "greater than 0"),
        ({"memory_mb": "512"}, "memory_mb", "valid number"),
        ({"memory_mb": True}, "memory_mb", "valid number"),
        ({"memory_mb": float("inf")}, "memory_mb", "finite number"),
        ({"cpu_per_1k": 2.0}, "cpu_per_1k", "Extra inputs"),
        ({}, "", "needs 'cpu_seconds_per_1k' or 'memory_mb'"),
        ("cheap", "", "valid dictionary"),
    ],
)
def test_a_bad_budget_fails_the_spec_naming_the_field(
    tmp_path: Path, budget: Any, field: str, says: str
) -> None:
    with pytest.raises(SpecError) as err:
        load_spec(_spec_file(tmp_path, budget))
    loc = "acceptance.cost_budget" + (f".{field}" if field else "")
    line = next(ln for ln in str(err.value).splitlines() if loc in ln)
    assert says in line, str(err.value)


def test_a_budget_loads_with_either_limit(tmp_path: Path) -> None:
    loaded = load_spec(_spec_file(tmp_path, {"cpu_seconds_per_1k": 8, "memory_mb": None}))
    assert loaded.acceptance.cost_budget is not None
    assert loaded.acceptance.cost_budget.cpu_seconds_per_1k == 8.0
    assert loaded.acceptance.cost_budget.memory_mb is None


def test_a_spec_without_a_budget_hashes_as_before_the_field_existed(spec: UseCaseSpec) -> None:
    before = spec.model_dump(mode="json")
    del before["acceptance"]["cost_budget"]  # the spec's shape before this field
    old = hashlib.sha256(json.dumps(before, sort_keys=True).encode()).hexdigest()[:16]
    assert spec.content_hash() == old  # lineage still finds older versions' specs
    assert _budgeted(spec, memory_mb=900.0).content_hash() != old


# ---- where it is shown ----
def _record(spec: UseCaseSpec, **smoke: Any) -> dict[str, Any]:
    return gates.production_readiness(spec, {"model": "hotel_rates"}, _probes(**smoke)).to_dict()


def _facts(record: dict[str, Any] | None) -> VersionFacts:
    return VersionFacts(
        name="hotel_rates",
        version="3",
        run_id="r",
        created_at="2026-12-04",
        aliases=["champion"],
        tags={},
        metrics={},
        params={},
        records={PRODUCTION_READINESS: record} if record else {},
    )


def test_the_model_card_shows_the_cost_and_the_budget(spec: UseCaseSpec) -> None:
    card = cards.model_card(spec, _facts(_record(spec)))
    section = card.split("## Cost per prediction", 1)[1].split("\n## ", 1)[0]
    assert "200 `/predict` answers by 2 serving processes" in section
    assert "| 4.5 CPU-seconds | no budget set |" in section
    assert "420 MB (at start 410 MB) | no budget set |" in section
    tight = _budgeted(spec, cpu_seconds_per_1k=3.0, memory_mb=500.0)
    section = cards.model_card(spec, _facts(_record(tight))).split("## Cost per prediction")[1]
    assert "budget 3 CPU-s: OVER" in section and "budget 500 MB: within" in section
    assert "Not measured" in cards.model_card(spec, _facts(None))


def test_the_standard_schema_card_carries_the_cost(spec: UseCaseSpec) -> None:
    card = json.loads(cards.render(spec, _facts(_record(spec)))["model_card.json"])
    schema = json.loads(cards.MCT_SCHEMA.read_text())
    jsonschema.validate(card, schema, format_checker=jsonschema.Draft7Validator.FORMAT_CHECKER)
    perf = card["quantitative_analysis"]["performance_metrics"]
    where = "serving: production-readiness smoke"
    assert {"type": "cpu_seconds_per_1000_predictions", "value": "4.5", "slice": where} in perf
    assert {"type": "peak_resident_memory_mb", "value": "420", "slice": where} in perf
    bare = json.loads(cards.render(spec, _facts(None))["model_card.json"])
    assert not [
        m for m in bare["quantitative_analysis"]["performance_metrics"] if m["slice"] == where
    ]


def test_status_reads_the_verified_record_and_shows_cost_next_to_the_kpi(
    spec: UseCaseSpec, tmp_path: Path
) -> None:
    rec = _record(_budgeted(spec, cpu_seconds_per_1k=3.0))
    path = tmp_path / "pr.json"
    path.write_text(json.dumps(rec))
    mv = SimpleNamespace(tags={"evidence.production_readiness": str(path)}, version="3")
    states, records = pf_sources._version_gates(None, mv)
    assert states["production_readiness"].state == "failed"
    found = pf.serving_cost(records.get("production_readiness"), "champion v3")
    assert found == pf.Cost(4.5, 420.0, False, "champion v3")
    rec["facts"]["smoke"]["cost"]["cpu_seconds_per_1k"] = 0.1  # a nicer cost than measured
    path.write_text(json.dumps(rec))
    assert "production_readiness" not in pf_sources._version_gates(None, mv)[1]

    st = pf.UseCaseStatus(
        name="hotel_rates",
        risk_level="low",
        champion="3",
        kpi=pf.Kpi("ADR error", "EUR", 36.0, 30.0, "lower_is_better", "mae", 28.1, "test"),
        cost=found,
    )
    buf = io.StringIO()
    print_status([st], Console(file=buf, width=80))
    row = next(ln for ln in buf.getvalue().splitlines() if "hotel_rates" in ln)
    assert "28.1 / 30 ✓" in row and "4.5 CPU-s · 420 MB ✗" in row
    assert row.index("28.1 / 30") < row.index("4.5 CPU-s")  # next to the KPI
    assert pf.cost_text(None) == "not measured"
    assert "no budget set" in pf.cost_text(pf.Cost(4.5, 420.0, None, "champion v3"), long=True)
