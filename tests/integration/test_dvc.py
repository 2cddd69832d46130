"""DVC on a clean clone: `dvc repro` twice yields the same hashes; unchanged stages skip;
`make data` does data only; a workspace-trained version's lineage outlives its files."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from shipway.core.lineage import data_version, dvc_md5

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SHIPWAY_")}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    return env


def _run(args: list[str], cwd: Path) -> str:
    proc = subprocess.run(args, cwd=cwd, env=_env(), capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, f"{args} failed:\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout + proc.stderr


def _outs(repo: Path) -> dict[str, str]:
    lock = yaml.safe_load((repo / "dvc.lock").read_text())
    # every output, the readiness reports included: a rerun must hash the same
    return {o["path"]: o["md5"] for st in lock["stages"].values() for o in st.get("outs", [])}


@pytest.fixture(scope="module")
def clone(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A clean clone of the working tree's tracked files, without any data or cache."""
    dst = tmp_path_factory.mktemp("clone") / "repo"
    files = (
        subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True)
        .stdout.decode()
        .split("\0")
    )
    for f in filter(None, files):
        src = ROOT / f
        if src.is_file():
            (dst / f).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dst / f)
    (dst / "dvc.lock").unlink(missing_ok=True)
    _run(["git", "init", "-q"], dst)
    _run(["git", "-c", "user.email=t@t", "-c", "user.name=t", "add", "-A"], dst)
    _run(["git", "-c", "user.email=t@t", "-c", "user.name=t", "commit", "-qm", "clone"], dst)
    return dst


def test_repro_twice_gives_identical_hashes_and_skips_unchanged(clone: Path) -> None:
    _run(["dvc", "repro", "features"], clone)
    first = _outs(clone)
    assert any(p.endswith("/features") for p in first)
    version = data_version(clone, clone / "data", "hotel_rates")
    assert version == first["data/hotel_rates/features"] and version.endswith(".dir")
    # what a workspace run records is computed from the bytes, the way DVC does
    assert dvc_md5(clone / "data" / "hotel_rates" / "features") == version

    again = _run(["dvc", "repro", "features"], clone)
    assert "didn't change, skipping" in again and "Running stage" not in again

    # from scratch: no outputs, no cache -> every stage reruns, same bytes
    shutil.rmtree(clone / "data" / "hotel_rates")
    shutil.rmtree(clone / ".dvc" / "cache", ignore_errors=True)
    out = _run(["dvc", "repro", "-f", "features"], clone)
    assert "Running stage 'features@hotel_rates'" in out
    assert _outs(clone) == first


def test_a_spec_change_reruns_the_stages_that_depend_on_it(clone: Path) -> None:
    _run(["dvc", "repro", "features"], clone)
    spec = clone / "usecases" / "hotel_rates" / "usecase.yaml"
    text = spec.read_text()
    spec.write_text(text.replace("min_rows_per_group: 100", "min_rows_per_group: 101"))
    try:
        out = _run(["dvc", "repro", "features"], clone)
        assert "Running stage 'validate@hotel_rates'" in out
        assert "Running stage 'ingest@hotel_rates'" in out  # the spec is an ingest dep too
    finally:
        spec.write_text(text)


