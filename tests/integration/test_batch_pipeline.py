"""The batch-scoring pipeline (issue 18) on the session's real champion, Feast store and
MLflow registry: kfp.local runs the compiled pipeline's components in processes, a
ParallelFor of shards, then the atomic commit.

It shows: output row count and keys equal the input's, with the numbers of the
real-time scoring path (row by row); every row carries the version that was
champion at start, even when the alias moves mid-run; a shard failure leaves no output,
and the re-run commits exactly one copy of each row; a retried shard overwrites its own
file. The session's trained champion is reused (no training here).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow.parquet as pq
import pytest

from pipelines.batchrun import BatchJob, run_batch_local
from pipelines.runner import PipelineFailed
from pipelines.steps.batch import MANIFEST, commit_task, plan_task, read_output, shard_task
from shipway.core import openlineage as ol
from shipway.core import registry
from shipway.core.settings import Settings
from shipway.core.spec import UseCaseSpec
from shipway.scoring import features
from shipway.scoring.models import load_version
from shipway.scoring.tables import required_columns
from tests.conftest import ROOT, registry_copy, session_champion, tool_env
from tests.lineagecheck import read_events, runs_of, validate_event

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def world(
    settings: Settings, feast_store: Any, request: pytest.FixtureRequest, tmp_path_factory
) -> Settings:
    """A copy of the session registry (this module moves the champion alias) and of its
    Feast store, with a second version of the same model to move the alias to."""
    state = tmp_path_factory.mktemp("batch-pipeline")
    s = registry_copy(settings, state, session_champion(request))
    shutil.copytree(settings.state / "feast", state / "feast")
    s.export_env()
    return s


@pytest.fixture(autouse=True)
def _world_env(world: Settings) -> None:
    """Every test here on this module's stores: the session's per-test environment
    restore would otherwise hand later tests the default state's registry."""
    from shipway.core.settings import get_settings

    world.export_env()
    get_settings.cache_clear()


@pytest.fixture(scope="module")
def rows(settings: Settings, hotel: UseCaseSpec) -> pd.DataFrame:
    """Real bookings with a pass-through id, one key the store has never seen."""
    events = pd.read_parquet(settings.usecase_data(hotel.name) / "features" / "events.parquet")
    frame = events[hotel.entity_columns + hotel.request_field_names].head(900).copy()
    frame.insert(0, "booking_id", [f"b{i:05d}" for i in range(len(frame))])
    frame.loc[7, "agent"] = "agent_never_seen"
    return frame.reset_index(drop=True)


def second_version(s: Settings, name: str) -> tuple[str, str]:
    """(champion, another version of the same artifact): somewhere to move the alias."""
    client = registry.connect(s.tracking_uri)
    champ = registry.alias_version(client, name, registry.CHAMPION)
    assert champ is not None
    other = client.create_model_version(name, champ.source, champ.run_id, tags=champ.tags)
    return str(champ.version), str(other.version)


