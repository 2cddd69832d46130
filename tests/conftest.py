"""Shared fixtures: isolated state/data dirs, the real hotel data, a real Feast store."""

from __future__ import annotations

import os
import shutil
import socket
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest

from shipway.settings import Settings
from shipway.spec import UseCaseSpec
from shipway.usecases import load_usecase

ROOT = Path(__file__).resolve().parent.parent


def require(condition: bool, reason: str) -> None:
    """Skip when a server/tool is genuinely unavailable; under CI=true, fail instead."""
    if condition:
        return
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(f"CI must provide this: {reason}")
    pytest.skip(reason)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="session")
def session_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("shipway")


@pytest.fixture(scope="session")
def settings(session_dir: Path) -> Iterator[Settings]:
    """Settings pointing state and data at a temp dir, exported for child processes."""
    s = Settings(root=ROOT, state_dir=session_dir / "state", data_dir=session_dir / "data")
    old = {k: os.environ.get(k) for k in ("SHIPWAY_STATE_DIR", "SHIPWAY_DATA_DIR", "SHIPWAY_ROOT")}
    s.export_env()
    yield s
    for k, v in old.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


@pytest.fixture(scope="session")
def hotel(settings: Settings) -> UseCaseSpec:
    return load_usecase("hotel_rates", settings)


@pytest.fixture(scope="session")
def hotel_data(settings: Settings, hotel: UseCaseSpec) -> Path:
    """The real hotel_rates data run through ingest -> validate -> features."""
    from feature_repo.aggregates import build
    from shipway.data.ingest import ingest
    from shipway.data.readiness import validate

    d = settings.usecase_data(hotel.name)
    ingest(hotel, settings.root, d / "raw.parquet")
    validate(hotel, d / "raw.parquet", d / "validated.parquet", d / "reports")
    build(hotel, d / "validated.parquet", d / "features")
    return d


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


def copy_tree(dst: Path, *names: str) -> None:
    for n in names:
        src = ROOT / n
        if src.is_dir():
            shutil.copytree(src, dst / n, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(src, dst / n)
