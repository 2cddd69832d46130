"""Training set: historical retrieval through the feature service, then a time split."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pandas as pd

from shipway.core.spec import UseCaseSpec
from shipway.data.readiness import EVENT_TS

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


def bounds(spec: UseCaseSpec, ts: pd.Series, as_of: str = "") -> dict[str, pd.Timestamp | None]:
    """The split's boundaries: train < validation_start <= validation < test_start <= test
    < end (``end`` None: every later row is test).

    Without ``as_of`` they are the spec's dates. With ``as_of`` (a retraining on newer
    data) the test window ends on that day and both held-out windows take the spec's
    retraining lengths (``split.retrain``), so the model trains on every labelled row
    before them, the newest period included, and is still judged on rows it never saw.
    """
    tz = ts.dt.tz
    if as_of:
        val_days, test_days = spec.split.retrain_days()
        end = pd.Timestamp(as_of, tz=tz) + pd.Timedelta(days=1)
        t0 = end - pd.Timedelta(days=test_days)
        v0 = t0 - pd.Timedelta(days=val_days)
        return {"validation_start": v0, "test_start": t0, "end": end}
    v0 = pd.Timestamp(spec.split.validation_start, tz=tz)
    t0 = pd.Timestamp(spec.split.test_start, tz=tz)
    end = pd.Timestamp(spec.split.end, tz=tz) + pd.Timedelta(days=1) if spec.split.end else None
    return {"validation_start": v0, "test_start": t0, "end": end}


def split(spec: UseCaseSpec, frame: pd.DataFrame, as_of: str = "") -> dict[str, pd.DataFrame]:
    """Time-based split of ``frame`` at :func:`bounds`; an empty part is an error naming
    the window, since a model judged on no rows must never be registered."""
    ts = frame[EVENT_TS]
    b = bounds(spec, ts, as_of)
    v0, t0, end = b["validation_start"], b["test_start"], b["end"]
    in_range = ts < end if end is not None else pd.Series(True, index=frame.index)
    parts = {
        "train": frame[ts < v0],
        "validation": frame[(ts >= v0) & (ts < t0)],
        "test": frame[(ts >= t0) & in_range],
    }
    for name, part in parts.items():
        if part.empty:
            where = f"as_of {as_of}, split.retrain" if as_of else "split dates"
            raise ValueError(
                f"split {name!r} is empty ({_window(name, b)}; data from "
                f"{ts.min():%Y-%m-%d} to {ts.max():%Y-%m-%d}): check the {where} in the spec"
            )
    return {k: v.reset_index(drop=True) for k, v in parts.items()}


def _edges(name: str, b: dict[str, pd.Timestamp | None]) -> tuple[pd.Timestamp | None, ...]:
    """(first, end) of one split's window; None: open."""
    lo = {"train": None, "validation": b["validation_start"], "test": b["test_start"]}[name]
    hi = {"train": b["validation_start"], "validation": b["test_start"], "test": b["end"]}[name]
    return lo, hi


def _window(name: str, b: dict[str, pd.Timestamp | None]) -> str:
    lo, hi = _edges(name, b)
    return "[{}, {})".format(*(f"{t:%Y-%m-%d}" if t is not None else "..." for t in (lo, hi)))


def describe(
    parts: dict[str, pd.DataFrame], b: dict[str, pd.Timestamp | None], as_of: str = ""
) -> dict[str, object]:
    """Which rows each split holds, as evidence: the window's bounds (end exclusive), the
    rows in it and their first and last event times. Recorded on the registered version,
    so every version says what it trained on and what it was judged on."""
    out: dict[str, object] = {"as_of": as_of or None}
    for name, part in parts.items():
        lo, hi = _edges(name, b)
        ts = part[EVENT_TS]
        out[name] = {
            "from": lo.isoformat() if lo is not None else None,
            "before": hi.isoformat() if hi is not None else None,
            "rows": len(part),
            "first_event": ts.min().isoformat() if len(part) else None,
            "last_event": ts.max().isoformat() if len(part) else None,
        }
    return out
