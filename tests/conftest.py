"""Shared fixtures: isolated state/data dirs, the real hotel data, a real Feast store."""

from __future__ import annotations

import importlib.util
import os
import shutil
import sys
import warnings
from collections.abc import Iterable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any, NoReturn, TypeVar

import pandas as pd
import pytest

from shipway.core.net import free_port as free_port  # re-exported for the tests
from shipway.core.settings import Settings
from shipway.core.spec import UseCaseSpec
from shipway.core.usecases import load_usecase

ROOT = Path(__file__).resolve().parent.parent
T = TypeVar("T")


def unavailable(reason: str) -> NoReturn:
    """The one way a test gives up on a missing prerequisite (server, tool, package).

    A developer machine may lack it: skip, saying how to get it. CI (CI=true, .ci/run)
    must provide it: fail, so a missing prerequisite never turns a CI run green.
    """
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(f"CI must provide this: {reason}")
    pytest.skip(reason)


def require(condition: bool, reason: str) -> None:
    """:func:`unavailable` unless ``condition`` holds."""
    if not condition:
        unavailable(reason)


def nonempty(items: Iterable[T], what: str) -> list[T]:
    """``items`` as a list, never empty.

    A parametrization over nothing is an empty parameter set, which pytest reports as a
    skip, and a loop over nothing asserts nothing: either passes by finding nothing.
    Failing here (a collection error at module level) makes that visible.
    """
    found = list(items)
    if not found:
        pytest.fail(f"{what}: found nothing", pytrace=False)
    return found


def globbed(folder: Path, pattern: str) -> list[Path]:
    """``folder.glob(pattern)``, sorted, never empty (see :func:`nonempty`)."""
    return nonempty(sorted(folder.glob(pattern)), f"{folder}/{pattern}")


def _load_toolchain() -> ModuleType:
    """tools/toolchain.py, loaded by path (tools/ is not a package)."""
    name = "shipway_toolchain"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, ROOT / "tools" / "toolchain.py")
        assert spec is not None and spec.loader is not None
        module = sys.modules[name] = importlib.util.module_from_spec(spec)  # dataclasses need it
        spec.loader.exec_module(module)
    return sys.modules[name]


def chart_tools() -> Any:
    """helm, kubectl, checkov, kubernetes-validate and hadolint (tools/install-tools.sh,
    a no-op once done); a tool that cannot be installed is :func:`unavailable`."""
    toolchain = _load_toolchain()
    try:
        return toolchain.ensure()
    except toolchain.ToolchainError as err:
        unavailable(f"chart tools unavailable (run tools/install-tools.sh): {err}")


def _restored_shipway_env() -> Iterator[None]:
    saved = {k: v for k, v in os.environ.items() if k.startswith("SHIPWAY_")}
    yield
    for k in [k for k in os.environ if k.startswith("SHIPWAY_")]:
        if k not in saved:
            del os.environ[k]
    os.environ.update(saved)


@pytest.fixture(autouse=True)
def _restore_shipway_env() -> Iterator[None]:
    """Tests that point Settings elsewhere (and export them) must not leak into the next."""
    yield from _restored_shipway_env()


@pytest.fixture(autouse=True, scope="module")
def _restore_shipway_env_per_module() -> Iterator[None]:
    """The same for module fixtures that export their own stores (``own_stores``, a
    cluster-mode module): they are set up before any per-test guard saves the environment,
    so without this their SHIPWAY_* settings would redirect every later module's registry
    (a full run once registered the promotion-race versions into another module's store)."""
    yield from _restored_shipway_env()


@pytest.fixture(scope="session")
def session_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("shipway")


def tool_env() -> dict[str, str]:
    """Environment for child tools: this venv first on PATH, no inherited SHIPWAY_*."""
    import sys

    env = {k: v for k, v in os.environ.items() if not k.startswith("SHIPWAY_")}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    return env


@pytest.fixture(scope="session")
def repo_data() -> Path:
    """The repository's own DVC data stages reproduced and pushed to the local remote.

    This is what `make demo` does first; on a clean clone it regenerates exactly the
    committed dvc.lock hashes, so the training pipeline can fetch revision HEAD.
    """
    import subprocess
    import time

    for args in (["dvc", "repro", "features"], ["dvc", "push", "-q"]):
        for _ in range(60):  # another dvc in this checkout holds the lock: wait for it
            proc = subprocess.run(
                args, cwd=ROOT, env=tool_env(), capture_output=True, text=True, timeout=900
            )
            if proc.returncode == 0 or "is busy" not in proc.stderr + proc.stdout:
                break
            time.sleep(5)
        assert proc.returncode == 0, f"{args}: {proc.stdout}\n{proc.stderr}"
    return ROOT / "data"


@pytest.fixture(scope="session")
def settings(session_dir: Path, repo_data: Path) -> Iterator[Settings]:
    """Settings on the repo's DVC data with state (stores, registry) in a temp dir."""
    old = {k: v for k, v in os.environ.items() if k.startswith("SHIPWAY_")}
    for k in old:  # nothing a test exported before this fixture may redirect the session
        del os.environ[k]
    s = Settings(root=ROOT, state_dir=session_dir / "state", data_dir=repo_data)
    s.export_env()
    yield s
    for k in [k for k in os.environ if k.startswith("SHIPWAY_")]:
        os.environ.pop(k)
    os.environ.update(old)


