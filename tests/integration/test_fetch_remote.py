"""A cluster run's fetch step: the data version from a git URL and a configured DVC remote.

On a cluster the image holds the code but no git history, so the pipeline's first step
reads ``dvc.lock``, the spec and params of ``data_rev`` from the project's repository
(``SHIPWAY_GIT_REPO_URL``, the chart's ``pipelines.gitRepo``) and pulls the features
from ``SHIPWAY_DVC_REMOTE_URL``. Here the repository is a bare clone reached by a
``file://`` URL and the "object store" is a copy of the DVC remote in another folder:
the same code path as https/s3, with real git and real DVC.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from pipelines.steps.fetch import fetch
from shipway.core.settings import get_settings
from tests.conftest import ROOT


def _digest(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


@pytest.fixture
def cluster_env(
    repo_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[str, Path]]:
    """A bare clone of this repository (by URL) and the pushed DVC objects in a new place."""
    bare = tmp_path / "shipway.git"
    subprocess.run(["git", "clone", "-q", "--bare", str(ROOT), str(bare)], check=True)
    remote = tmp_path / "object-store"
    dvc_config = (ROOT / ".dvc" / "config").read_text()
    default = dvc_config.split("url = ", 1)[1].splitlines()[0].strip()
    shutil.copytree((ROOT / ".dvc" / default).resolve(), remote)
    monkeypatch.setenv("SHIPWAY_GIT_REPO_URL", bare.as_uri())
    monkeypatch.setenv("SHIPWAY_DVC_REMOTE_URL", str(remote))
    get_settings.cache_clear()
    yield bare.as_uri(), remote
    get_settings.cache_clear()


def test_fetch_from_git_url_and_remote_equals_the_local_fetch(
    cluster_env: tuple[str, Path], tmp_path: Path
) -> None:
    url, _ = cluster_env
    head = subprocess.run(
        ["git", "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True, text=True, check=True
    ).stdout.strip()
    # repo "" is what a run started from the Kubeflow UI passes: the configured URL
    meta = fetch("", "HEAD", "hotel_rates", tmp_path / "cluster")
    assert meta["repo"] == url
    assert meta["git_rev"] == head, "lineage names the commit, not the moving HEAD"
    local = fetch(str(ROOT), head, "hotel_rates", tmp_path / "local")
    assert meta["data_version"] == local["data_version"] != "unknown"
    features = Path("data") / "hotel_rates" / "features"
    got = _digest(tmp_path / "cluster" / features)
    assert got and got == _digest(tmp_path / "local" / features)
    for name in ("usecase.yaml", "params.yaml", "dvc.lock"):
        assert (tmp_path / "cluster" / name).read_bytes() == (
            tmp_path / "local" / name
        ).read_bytes()


def test_fetch_names_an_unreachable_repository_or_remote(
    cluster_env: tuple[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url, remote = cluster_env
    missing = (tmp_path / "nowhere.git").as_uri()
    with pytest.raises(ValueError, match=r"cannot read git repository .*nowhere\.git"):
        fetch(missing, "HEAD", "hotel_rates", tmp_path / "a")
    # the objects are not where the configured remote says: the pull fails, nothing is faked
    shutil.rmtree(remote)
    with pytest.raises(Exception, match=r"(?i)missing|not found|failed|unable"):
        fetch(url, "HEAD", "hotel_rates", tmp_path / "b")
    assert not list((tmp_path / "b").rglob("*.parquet"))


def test_the_dvc_remote_parameter_wins_over_the_environment(
    cluster_env: tuple[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A pipeline published for the Kubeflow UI carries the release's remote as the
    ``dvc_remote`` default: the step pulls from it whatever the pod's env says."""
    url, remote = cluster_env
    monkeypatch.setenv("SHIPWAY_DVC_REMOTE_URL", str(tmp_path / "not-the-remote"))
    get_settings.cache_clear()
    meta = fetch(url, "HEAD", "hotel_rates", tmp_path / "param", dvc_remote=str(remote))
    assert meta["data_version"] != "unknown"
    assert list((tmp_path / "param" / "data" / "hotel_rates" / "features").rglob("*.parquet"))
    # and without it, the environment's (wrong) remote is used: the pull fails
    with pytest.raises(ValueError, match="in neither the DVC cache nor the remote"):
        fetch(url, "HEAD", "hotel_rates", tmp_path / "env")