def test_pipeline_scores_every_row_once_with_the_keys_and_the_real_time_numbers(
    world: Settings, hotel: UseCaseSpec, rows: pd.DataFrame, feast_store: Any, tmp_path: Path
) -> None:
    src = tmp_path / "in"
    src.mkdir()
    rows.iloc[:500].to_parquet(src / "a.parquet", index=False)
    rows.iloc[500:].to_parquet(src / "b.parquet", index=False)
    out = tmp_path / "scored"
    job = BatchJob(hotel.name, str(src), str(out), "booking_id", shards=3, parallelism=2)
    manifest = run_batch_local(world, job)
    champion = registry.alias_version(registry.connect(world.tracking_uri), hotel.name, "champion")
    assert champion is not None
    assert manifest["rows"] == len(rows) and len(manifest["shards"]) == 3
    assert manifest["model_version"] == str(champion.version)
    assert manifest["feature_service"] == hotel.feature_service_name
    assert manifest["data_version"] == champion.tags["data_version"]
    on_disk, table = read_output(str(out))
    assert on_disk == manifest and (out / MANIFEST).is_file()
    got = table.to_pandas().sort_values("booking_id").reset_index(drop=True)
    assert list(got["booking_id"]) == list(rows["booking_id"])  # every key, exactly once
    assert set(got["model_version"]) == {str(champion.version)}
    assert set(got["model_name"]) == {hotel.registered_model_name}
    assert set(got["data_version"]) == {champion.tags["data_version"]}
    # the numbers of the real-time path, row by row (features.fetch + the version's scorer)
    _, scorer = load_version(hotel, hotel.registered_model_name, str(champion.version))
    feats = features.fetch(feast_store, hotel, rows[required_columns(hotel)].to_dict("records"))
    assert list(got["prediction"]) == list(scorer(feats.columns))
    assert [list(m) for m in got["missing_features"]] == feats.missing
    assert feats.missing[7]  # the agent the store has never seen: its declared defaults
    assert not list(tmp_path.glob("_scored.staging-*")), "the staging folder was moved in"
    # OpenLineage (issue 18 point 5): one run, START from the plan, COMPLETE from the
    # commit, linking the input files and the model version to the committed dataset
    runs = [r for r in runs_of(read_events(world.state), f"{hotel.name}.batch_scoring")
            if r[0]["run"]["runId"] == ol.run_id_for(manifest["run_id"])]  # fmt: skip
    (run,) = runs
    assert [e["eventType"] for e in run] == ["START", "COMPLETE"]
    for e in run:
        validate_event(e)
    done = run[-1]
    names = {d["name"] for d in done["inputs"]}
    assert names == {
        f"{src}/a.parquet",
        f"{src}/b.parquet",
        f"models/{manifest['model_name']}/{manifest['model_version']}",
    }
    (scored,) = done["outputs"]
    assert scored["name"] == str(out)
    assert "booking_id" in {f["name"] for f in scored["facets"]["schema"]["fields"]}
    assert scored["facets"]["version"]["datasetVersion"]


def test_a_failed_shard_commits_nothing_and_the_rerun_commits_one_copy(
    world: Settings, hotel: UseCaseSpec, rows: pd.DataFrame, tmp_path: Path
) -> None:
    src = tmp_path / "in"
    src.mkdir()
    rows.iloc[:450].to_csv(src / "a.csv", index=False)
    broken = rows.iloc[450:].drop(columns=[hotel.request_field_names[0]])
    broken.to_csv(src / "b.csv", index=False)  # a shard's file lacks a column the model needs
    out = tmp_path / "scored"
    job = BatchJob(hotel.name, str(src), str(out), shards=2, parallelism=2)
    with pytest.raises(PipelineFailed, match=f"lacks column.*{hotel.request_field_names[0]}"):
        run_batch_local(world, job)
    assert not out.exists(), "a failed run must not leave an output that looks complete"
    rows.iloc[450:].to_csv(src / "b.csv", index=False)  # fixed, and run again: the CLI
    proc = shipway(
        "batch", "schedule", "--cron", "0 2 * * *", "--once", "-u", hotel.name,
        "-i", str(src), "-o", str(out), "--shards", "2", "--parallelism", "2",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    manifest, table = read_output(str(out))
    keys = table.column("row_key").to_pylist()
    want = [f"a.csv#{i}" for i in range(450)] + [f"b.csv#{i}" for i in range(len(rows) - 450)]
    assert sorted(keys) == sorted(want) and len(keys) == len(set(keys)) == manifest["rows"]
    # only the committed run's files are in the output
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*.parquet")) == [
        "shard=00000/part-0.parquet",
        "shard=00001/part-0.parquet",
    ]


