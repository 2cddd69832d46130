"""A registered version pinned once and loaded exactly, for every part that scores.

A batch (one process or many shards) resolves the champion alias *once*, at start, and
every chunk or shard loads that exact version: the alias may move while the batch runs
(a promotion, a rollback), and a batch scored by two versions would be two batches.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from shipway.core.registryref import CHAMPION, address
from shipway.core.spec import UseCaseSpec
from shipway.scoring import servingform
from shipway.scoring.rowscorer import Predict, predictor

log = logging.getLogger("shipway.service")


@dataclass(frozen=True)
class Pinned:
    """The version a batch scores with and the lineage each output row carries."""

    name: str
    version: str
    feature_service: str
    """The feature service the version was trained through (its lineage tag; the spec's
    current one for a version registered without the tag)."""
    data_version: str
    """The DVC md5 of the data the version was trained on ('' when not recorded)."""


def pin_champion(tracking_uri: str, spec: UseCaseSpec) -> Pinned:
    """The champion's version now, with its lineage tags; a clear error without one."""
    from shipway.core import registry  # MLflow: imported where a registry is read

    client = registry.connect(tracking_uri)
    mv = registry.alias_version(client, spec.registered_model_name, CHAMPION)
    if mv is None:
        raise LookupError(
            f"no {CHAMPION} version of {spec.registered_model_name!r} to score with "
            f"in the registry at {address(tracking_uri)}"
        )
    tags = dict(mv.tags or {})
    return Pinned(
        name=spec.registered_model_name,
        version=str(mv.version),
        feature_service=str(tags.get("feature_service") or spec.feature_service_name),
        data_version=str(tags.get("data_version") or ""),
    )


def load_version(spec: UseCaseSpec, name: str, version: str) -> tuple[Any, Predict]:
    """The exact registered version (never the alias: it may have moved) and its fastest
    exact scorer (:func:`shipway.scoring.rowscorer.predictor`)."""
    from shipway.core import registry  # MLflow: only where a pipeline is loaded

    model = registry.load(f"models:/{name}/{version}")
    return model, predictor(spec, model)


def load_serving_form(spec: UseCaseSpec, name: str, version: str, path: Path) -> Predict | None:
    """The version's serving form, downloaded at ``path``, as its scorer (no scikit-learn,
    skops or ``lightgbm`` package in this process), or None when it cannot be used; the
    caller then loads the pipeline (:func:`load_version`)."""
    try:
        return servingform.load(spec, path)
    except Exception as exc:  # never let the lean form stop a model from being served
        log.warning(
            "shipway: %s v%s: serving form not used (%s: %s); loading the pipeline",
            name,
            version,
            type(exc).__name__,
            exc,
        )
        return None