def test_cli_validate_failure_keeps_previous_version(clone: Path) -> None:
    import pandas as pd

    _run(["dvc", "repro", "features"], clone)
    d = clone / "data" / "hotel_rates"
    before = (d / "validated.parquet").read_bytes()
    raw = pd.read_parquet(d / "raw.parquet")
    raw.loc[:2, "avg_price_per_room"] = -5.0
    raw.to_parquet(d / "raw.parquet", index=False)
    proc = subprocess.run(
        ["shipway", "data", "validate", "-u", "hotel_rates"],
        cwd=clone,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 1
    assert "column 'avg_price_per_room' failed rule 'min>=0': 3 offending" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert (d / "validated.parquet").read_bytes() == before


def test_make_data_does_data_and_registers_no_model(clone: Path, tmp_path: Path) -> None:
    """`make data` on an empty registry: every data stage of every use case, no training.

    Training registers versions (one once became a live challenger of an unrelated use
    case), so the data target must leave a registry it could have written to empty."""
    from mlflow import MlflowClient

    venv = clone / ".venv"
    if not venv.exists():
        venv.symlink_to(Path(sys.executable).parent.parent)
    state = tmp_path / "state"
    state.mkdir()
    uri = f"sqlite:///{state / 'mlflow.db'}"
    assert (
        MlflowClient(tracking_uri=uri, registry_uri=uri).search_registered_models() == []
    )  # the registry exists, empty
    env = {**_env(), "SHIPWAY_STATE_DIR": str(state), "SHIPWAY_MLFLOW_TRACKING_URI": uri}
    # -o: the shared venv's stamp counts as up to date (make must not reinstall it)
    proc = subprocess.run(
        ["make", "-o", ".venv/.installed", "data"],
        cwd=clone,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    usecases = yaml.safe_load((clone / "params.yaml").read_text())["usecases"]
    stages = yaml.safe_load((clone / "dvc.lock").read_text())["stages"]
    want = {f"{s}@{u}" for s in ("ingest", "validate", "features") for u in usecases}
    assert set(stages) == want, "exactly the data stages ran, for every use case"
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    assert client.search_model_versions() == [] and client.search_registered_models() == []
    assert not (clone / ".shipway" / "mlflow.db").exists(), "no registry at the default place"


def test_workspace_version_lineage_outlives_the_working_tree(clone: Path, tmp_path: Path) -> None:
    """A version trained from the working tree keeps its lineage after a later ingest
    rewrites the data (and fails validation): lineage is what the version recorded,
    found by content in the DVC cache and git, never today's files."""
    from mlflow import MlflowClient

    from pipelines.steps.fetch import WORKSPACE, fetch
    from shipway.core.lineage import git_commit
    from shipway.core.predictionlog import PredictionLog, PredictionRecord
    from shipway.core.settings import Settings
    from shipway.core.spec import load_spec
    from shipway.governance.lineage import trace

    _run(["dvc", "repro", "features"], clone)
    _run(["git", "add", "dvc.lock"], clone)  # the user commits the data version
    _run(["git", "-c", "user.email=t@t", "-c", "user.name=t", "commit", "-qm", "data"], clone)
    state = tmp_path / "state"
    s = Settings(
        root=clone,
        state_dir=state,
        data_dir=clone / "data",
        mlflow_tracking_uri=f"sqlite:///{state / 'mlflow.db'}",
        prediction_log_uri=str(state / "predictions.db"),
    )
    meta = fetch(str(clone), WORKSPACE, "hotel_rates", tmp_path / "fetched")
    spec = load_spec(tmp_path / "fetched" / "usecase.yaml")
    # the lineage tags the register step records for this run (pipelines/steps/tasks.py)
    tags = {
        "git_commit": git_commit(clone),
        "data_version": meta["data_version"],
        "data_rev": meta["git_rev"],
        "feature_service": spec.feature_service_name,
        "kfp_run_id": "workspace-run",
        "spec_hash": spec.content_hash(),
        "usecase": spec.name,
    }
    # explicit registry URI: MlflowClient's default is the process-wide one, which
    # another test's registry.connect() may have set
    client = MlflowClient(tracking_uri=s.tracking_uri, registry_uri=s.tracking_uri)
    run = client.create_run(client.create_experiment(spec.name), tags=tags)
    client.set_terminated(run.info.run_id)
    client.create_registered_model(spec.registered_model_name)
    mv = client.create_model_version(
        spec.registered_model_name, f"runs:/{run.info.run_id}/model", run.info.run_id, tags
    )
    record = PredictionRecord(
        request_id="r1",
        usecase=spec.name,
        model_name=mv.name,
        model_version=str(mv.version),
        variant="champion",
        entity_keys={},
        features=dict.fromkeys(spec.model_feature_names, 1),
        prediction=1.0,
        latency_ms=2.0,
    )
    PredictionLog(s.prediction_log).append([record])
    before = trace(s, client, "r1").to_dict()
    links = {x["name"]: x for x in before["links"]}
    assert links["data_version"]["value"] == meta["data_version"]
    assert (
        links["data_version"]["ok"]
        and "retrievable: all files in the DVC cache" in links["data_version"]["detail"]
    )
    raw_md5 = _outs(clone)["data/hotel_rates/raw.parquet"]
    assert links["source"]["ok"] and raw_md5 in links["source"]["detail"]

    # later: an ingest rewrites raw.parquet (dvc.lock records it), validation fails, and
    # the working tree's features and spec change too
    params, spec_file = clone / "params.yaml", clone / "usecases" / "hotel_rates" / "usecase.yaml"
    old_params, old_spec = params.read_text(), spec_file.read_text()
    try:
        params.write_text(old_params.replace("max_rows: 0", "max_rows: 50"))
        failed = subprocess.run(
            ["dvc", "repro", "features"], cwd=clone, env=_env(), capture_output=True, timeout=600
        )
        assert failed.returncode != 0, "50 rows must fail the readiness check"
        assert _outs(clone)["data/hotel_rates/raw.parquet"] != raw_md5
        for f in (clone / "data" / "hotel_rates" / "features").glob("*.parquet"):
            f.write_bytes(b"overwritten")
        assert trace(s, client, "r1").to_dict() == before

        # the working tree's spec edited since: the trained one is found by its spec_hash
        spec_file.write_text(old_spec.replace("min_rows_per_group: 100", "min_rows_per_group: 7"))
        source = {x.name: x for x in trace(s, client, "r1").links}["source"]
        assert source.ok and source.value == links["source"]["value"]
        assert "found by the version's spec_hash in" in source.detail
        assert "working tree" not in source.detail  # a committed spec, not today's file

        # the data gone from the cache (and never pushed): lineage says so
        obj = clone / ".dvc" / "cache" / "files" / "md5" / meta["data_version"][:2]
        obj = obj / meta["data_version"][2:]
        obj.rename(obj.with_suffix(".aside"))
        try:
            gone = {x.name: x for x in trace(s, client, "r1").links}["data_version"]
            assert not gone.ok and "NOT retrievable" in gone.detail
        finally:
            obj.with_suffix(".aside").rename(obj)
    finally:
        params.write_text(old_params)
        spec_file.write_text(old_spec)