def test_rows_carry_the_champion_at_start_even_when_it_moves_mid_run(
    world: Settings, hotel: UseCaseSpec, rows: pd.DataFrame, feast_store: Any, tmp_path: Path
) -> None:
    """The plan pins the version; the alias moves before any shard runs (and a shard is
    retried after it moved); every row still carries the pinned version."""
    rows.to_parquet(tmp_path / "in.parquet", index=False)
    out = tmp_path / "scored"
    plan = tmp_path / "plan.json"
    pinned, other = second_version(world, hotel.registered_model_name)
    indices = plan_task(
        hotel.name, str(tmp_path / "in.parquet"), str(out), "", 2, world.tracking_uri, "run-1", plan
    )
    client = registry.connect(world.tracking_uri)
    registry.set_alias(client, hotel.registered_model_name, registry.CHAMPION, other)
    try:
        first = [shard_task(plan, i, 100, feast_store) for i in indices]
        retried = shard_task(plan, 0, 100, feast_store)  # a retry overwrites, never adds
        assert retried["sha256"] == first[0]["sha256"]
        manifest = commit_task(plan, [retried, first[1]])
    finally:
        registry.set_alias(client, hotel.registered_model_name, registry.CHAMPION, pinned)
    _, table = read_output(str(out))
    assert table.num_rows == len(rows) == manifest["rows"]
    assert set(table.column("model_version").to_pylist()) == {pinned} != {other}
    assert len(set(table.column("row_key").to_pylist())) == len(rows)
    assert sorted(p.name for p in out.rglob("*.parquet")) == ["part-0.parquet"] * 2
    assert pq.read_table(out / "shard=00000" / "part-0.parquet").num_rows == first[0]["rows"]


def test_commit_refuses_to_overwrite_what_it_did_not_write(
    world: Settings, hotel: UseCaseSpec, rows: pd.DataFrame, feast_store: Any, tmp_path: Path
) -> None:
    rows.head(50).to_parquet(tmp_path / "in.parquet", index=False)
    out = tmp_path / "precious"
    out.mkdir()
    (out / "data.txt").write_text("not a batch output")
    plan = tmp_path / "plan.json"
    indices = plan_task(hotel.name, str(tmp_path / "in.parquet"), str(out), "", 1, "", "r", plan)
    results = [shard_task(plan, i, 100, feast_store) for i in indices]
    with pytest.raises(FileExistsError, match="precious"):
        commit_task(plan, results)
    assert (out / "data.txt").read_text() == "not a batch output"
    with pytest.raises(RuntimeError, match="expected shards"):
        commit_task(plan, [])


def shipway(*args: str) -> subprocess.CompletedProcess[str]:
    """The ``shipway`` command in a child process, on this module's stores."""
    env = {**tool_env(), **{k: v for k, v in os.environ.items() if k.startswith("SHIPWAY_")}}
    return subprocess.run(
        ["shipway", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=900
    )


def test_the_command_names_a_missing_input(world: Settings, tmp_path: Path) -> None:
    proc = shipway("batch", "run", "-i", str(tmp_path / "nowhere"), "-o", str(tmp_path / "o"))
    assert proc.returncode != 0
    said = " ".join((proc.stdout + proc.stderr).split())  # the terminal may wrap the line
    assert "nowhere" in said and "does not exist" in said
    assert not (tmp_path / "o").exists()


def test_the_published_package_scores_with_nothing_typed(
    world: Settings, hotel: UseCaseSpec, rows: pd.DataFrame, tmp_path: Path
) -> None:
    """What the chart uploads for "Create run" in the Kubeflow UI (issue 18 point 6): the
    committed batch package with this environment's values baked into its defaults
    (``pipelines.packaging``), run on kfp.local with no arguments at all."""
    from pipelines.packaging import defaults, package
    from pipelines.runner import run_package_local

    src = tmp_path / "in"
    src.mkdir()
    rows.iloc[:300].to_parquet(src / "a.parquet", index=False)
    out = tmp_path / "scored"
    values = {
        "input_uri": str(src),
        "output_uri": str(out),
        "key_columns": "booking_id",
        "tracking_uri": world.tracking_uri,
    }
    pkg = package("batch", hotel.name, values, tmp_path / "batch.yaml")
    assert {k: defaults(pkg.read_text())[k] for k in values} == values
    manifest = run_package_local(world, pkg)
    assert manifest["rows"] == 300 and manifest["usecase"] == hotel.name
    _, table = read_output(str(out))
    assert sorted(table.column("booking_id").to_pylist()) == list(rows["booking_id"][:300])
