"""The direct online reader gives exactly what Feast's ``get_online_features`` gives.

For every bundled use case, every feature view and every entity key in its feature table
(plus one key the store has never seen), on a real SQLite online store and on a real
Redis server: the values of :class:`feature_repo.online.OnlineReader` equal Feast's, and
the service's :func:`services.scoring.read_online` gives the same columns either way.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import yaml
from feast import FeatureStore, RepoConfig

from feature_repo.online import OnlineReader, reader_for
from feature_repo.store import apply, materialize
from services import scoring
from shipway.core.settings import Settings
from shipway.core.spec import UseCaseSpec
from shipway.core.usecases import load_usecase

pytestmark = pytest.mark.integration
UNSEEN = "__never_stored__"


@pytest.fixture(scope="module")
def usecases(settings: Settings) -> list[UseCaseSpec]:
    names = sorted(p.parent.name for p in settings.specs.glob("*/usecase.yaml"))
    assert {"hotel_rates", "credit_risk"} <= set(names), names
    return [load_usecase(n, settings) for n in names]


def _materialized(store: FeatureStore, specs: list[UseCaseSpec], data: Path) -> FeatureStore:
    apply(store, specs, data)
    for spec in specs:
        materialize(store, spec, data)
    return store


@pytest.fixture(scope="module")
def sqlite_store(feast_store: Any, usecases: list[UseCaseSpec], settings: Settings) -> Any:
    """The session's SQLite store with every bundled use case applied and materialized."""
    return _materialized(feast_store, usecases, settings.data)


@pytest.fixture(scope="module")
def redis_store(
    redis_url: str,
    usecases: list[UseCaseSpec],
    settings: Settings,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[FeatureStore]:
    """The same objects on a real Redis online store (own registry file)."""
    raw = yaml.safe_load(settings.feature_store_yaml.read_text())
    raw["registry"]["path"] = str(tmp_path_factory.mktemp("feast-redis") / "registry.db")
    raw["online_store"] = {"type": "redis", "connection_string": redis_url}
    cfg = RepoConfig(**raw)
    cfg.repo_path = settings.feature_repo
    yield _materialized(FeatureStore(config=cfg), usecases, settings.data)


def _same(a: list[Any], b: list[Any]) -> bool:
    """Equal element by element, types included; NaN equals NaN."""
    if len(a) != len(b):
        return False
    for x, y in zip(a, b, strict=True):
        if isinstance(x, float) and isinstance(y, float) and math.isnan(x) and math.isnan(y):
            continue
        if type(x) is not type(y) or x != y:
            return False
    return True


def _check_every_entity(store: Any, specs: list[UseCaseSpec], data: Path) -> int:
    """Compare the reader with Feast for every stored key of every view; the keys checked."""
    checked = 0
    for spec in specs:
        for ef in spec.entity_features:
            view = spec.feature_view_name(ef.entity)
            refs = [f"{view}:{a.name}" for a in ef.aggregates]
            table = pd.read_parquet(data / spec.name / "features" / f"{ef.entity}.parquet")
            keys = [*sorted({str(v) for v in table[ef.entity]}), UNSEEN]
            rows = [{ef.entity: k} for k in keys]
            reader = reader_for(store, refs)
            assert isinstance(reader, OnlineReader)
            reader.KEY_CACHE_SIZE = 7  # keys cached, the cache emptied when full, hits again
            got = reader.read(rows)
            want = store.get_online_features(features=refs, entity_rows=rows).to_dict()
            again = reader.read(list(reversed(rows)))
            for a in ef.aggregates:
                assert _same(got[a.name], want[a.name]), (spec.name, view, a.name)
                assert _same(again[a.name], want[a.name][::-1]), (spec.name, view, a.name)
                assert len(reader._keys) <= 7
                assert got[a.name][-1] is None, "a key never stored has no value"
                assert any(v is not None for v in got[a.name]), f"{view} was materialized"
            checked += len(keys)
    return checked


def _check_service_columns(store: Any, specs: list[UseCaseSpec], data: Path) -> None:
    """The service's read of whole requests (several entities per row, repeated keys)."""
    for spec in specs:
        events = pd.read_parquet(data / spec.name / "features" / "events.parquet")
        sample = events.sample(40, random_state=3)
        rows = [
            {k: (v.item() if hasattr(v, "item") else v) for k, v in r.items()}
            for r in sample[spec.entity_columns + spec.request_field_names].to_dict("records")
        ]
        rows += rows[:5]  # the same entities again in one batch
        direct = scoring.read_online(store, spec, rows, direct=True)
        generic = scoring.read_online(store, spec, rows, direct=False)
        assert set(direct) == set(generic)
        for name in generic:
            assert _same(direct[name], generic[name]), (spec.name, name)


@pytest.mark.parametrize("kind", ["sqlite", "redis"])
def test_direct_reads_equal_feast(
    kind: str, request: pytest.FixtureRequest, usecases: list[UseCaseSpec], settings: Settings
) -> None:
    store = request.getfixturevalue(f"{kind}_store")
    assert store.config.online_store.type == kind
    assert _check_every_entity(store, usecases, settings.data) > 100
    _check_service_columns(store, usecases, settings.data)
