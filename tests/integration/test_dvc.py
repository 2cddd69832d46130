"""DVC on a clean clone: `dvc repro` twice yields the same hashes; unchanged stages skip;
`make data` does data only."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from shipway.lineage import data_version

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
    assert MlflowClient(uri).search_registered_models() == []  # the registry exists, empty
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
    client = MlflowClient(uri)
    assert client.search_model_versions() == [] and client.search_registered_models() == []
    assert not (clone / ".shipway" / "mlflow.db").exists(), "no registry at the default place"
