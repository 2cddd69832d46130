"""Training set: historical retrieval through the feature service, then a time split."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pandas as pd

from shipway.data.readiness import EVENT_TS
from shipway.spec import UseCaseSpec

SPLITS = ("train", "validation", "test")


def offline_store(spec: UseCaseSpec, data_dir: Path, workdir: Path):
    """A throwaway Feast store over ``data_dir`` (the fetched version), same definitions."""
    from feature_repo.objects import build_objects  # first: loads Feast the fast way
    from feature_repo.store import FeatureStore, RepoConfig

    cfg = RepoConfig(
        project="shipway_training",
        provider="local",
        registry=str(workdir / "registry.db"),
        online_store={"type": "sqlite", "path": str(workdir / "online.db")},
        offline_store={"type": "duckdb"},
        entity_key_serialization_version=3,
        repo_path=workdir,
    )
    store = FeatureStore(config=cfg)
    store.apply(build_objects(spec, data_dir))
    return store


def training_frame(spec: UseCaseSpec, data_dir: Path) -> pd.DataFrame:
    """Every event with its point-in-time features, read through the feature service.

    ``data_dir`` holds ``<usecase>/features`` of the version being trained on.
    """
    from feature_repo.store import historical

    events = pd.read_parquet(data_dir / spec.name / "features" / "events.parquet")
    with tempfile.TemporaryDirectory(prefix="shipway-feast-") as tmp:
        store = offline_store(spec, data_dir, Path(tmp))
        entity_df = events.drop(columns=[spec.target.column])
        feats = historical(store, spec, entity_df)
    feats[spec.target.column] = events[spec.target.column].to_numpy()
    return feats


def split(spec: UseCaseSpec, frame: pd.DataFrame, as_of: str = "") -> dict[str, pd.DataFrame]:
    """Time-based split from the spec: train < validation_start <= validation < test_start.

    ``as_of`` (a date) moves the whole window so that the test window ends on that day,
    keeping the spec's window lengths: retraining on newer data reuses the same recipe.
    """
    ts = frame[EVENT_TS]
    tz = ts.dt.tz
    v0 = pd.Timestamp(spec.split.validation_start, tz=tz)
    t0 = pd.Timestamp(spec.split.test_start, tz=tz)
    end = pd.Timestamp(spec.split.end, tz=tz) + pd.Timedelta(days=1) if spec.split.end else None
    if as_of:
        new_end = pd.Timestamp(as_of, tz=tz) + pd.Timedelta(days=1)
        shift = new_end - (end if end is not None else ts.max().floor("D") + pd.Timedelta(days=1))
        v0, t0, end = v0 + shift, t0 + shift, new_end
    in_range = ts < end if end is not None else pd.Series(True, index=frame.index)
    parts = {
        "train": frame[ts < v0],
        "validation": frame[(ts >= v0) & (ts < t0)],
        "test": frame[(ts >= t0) & in_range],
    }
    for name, part in parts.items():
        if part.empty:
            raise ValueError(f"split {name!r} is empty: check split dates in the spec")
    return {k: v.reset_index(drop=True) for k, v in parts.items()}