@pytest.fixture(scope="session")
def hotel(settings: Settings) -> UseCaseSpec:
    return load_usecase("hotel_rates", settings)


@pytest.fixture(scope="session")
def hotel_data(settings: Settings, hotel: UseCaseSpec) -> Path:
    """The real hotel_rates data after ingest -> validate -> features (DVC)."""
    return settings.usecase_data(hotel.name)


@pytest.fixture(scope="session")
def feast_store(settings: Settings, hotel: UseCaseSpec, hotel_data: Path):
    """A real Feast store (local registry, SQLite online, DuckDB offline), materialized."""
    from feature_repo.store import apply, feature_store, materialize

    store = feature_store(settings)
    apply(store, [hotel], settings.data)
    materialize(store, hotel, settings.data)
    return store


@pytest.fixture(scope="session")
def events(hotel_data: Path) -> pd.DataFrame:
    return pd.read_parquet(hotel_data / "features" / "events.parquet")


LATENCY_CRITERION = "latency_p99_ms"
"""The model-validation gate's wall-clock criterion (pipelines/steps/gate.py): a single-row
p99 measured inside the pipeline, which a machine busy with other work can miss while the
model itself is sound. The one gate failure that tests needing a served model tolerate."""


def latency_only(failures: list[str]) -> bool:
    """Whether the failed criteria (``Criterion.summary()`` lines) are the latency one alone."""
    return bool(failures) and all(f.startswith(f"FAIL {LATENCY_CRITERION}:") for f in failures)


@pytest.fixture(scope="session")
def training_run(settings: Settings, feast_store) -> dict:
    """The session's one training run of hotel_rates on data revision HEAD, whatever its
    outcome (the pipeline's result); ``trained`` holds it to the gate and promotion."""
    from pipelines.runner import run_in_process

    return run_in_process(settings, "hotel_rates", "HEAD", settings.state / "train-0")


@pytest.fixture(scope="session")
def trained(training_run: dict) -> dict:
    """A champion of hotel_rates in the session registry, trained on data revision HEAD."""
    result = training_run
    assert result["gate_passed"], result["failures"]
    # promotion now also needs the production-readiness smoke: say so here, not as 503s later
    assert result["promoted"], result.get("promotion_blocked") or result
    return result


def session_champion(request: pytest.FixtureRequest) -> str:
    """The version the session trained, for tests that serve or monitor a model.

    ``trained`` decides, with one documented exception: a gate that failed on
    :data:`LATENCY_CRITERION` alone (serving and monitoring do not depend on that
    wall-clock verdict, and the version is registered all the same) gives a warning, not
    a failure. Any other failure of the run fails the test that asked."""
    result = request.getfixturevalue("training_run")
    if not result["gate_passed"] and latency_only(result["failures"]):
        warnings.warn(f"an unpromoted version: {result['failures']}", stacklevel=2)
    else:
        request.getfixturevalue("trained")
    return str(result["version"])


def registry_copy(settings: Settings, state: Path, champion: str | None = None) -> Settings:
    """The session registry copied into ``state`` (tests never move the shared aliases),
    with ``champion`` as its champion; without one, the alias it has, else the newest."""
    import sqlite3

    from shipway.core import registry

    src, dst = sqlite3.connect(settings.state / "mlflow.db"), sqlite3.connect(state / "mlflow.db")
    src.backup(dst)
    src.close()
    dst.close()
    s = Settings(
        root=ROOT,
        state_dir=state,
        data_dir=settings.data,
        prediction_log_uri=str(state / "predictions.db"),
        mlflow_tracking_uri=f"sqlite:///{state / 'mlflow.db'}",  # the copy, whatever is exported
    )
    client = registry.connect(s.tracking_uri)
    if champion is None and registry.alias_version(client, "hotel_rates", registry.CHAMPION):
        return s
    if champion is None:
        champion = str(
            max(int(v.version) for v in client.search_model_versions("name='hotel_rates'"))
        )
    registry.set_alias(client, "hotel_rates", registry.CHAMPION, champion)
    return s


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    """A real Redis server for the cluster-mode online store."""
    from servers import redis_binary, redis_server

    require(
        redis_binary() is not None,
        "redis-server is not installed (apt-get install redis-server; .ci/run does)",
    )
    with redis_server() as url:
        yield url


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A real PostgreSQL server for the Feast SQL registry, MLflow and the prediction log."""
    from servers import pg_bindir, postgres_server

    require(
        pg_bindir() is not None,
        "PostgreSQL server is not installed (apt-get install postgresql; .ci/run does)",
    )
    with postgres_server() as url:
        yield url


def copy_tree(dst: Path, *names: str) -> None:
    for n in names:
        src = ROOT / n
        if src.is_dir():
            shutil.copytree(src, dst / n, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(src, dst / n)
