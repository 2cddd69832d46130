"""The model feed: one process reads a real MLflow registry for the workers, which read a
file and never import MLflow (issue 15: about 64 MB less per worker)."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import mlflow
import pytest

from services.modelfeed import FEED_FILE, Entry, Feed, Problem, Publisher, RegistryProblem, read
from services.models import ModelLoader, ModelSet, Pipeline, ServedModel
from shipway.core import registry
from shipway.core.settings import Settings
from shipway.core.spec import UseCaseSpec, load_spec

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def spec() -> UseCaseSpec:
    return load_spec(ROOT / "usecases" / "hotel_rates" / "usecase.yaml")


@pytest.fixture
def world(tmp_path: Path, spec: UseCaseSpec) -> Iterator[tuple[Settings, Any]]:
    """A real MLflow registry (SQLite, artifacts in the temp dir) with the use case's
    registered model and no version yet."""
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    settings = Settings(root=ROOT, state_dir=tmp_path / "state", mlflow_tracking_uri=uri)
    client = registry.connect(uri)
    client.create_experiment("feed", artifact_location=(tmp_path / "artifacts").as_uri())
    client.create_registered_model(spec.registered_model_name)
    yield settings, client
    mlflow.set_tracking_uri(None)


def _version(client: Any, spec: UseCaseSpec, tmp: Path, form: str | None) -> str:
    """A registered version; with ``form``, a serving form (one file holding ``form``)."""
    exp = client.get_experiment_by_name("feed").experiment_id
    run = client.create_run(exp)
    tags = {}
    if form is not None:
        folder = tmp / f"form-{run.info.run_id}"
        folder.mkdir()
        (folder / "model.txt").write_text(form)
        client.log_artifacts(run.info.run_id, str(folder), registry.SERVING_ARTIFACT)
        tags[registry.SERVING_TAG] = f"runs:/{run.info.run_id}/{registry.SERVING_ARTIFACT}"
    client.set_terminated(run.info.run_id)
    mv = client.create_model_version(
        spec.registered_model_name, run.info.artifact_uri, run.info.run_id, tags=tags
    )
    return str(mv.version)


def _feed(root: Path) -> Feed:
    return read(root)[1]


def test_no_champion_is_written_down_with_the_registry_address(
    world: tuple[Settings, Any], spec: UseCaseSpec, tmp_path: Path
) -> None:
    settings, _ = world
    pub = Publisher(settings, spec, tmp_path / "feed")
    feed = pub.publish()
    assert feed == _feed(pub.root)
    assert feed.champion is None and feed.problem is not None
    assert feed.problem.kind == "LookupError"
    assert feed.problem.message == (
        f"no version of 'hotel_rates' has the alias 'champion' yet in the registry at "
        f"{settings.tracking_uri}"
    )
    models, problem = ModelLoader(pub.root, spec).build(None, with_challenger=True)
    assert isinstance(problem, RegistryProblem) and problem.kind == "LookupError"
    assert models is None and str(problem) == feed.problem.message


def test_aliases_and_serving_forms_reach_the_feed(
    world: tuple[Settings, Any], spec: UseCaseSpec, tmp_path: Path
) -> None:
    settings, client = world
    name = spec.registered_model_name
    v1 = _version(client, spec, tmp_path, "form one")
    v2 = _version(client, spec, tmp_path, None)  # no serving form: workers load the pipeline
    registry.set_alias(client, name, registry.CHAMPION, v1)
    registry.set_alias(client, name, registry.CHALLENGER, v2)
    pub = Publisher(settings.model_copy(update={"challenger_mode": "split"}), spec, tmp_path / "f")
    feed = pub.publish()
    assert feed.problem is None and feed == _feed(pub.root)
    assert feed.champion is not None and feed.champion.version == v1
    assert feed.champion.trained_at > 1e9  # the version's registration time, in seconds
    assert feed.champion.serving is not None
    assert (Path(feed.champion.serving) / "model.txt").read_text() == "form one"
    assert feed.challenger == Entry(v2, feed.challenger.trained_at if feed.challenger else 0)
    # the challenger is left out when the mode does not use one
    off = Publisher(settings.model_copy(update={"challenger_mode": "off"}), spec, tmp_path / "o")
    assert off.publish().challenger is None
    # a promotion: the new champion's form is downloaded, the unused one removed a pass later
    v3 = _version(client, spec, tmp_path, "form three")
    registry.set_alias(client, name, registry.CHAMPION, v3)
    ident = read(pub.root)[0]
    feed = pub.publish()
    assert feed.champion is not None and feed.champion.version == v3
    assert read(pub.root)[0] != ident  # replaced, so a worker sees it with one stat
    assert (Path(feed.champion.serving or "") / "model.txt").read_text() == "form three"
    assert (pub.root / f"v{v1}").is_dir()  # the previous pass's: a worker may be loading it
    registry.set_alias(client, name, registry.CHALLENGER, v3)
    pub.publish()
    assert sorted(p.name for p in pub.root.iterdir()) == [FEED_FILE, f"v{v3}"]


def test_an_unchanged_registry_leaves_the_file_alone(
    world: tuple[Settings, Any], spec: UseCaseSpec, tmp_path: Path
) -> None:
    settings, client = world
    registry.set_alias(
        client, spec.registered_model_name, registry.CHAMPION, _version(client, spec, tmp_path, "f")
    )
    pub = Publisher(settings, spec, tmp_path / "feed")
    pub.publish()
    ident = read(pub.root)[0]
    pub.publish()
    assert read(pub.root)[0] == ident


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_an_unreachable_registry_keeps_the_last_versions_and_says_why(
    world: tuple[Settings, Any],
    spec: UseCaseSpec,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    settings, client = world
    v1 = _version(client, spec, tmp_path, "form one")
    registry.set_alias(client, spec.registered_model_name, registry.CHAMPION, v1)
    pub = Publisher(settings, spec, tmp_path / "feed")
    good = pub.publish()
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    port = _closed_port()
    pub.settings = settings.model_copy(
        update={"mlflow_tracking_uri": f"http://svc:s3cret@127.0.0.1:{port}"}
    )
    pub._client = None  # as after a restart of the registry's address
    feed = pub.publish()
    assert feed.champion == good.champion and feed.problem is not None
    assert feed.problem.kind == "RegistryUnavailable"
    assert f"MLflow registry at http://127.0.0.1:{port} could not read the alias" in (
        feed.problem.message
    )
    assert "s3cret" not in (pub.root / FEED_FILE).read_text()
    # a worker serves the last versions and reports the problem
    loader = ModelLoader(pub.root, spec)
    current = ModelSet(ServedModel(spec.name, v1, "champion", Pipeline(lambda: None), 0.0))
    models, problem = loader.build(current, with_challenger=False)
    assert models is current
    assert isinstance(problem, RegistryProblem) and problem.kind == "RegistryUnavailable"


def test_the_feed_file_round_trips() -> None:
    feed = Feed(Entry("3", 1.5, "/x/v3/serving"), None, Problem("LookupError", "none"))
    assert Feed.from_json(feed.to_json()) == feed
    assert json.loads(feed.to_json())["problem"] == {"kind": "LookupError", "message": "none"}


def test_a_prediction_worker_does_not_import_mlflow() -> None:
    """The service module as a worker imports it: no MLflow (about 64 MB per worker)."""
    code = "import sys, services.prediction; print('mlflow' in sys.modules)"
    out = subprocess.run(
        [sys.executable, "-W", "ignore", "-c", code],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    assert out.stdout.strip().splitlines()[-1] == "False", out.stderr[-2000:]


def test_a_removed_feed_directory_is_written_again(
    world: tuple[Settings, Any], spec: UseCaseSpec, tmp_path: Path
) -> None:
    """A temp cleaner may remove the directory under a long-running service."""
    settings, client = world
    v1 = _version(client, spec, tmp_path, "form one")
    registry.set_alias(client, spec.registered_model_name, registry.CHAMPION, v1)
    pub = Publisher(settings, spec, tmp_path / "feed")
    first = pub.publish()
    shutil.rmtree(pub.root)
    again = pub.publish()
    assert again == first == _feed(pub.root)
    assert (Path(again.champion.serving or "") / "model.txt").read_text() == "form one"
