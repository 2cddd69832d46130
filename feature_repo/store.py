"""Access to the Feast store for the platform: apply, materialize, retrieve.

Both training (historical retrieval) and serving (online retrieval) go through the
functions here and through the use case's feature service, so they cannot diverge.
"""

from __future__ import annotations

import logging
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import pandas as pd
import yaml
from feast import FeatureStore, RepoConfig
from feast.infra.offline_stores.offline_store import OfflineStore
from feast.repo_config import FeastConfigBaseModel

from feature_repo.objects import build_objects
from shipway.core.settings import Settings
from shipway.core.spec import UseCaseSpec
from shipway.data.readiness import EVENT_TS

log = logging.getLogger(__name__)


class NoOfflineStoreConfig(FeastConfigBaseModel):
    """The offline store of a process that only reads online features: none.

    Feast validates a configured offline store by importing its module when the config
    is built, and the DuckDB store's module imports ibis, sqlglot and duckdb (about 27 MB
    in every prediction worker, issue 15) although an online read never touches it.
    """

    type: Literal["shipway.none"] = "shipway.none"


class NoOfflineStore(OfflineStore):
    """What Feast would build from :class:`NoOfflineStoreConfig`: a clear refusal."""

    def __init__(self) -> None:
        raise RuntimeError(
            "this process reads online features only (the prediction service): no "
            "offline store is configured; use feature_repo.store.feature_store(settings)"
        )


def repo_config(settings: Settings, online_only: bool = False) -> RepoConfig:
    """The Feast config for this environment; local paths are moved under the state dir.
    ``online_only``: without the offline store (see :class:`NoOfflineStoreConfig`)."""
    settings.export_env()
    raw: dict[str, Any] = yaml.safe_load(
        os.path.expandvars(settings.feature_store_yaml.read_text())
    )
    if settings.environment == "local":
        feast_dir = settings.state / "feast"
        feast_dir.mkdir(parents=True, exist_ok=True)
        raw["registry"]["path"] = str(feast_dir / "registry.db")
        raw["online_store"]["path"] = str(feast_dir / "online.db")
    if online_only:
        raw["offline_store"] = NoOfflineStoreConfig()
    cfg = RepoConfig(**raw)
    cfg.repo_path = settings.feature_repo
    return cfg


def feature_store(settings: Settings, online_only: bool = False) -> FeatureStore:
    """The store for ``settings``; ``online_only`` for a process that never reads or
    writes offline data (the prediction service), see :class:`NoOfflineStoreConfig`."""
    return FeatureStore(config=repo_config(settings, online_only))


def apply(store: FeatureStore, specs: list[UseCaseSpec], data_dir: Path) -> list[str]:
    """Register every use case's objects (idempotent); return the object names."""
    objs: list[Any] = []
    for spec in specs:
        objs += build_objects(spec, data_dir)
    store.apply(objs)
    return [o.name for o in objs]


def feature_end(spec: UseCaseSpec, data_dir: Path) -> datetime:
    """Latest feature timestamp in the offline tables (materialization end)."""
    ends = []
    for ef in spec.entity_features:
        path = data_dir / spec.name / "features" / f"{ef.entity}.parquet"
        ts = pd.read_parquet(path, columns=[EVENT_TS])[EVENT_TS]
        ends.append(ts.max())
    return max(ends).to_pydatetime() if ends else datetime.now(UTC)


def materialize(
    store: FeatureStore, spec: UseCaseSpec, data_dir: Path, end: datetime | None = None
) -> datetime:
    """Load the newest feature rows up to ``end`` into the online store."""
    end = end or feature_end(spec, data_dir)
    views = [spec.feature_view_name(ef.entity) for ef in spec.entity_features]
    if not views:  # request fields only: nothing is stored online
        log.info("%s has no stored features; nothing to materialize", spec.name)
        return end
    start = end - pd.Timedelta(days=max(ef.ttl_days for ef in spec.entity_features))
    store.materialize(start_date=start, end_date=end, feature_views=views)
    log.info("materialized %s up to %s", ", ".join(views), end.isoformat())
    return end


def historical(store: FeatureStore, spec: UseCaseSpec, entity_df: pd.DataFrame) -> pd.DataFrame:
    """Point-in-time join of the feature service onto ``entity_df`` (keys, time, request).

    Rows come back in the input order (Feast's join may reorder them), with one row per
    input row; a mismatch is an error, never a silently shorter training set.
    """
    df = entity_df.reset_index(drop=True).copy()
    df["__row"] = range(len(df))
    service = store.get_feature_service(spec.feature_service_name)
    out = store.get_historical_features(entity_df=df, features=service).to_df()
    out = out.loc[:, ~out.columns.duplicated()].sort_values("__row").reset_index(drop=True)
    if len(out) != len(df) or not (out["__row"].to_numpy() == df["__row"].to_numpy()).all():
        raise RuntimeError(f"historical retrieval returned {len(out)} rows for {len(df)}")
    return out.drop(columns="__row")


def online(store: FeatureStore, spec: UseCaseSpec, rows: list[dict[str, Any]]) -> pd.DataFrame:
    """Online features of the feature service for entity keys + request fields."""
    service = store.get_feature_service(spec.feature_service_name)
    resp = store.get_online_features(features=service, entity_rows=rows)
    return pd.DataFrame(resp.to_dict())


def online_entity(store: FeatureStore, spec: UseCaseSpec, entity: str, key: str) -> dict[str, Any]:
    """Stored features of one entity key (``None`` where the store has no value)."""
    ef = next((e for e in spec.entity_features if e.entity == entity), None)
    if ef is None:
        raise KeyError(f"{spec.name} has no stored features for entity {entity!r}")
    refs = [f"{spec.feature_view_name(entity)}:{a.name}" for a in ef.aggregates]
    resp = store.get_online_features(features=refs, entity_rows=[{entity: key}]).to_dict()
    return {a.name: resp[a.name][0] for a in ef.aggregates}
