"""Cost per prediction for real: the session's training run (the pipeline's own
production-readiness step, a real ``bentoml serve``) recorded what serving cost, and the
model card and ``shipway status`` show that measurement."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from typer.testing import CliRunner

from shipway.cli import app
from shipway.core import registry
from shipway.core.evidence import verify
from shipway.core.settings import Settings, get_settings
from shipway.core.spec import UseCaseSpec
from shipway.core.usecases import load_usecase
from shipway.governance import cost, gates
from shipway.governance import portfolio as pf
from shipway.governance.versions import read_uri
from tests.conftest import registry_copy

pytestmark = pytest.mark.integration
NAME = "hotel_rates"


def test_the_real_smoke_measures_serving_cost_and_card_and_status_show_it(
    settings: Settings, trained: dict, tmp_path: Path
) -> None:
    version = str(trained["version"])
    client = registry.connect(settings.tracking_uri)
    mv = client.get_model_version(NAME, version)
    rec = json.loads(read_uri(mv.tags["evidence.production_readiness"], client))
    assert verify(rec) and rec["passed"], rec
    c = rec["facts"]["smoke"]["cost"]
    # every cost request was answered, by the server and at least one worker
    assert c["predictions"] == c["requests"] == 200, c
    assert c["processes"] >= 2, c
    assert c["cpu_seconds"] > 0, c
    assert c["cpu_seconds_per_1k"] == pytest.approx(c["cpu_seconds"] / 200 * 1000, rel=1e-2)
    # CPU time of the tree cannot exceed what its cores could give in the window
    assert c["cpu_seconds"] <= c["wall_seconds"] * (os.cpu_count() or 1) + 0.05, c
    # a Python server with a model, Feast and the log loaded holds tens of MB at least
    assert c["rss_peak_mb"] >= c["rss_start_mb"] > 50, c
    crit = {x["name"]: x for x in rec["criteria"]}
    assert crit[cost.CPU_CRITERION]["value"] == c["cpu_seconds_per_1k"]
    assert crit[cost.MEMORY_CRITERION]["value"] == c["rss_peak_mb"]
    assert crit[cost.CPU_CRITERION]["passed"] and crit[cost.MEMORY_CRITERION]["passed"]

    # the same measurement judged against budgets: over one fails naming it, under passes
    spec = load_usecase(NAME, settings).model_dump()
    spec["acceptance"]["cost_budget"] = {"cpu_seconds_per_1k": c["cpu_seconds_per_1k"] / 2}
    over = gates.production_readiness(UseCaseSpec.model_validate(spec), {}, rec["facts"])
    assert [x.name for x in over.failures] == [cost.CPU_CRITERION]
    spec["acceptance"]["cost_budget"] = {"memory_mb": c["rss_peak_mb"] * 2}
    assert gates.production_readiness(UseCaseSpec.model_validate(spec), {}, rec["facts"]).passed

    card = read_uri(mv.tags["model_card"], client).decode()
    section = card.split("## Cost per prediction", 1)[1].split("\n## ", 1)[0]
    assert f"{c['cpu_seconds_per_1k']:.3g} CPU-seconds | no budget set" in section
    assert f"{c['rss_peak_mb']:.4g} MB" in section

    # shipway status, on a copy of the registry whose champion is this version
    copy = registry_copy(settings, tmp_path, version)
    (st,) = pf.collect(copy, [NAME])
    assert st.cost == pf.Cost(
        c["cpu_seconds_per_1k"],
        c["rss_peak_mb"],
        None,
        f"champion v{version}, production-readiness smoke",
    )
    # the command itself, on that copy
    copy.export_env()  # restored after the test (conftest's autouse fixture)
    get_settings.cache_clear()
    try:
        out = CliRunner().invoke(app, ["status", "-u", NAME, "--no-html"])
    finally:
        get_settings.cache_clear()
    assert out.exit_code == 0, out.output
    row = next(ln for ln in out.output.splitlines() if ln.startswith(f"│ {NAME}"))
    assert pf.cost_text(st.cost) in row and pf.kpi_text(st.kpi) in row
    assert row.index(pf.kpi_text(st.kpi)) < row.index(pf.cost_text(st.cost))
