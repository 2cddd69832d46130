"""Global feature importance of a model version, and how stable it is across versions.

A reviewer reading a model card wants to know which features drive the model overall,
and whether a retrained version still relies on the same ones: a new version whose
ranking changed a lot deserves a look even when its metrics pass. Both come from the
per-prediction explanations (``shipway.core.explain``), aggregated:

* global importance: the mean absolute contribution of each spec feature over a fixed
  sample of the version's monitoring reference (its validation rows, logged with the
  run as ``reference/reference.parquet``), so the card can be regenerated at any time
  and says the same thing;
* stability: the Spearman rank correlation between this version's global importance
  and that of the previous registered version (the highest lower version number that
  has a reference), on the features both take; "n/a" for the first version, or when
  the previous one cannot be explained (the reason is said).
"""

from __future__ import annotations

import math
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from shipway.core.settings import Settings
from shipway.core.spec import UseCaseSpec
from shipway.governance.facts import VersionFacts
from shipway.governance.versions import versions

SAMPLE_ROWS = 500
"""Reference rows explained per version: evenly spaced over the validation period."""
REFERENCE = "reference/reference.parquet"


def sample_reference(client: Any, mv: Any, rows: int = SAMPLE_ROWS) -> Any:
    """Up to ``rows`` rows of the version's monitoring reference, evenly spaced (the same
    rows every time); raises LookupError when the run logged none."""
    import pandas as pd

    with tempfile.TemporaryDirectory(prefix="shipway-importance-") as tmp:
        try:
            path = client.download_artifacts(mv.run_id, REFERENCE, tmp)
        except Exception as exc:
            raise LookupError(f"v{mv.version} has no {REFERENCE} in its run: {exc}") from exc
        ref = pd.read_parquet(Path(path))
    if len(ref) > rows:
        ref = ref.iloc[np.linspace(0, len(ref) - 1, rows).round().astype(int)]
    return ref


def trained_as(client: Any, spec: UseCaseSpec, mv: Any) -> UseCaseSpec:
    """``spec`` with the algorithm the version was trained with (its run's ``algorithm``
    param): an earlier version may have used another one, and the explainer follows it."""
    algorithm = client.get_run(mv.run_id).data.params.get("algorithm")
    if not algorithm or algorithm == spec.model.algorithm:
        return spec
    return spec.model_copy(update={"model": spec.model.model_copy(update={"algorithm": algorithm})})


def global_importance_of(client: Any, spec: UseCaseSpec, mv: Any) -> dict[str, Any]:
    """Mean |contribution| per spec feature on the version's reference sample, with the
    method, scale and number of rows it was computed on."""
    from shipway.core import registry
    from shipway.core.explain import explain, global_importance
    from shipway.core.modelframe import model_frame

    ref = sample_reference(client, mv)
    model = registry.load(f"models:/{mv.name}/{mv.version}")
    as_trained = trained_as(client, spec, mv)
    found = explain(as_trained, model, model_frame(as_trained, ref))
    return {
        "version": str(mv.version),
        "rows": len(found),
        "method": found[0].method if found else None,
        "scale": found[0].scale if found else None,
        "importance": global_importance(found),
    }


def spearman(a: dict[str, float], b: dict[str, float]) -> float | None:
    """Spearman rank correlation of two importances over their common features; None when
    it is undefined (fewer than two common features, or a constant ranking)."""
    from scipy.stats import spearmanr

    common = sorted(set(a) & set(b))
    if len(common) < 2:
        return None
    rho = float(spearmanr([a[f] for f in common], [b[f] for f in common]).statistic)
    return None if math.isnan(rho) else rho


def previous_version(client: Any, mv: Any) -> Any | None:
    """The highest registered version below ``mv`` (None for the first)."""
    lower = [v for v in versions(client, mv.name) if int(v.version) < int(mv.version)]
    return lower[0] if lower else None


def explanation_facts(client: Any, spec: UseCaseSpec, mv: Any) -> dict[str, Any]:
    """What the model card says about explanations (see the module docstring); every
    problem is recorded as the reason instead of failing the card."""
    try:
        current = global_importance_of(client, spec, mv)
    except Exception as exc:
        return {"error": f"global importance not computed: {type(exc).__name__}: {exc}"[:400]}
    out: dict[str, Any] = {**current, "stability": {"previous_version": None, "spearman": None}}
    prev = previous_version(client, mv)
    if prev is None:
        out["stability"]["reason"] = "n/a: the first registered version"
        return out
    out["stability"]["previous_version"] = str(prev.version)
    try:
        before = global_importance_of(client, spec, prev)
    except Exception as exc:
        out["stability"]["reason"] = f"n/a: v{prev.version} not explained ({exc})"[:300]
        return out
    rho = spearman(current["importance"], before["importance"])
    out["stability"]["spearman"] = rho
    out["stability"]["previous_importance"] = before["importance"]
    if rho is None:
        out["stability"]["reason"] = "n/a: fewer than two common features or a constant ranking"
    return out


def attach(client: Any, spec: UseCaseSpec, facts: VersionFacts, mv: Any) -> VersionFacts:
    """``facts`` with :func:`explanation_facts` of ``mv``, for the cards that render them."""
    facts.explanations = explanation_facts(client, spec, mv)
    return facts


SERVED_LIMIT = 1000
"""Explained predictions of one version an audit bundle lists in full (newest first)."""


def served_explanations(settings: Settings, spec: UseCaseSpec, mv: Any) -> dict[str, Any]:
    """The version's explained predictions from the prediction log, for the audit bundle:
    how many, the mean absolute contribution per feature over them, and each one's full
    explanation with its request id (newest :data:`SERVED_LIMIT`). A log that cannot be
    read is said, not fatal: the bundle is still written."""
    from shipway.core.predictionlog import PredictionLog

    try:
        plog = PredictionLog(settings.prediction_log)
        try:
            rows = plog.explained(spec.name, mv.name, str(mv.version), SERVED_LIMIT + 1)
        finally:
            plog.close()
    except Exception as exc:
        return {"error": f"prediction log unreadable: {type(exc).__name__}: {exc}"[:400]}
    listed = rows[:SERVED_LIMIT]
    mean: dict[str, float] = {}
    for r in listed:
        for f, v in r["explanation"]["contributions"].items():
            mean[f] = mean.get(f, 0.0) + abs(float(v)) / len(listed)
    return {
        "explained": len(listed),
        "truncated": len(rows) > SERVED_LIMIT,
        "mean_abs_contribution": dict(sorted(mean.items(), key=lambda kv: -kv[1])),
        "predictions": [
            {k: r[k] for k in ("request_id", "ts", "prediction", "label", "variant", "explanation")}
            for r in listed
        ],
    }


def bundle_summary(
    settings: Settings, spec: UseCaseSpec, mv: Any, facts: VersionFacts
) -> dict[str, Any]:
    """``explanations/summary.json`` of the audit bundle: the card's global importance and
    stability, and why each explained prediction of the version was given."""
    return {
        "model": mv.name,
        "version": str(mv.version),
        "global": facts.explanations,
        "served": served_explanations(settings, spec, mv),
    }
