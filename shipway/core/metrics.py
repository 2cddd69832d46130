"""Quality, slice and fairness metrics for regression and binary classification."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from sklearn import metrics as skm

from shipway.core.spec import Task, UseCaseSpec

MIN_GROUP_ROWS = 30


def quality(spec: UseCaseSpec, y: np.ndarray, pred: np.ndarray) -> dict[str, float]:
    """Every metric of the task (pred = value, or probability of the positive class)."""
    if spec.target.task is Task.binary_classification:
        cls = (pred >= spec.acceptance.decision_threshold).astype(int)
        both = len(np.unique(y)) > 1
        negatives = cls == 0
        return {
            "roc_auc": float(skm.roc_auc_score(y, pred)) if both else float("nan"),
            "f1": float(skm.f1_score(y, cls, zero_division=0)),
            "accuracy": float(skm.accuracy_score(y, cls)),
            "brier": float(skm.brier_score_loss(y, pred)),
            "log_loss": float(skm.log_loss(y, np.clip(pred, 1e-7, 1 - 1e-7), labels=[0, 1])),
            "positive_rate": float(cls.mean()),
            # actual positives among the rows predicted negative (e.g. the bad rate of the
            # loans a credit model approves); 0 when nothing is predicted negative
            "false_omission_rate": float(y[negatives].mean()) if negatives.any() else 0.0,
            "ece": calibration_error(y, pred),
        }
    return {
        "mae": float(skm.mean_absolute_error(y, pred)),
        "rmse": float(np.sqrt(skm.mean_squared_error(y, pred))),
        "r2": float(skm.r2_score(y, pred)),
    }


def calibration_error(y: np.ndarray, prob: np.ndarray, bins: int = 10) -> float:
    """Expected calibration error: mean |predicted - observed| over equal-count bins,
    weighted by bin size (the same quantile bins as the calibration plot)."""
    if len(y) == 0:
        return float("nan")
    order = np.argsort(prob, kind="stable")
    parts = np.array_split(order, min(bins, len(y)))
    return float(sum(len(i) * abs(prob[i].mean() - y[i].mean()) for i in parts) / len(y))


def primary(spec: UseCaseSpec, y: np.ndarray, pred: np.ndarray) -> float:
    return quality(spec, y, pred)[spec.acceptance.metric]


def slices(
    spec: UseCaseSpec, frame: pd.DataFrame, y: np.ndarray, pred: np.ndarray
) -> dict[str, dict[str, dict[str, float]]]:
    """Per sensitive attribute, per group: rows and the primary metric."""
    out: dict[str, dict[str, dict[str, float]]] = {}
    for attr in spec.sensitive_attributes:
        groups: dict[str, dict[str, float]] = {}
        for g, idx in frame.groupby(frame[attr].astype(str)).indices.items():
            n = len(idx)
            entry: dict[str, float] = {"rows": float(n)}
            if n >= MIN_GROUP_ROWS:
                entry.update(quality(spec, y[idx], pred[idx]))
            groups[str(g)] = entry
        out[attr] = groups
    return out


def slice_ratio(spec: UseCaseSpec, groups: dict[str, dict[str, float]]) -> float:
    """Worst-to-best ratio of the group error (lower-is-better metric, or 1 - score)."""
    m = spec.acceptance.metric
    errs = []
    for g in groups.values():
        if m in g and not np.isnan(g[m]):
            errs.append(g[m] if not spec.acceptance.higher_is_better else 1.0 - g[m])
    if len(errs) < 2:
        return 1.0
    best = max(min(errs), 1e-9)
    return float(max(errs) / best)


def fairness(
    spec: UseCaseSpec, frame: pd.DataFrame, y: np.ndarray, pred: np.ndarray
) -> dict[str, dict[str, float]]:
    """Demographic parity and equalized-odds differences per sensitive attribute."""
    cls = (pred >= spec.acceptance.decision_threshold).astype(int)
    out: dict[str, dict[str, float]] = {}
    for attr in spec.sensitive_attributes:
        rates, tprs, fprs = [], [], []
        for _, idx in frame.groupby(frame[attr].astype(str)).indices.items():
            if len(idx) < MIN_GROUP_ROWS:
                continue
            yy, cc = y[idx], cls[idx]
            rates.append(cc.mean())
            if (yy == 1).any():
                tprs.append(cc[yy == 1].mean())
            if (yy == 0).any():
                fprs.append(cc[yy == 0].mean())
        spread = lambda v: float(max(v) - min(v)) if len(v) > 1 else 0.0  # noqa: E731
        out[attr] = {
            "demographic_parity_difference": spread(rates),
            "equalized_odds_difference": max(spread(tprs), spread(fprs)),
        }
    return out


def summary(
    spec: UseCaseSpec, parts: dict[str, tuple[pd.DataFrame, np.ndarray, np.ndarray]]
) -> dict[str, Any]:
    """Metrics per split, plus slices and fairness on the test split."""
    res: dict[str, Any] = {name: quality(spec, y, p) for name, (_, y, p) in parts.items()}
    frame, y, p = parts["test"]
    res["slices"] = slices(spec, frame, y, p)
    if spec.target.task is Task.binary_classification:
        res["fairness"] = fairness(spec, frame, y, p)
    return res
