"""Challenger vs champion on the same traffic, with a bootstrap confidence interval.

Log convention (the prediction service follows it; see ``shadow_request_id``):

- **shadow mode**: each request is answered by the champion and logged as usual
  (``request_id=<id>``, ``mode='served'``, ``variant='champion'``); the challenger's answer
  to the *same* request is logged as a second record with ``request_id='<id>:shadow'``,
  ``mode='shadow'``, ``variant='challenger'`` and the same features and event time.
  Feedback is posted for ``<id>`` only; the monitor pairs the two records by id, so both
  models are scored on identical rows against the same ground truth (paired bootstrap).
- **split mode**: a request goes to one variant (``mode='served'``, ``variant`` says which).
  Each variant is scored on its own randomly assigned rows (unpaired bootstrap).

The verdict is *better* or *worse* only when the whole confidence interval of the
difference lies on one side of zero; otherwise the evidence is not there yet.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pandas as pd

from shipway.core import metrics
from shipway.core.spec import Task, UseCaseSpec

SHADOW_SUFFIX = ":shadow"
BETTER, WORSE, UNDECIDED = "better", "worse", "not yet distinguishable"
MIN_PAIRS = 30


def shadow_request_id(request_id: str) -> str:
    """The id of the shadow record of ``request_id`` (keep served ids <= 57 characters)."""
    return f"{request_id}{SHADOW_SUFFIX}"


@dataclass(frozen=True)
class Comparison:
    """Challenger minus champion in the spec's metric, with its confidence interval."""

    metric: str
    design: str
    """``paired`` (shadow: same requests) or ``unpaired`` (split: random halves)."""
    rows_champion: int
    rows_challenger: int
    champion: float | None
    challenger: float | None
    difference: float | None
    """challenger - champion, in the metric's own units (sign depends on the metric)."""
    ci_low: float | None
    ci_high: float | None
    confidence: float
    verdict: str
    champion_version: str | None = None
    challenger_version: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _labels(spec: UseCaseSpec, y: np.ndarray) -> np.ndarray:
    return y.astype(np.int64) if spec.target.task is Task.binary_classification else y


def _metric(spec: UseCaseSpec, y: np.ndarray, p: np.ndarray) -> float:
    return metrics.primary(spec, _labels(spec, y), p)


def verdict(spec: UseCaseSpec, low: float, high: float) -> str:
    """Better/worse only if the interval excludes zero, on the metric's good side."""
    better_if_positive = spec.acceptance.higher_is_better
    if low > 0:
        return BETTER if better_if_positive else WORSE
    if high < 0:
        return WORSE if better_if_positive else BETTER
    return UNDECIDED


def compare(
    spec: UseCaseSpec,
    champion: tuple[np.ndarray, np.ndarray],
    challenger: tuple[np.ndarray, np.ndarray],
    *,
    paired: bool,
    n_boot: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
    min_rows: int = MIN_PAIRS,
) -> Comparison:
    """Bootstrap the difference of the metric; ``champion``/``challenger`` = (actual, pred).

    Paired: the same resampled rows score both models (their row i is the same request),
    which cancels the rows' own difficulty and needs far fewer rows to decide.
    """
    (ya, pa), (yb, pb) = (
        (np.asarray(y, np.float64), np.asarray(p, np.float64)) for y, p in (champion, challenger)
    )
    name, design = spec.acceptance.metric, "paired" if paired else "unpaired"
    if paired and len(ya) != len(yb):
        raise ValueError("paired comparison needs rows in the same order for both models")
    if min(len(ya), len(yb)) < min_rows:
        return Comparison(
            name, design, len(ya), len(yb), None, None, None, None, None, confidence, UNDECIDED
        )
    rng = np.random.default_rng(seed)
    diffs = np.empty(n_boot)
    for b in range(n_boot):
        ia = rng.integers(0, len(ya), len(ya))
        ib = ia if paired else rng.integers(0, len(yb), len(yb))
        diffs[b] = _metric(spec, yb[ib], pb[ib]) - _metric(spec, ya[ia], pa[ia])
    diffs = diffs[np.isfinite(diffs)]
    alpha = (1 - confidence) / 2
    low, high = (float(v) for v in np.quantile(diffs, [alpha, 1 - alpha]))
    a, b_ = _metric(spec, ya, pa), _metric(spec, yb, pb)
    return Comparison(
        name,
        design,
        len(ya),
        len(yb),
        a,
        b_,
        b_ - a,
        low,
        high,
        confidence,
        verdict(spec, low, high),
    )


def _version(rows: pd.DataFrame) -> str | None:
    return str(rows["model_version"].mode().iat[0]) if len(rows) else None


def compare_window(spec: UseCaseSpec, window: pd.DataFrame, **kwargs: Any) -> Comparison | None:
    """The comparison for a prediction-log window, or None when no challenger ran."""
    if window.empty:
        return None
    actual = pd.to_numeric(window["actual"], errors="coerce")
    w = window.assign(actual=actual)
    served = w[w["mode"] == "served"]
    shadow = w[w["mode"] == "shadow"]
    if len(shadow):
        base = shadow.assign(request_id=shadow["request_id"].str.removesuffix(SHADOW_SUFFIX))
        champ = served[served["variant"] == "champion"]
        pairs = champ.merge(base, on="request_id", suffixes=("", "_ch"))
        pairs = pairs[pairs["actual"].notna()]
        y = pairs["actual"].to_numpy()
        res = compare(
            spec,
            (y, pairs["prediction"].to_numpy()),
            (y, pairs["prediction_ch"].to_numpy()),
            paired=True,
            **kwargs,
        )
        versions = (_version(champ), _version(shadow))
    elif (served["variant"] == "challenger").any():
        a = served[(served["variant"] == "champion") & served["actual"].notna()]
        b = served[(served["variant"] == "challenger") & served["actual"].notna()]
        res = compare(
            spec,
            (a["actual"].to_numpy(), a["prediction"].to_numpy()),
            (b["actual"].to_numpy(), b["prediction"].to_numpy()),
            paired=False,
            **kwargs,
        )
        versions = (_version(a), _version(b))
    else:
        return None
    return Comparison(
        **{**res.to_dict(), "champion_version": versions[0], "challenger_version": versions[1]}
    )
