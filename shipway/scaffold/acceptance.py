"""What a proposed use case must reach before any version may serve: acceptance criteria
measured against a naive baseline, and the (unapproved) business objective."""

from __future__ import annotations

from datetime import date
from typing import Any

import pandas as pd


def acceptance(
    tgt: dict[str, Any],
    y: pd.Series,
    window: pd.Series,
    fairness: tuple[float, float, str] | None,
    notes: list[str],
) -> tuple[dict[str, Any], float]:
    """Acceptance criteria and the naive baseline the objective starts from.

    A regression must beat the naive forecast on the rows the gate judges it on: the
    training window's median, scored on the test window. (The whole data's median would
    ask for less when the test window is harder, and more when it is easier, than the
    data as a whole.)"""
    acc: dict[str, Any]
    if tgt["task"] == "binary_classification":
        acc = {"metric": "roc_auc", "threshold": 0.7, "decision_threshold": 0.5}
        if fairness is not None:
            acc.update(max_demographic_parity_diff=fairness[0], max_equalized_odds_diff=fairness[1])
        notes.append(
            "acceptance: ROC AUC >= 0.70 (0.5 is chance); decision threshold 0.5: set it "
            "from the costs of false positives and false negatives"
            + (f"; {fairness[2]}; review them with compliance" if fairness else "")
        )
        baseline = 0.5
    else:
        v = y.astype(float)
        naive = float((v[window == "test"] - v[window == "train"].median()).abs().mean())
        threshold = round(0.9 * naive, 4)
        # ONNX runs in float32: ~1e-6 relative error on a sum of trees, so the parity
        # tolerance scales with the target (0.001 is right for a price of 100, not 300,000)
        scale = float(v.abs().max())
        acc = {"metric": "mae", "threshold": threshold}
        if scale * 1e-5 > 1e-3:
            acc["onnx_tolerance"] = float(f"{scale * 1e-5:.2g}")
        notes.append(
            f"acceptance: MAE <= {threshold:g}, 10% better than predicting the training "
            f"window's median on the test window (MAE {naive:.4g})"
        )
        baseline = round(naive, 4)
    sliced = fairness is not None
    acc.update(max_slice_ratio=3.0, latency_p99_ms=100)
    notes.append(
        "acceptance: single-row p99 <= 100 ms"
        + ("; worst/best group error ratio <= 3" if sliced else "")
        + ": tighten once the serving SLO"
        + (" and the groups' sizes are known" if sliced else " is known")
    )
    return acc, baseline


def objective(acc: dict[str, Any], baseline: float, today: date) -> dict[str, Any]:
    """The objective, measured by the acceptance metric until the owner names the business
    KPI, and unapproved: trainable, never promoted until a named approver signs off."""
    metric = acc["metric"]
    return {
        "kpi": f"TODO: business KPI (until then: model {metric} on held-out data)",
        "description": "Replace with the business KPI the model moves and how it is measured.",
        "unit": "",
        "baseline": baseline,
        "target": acc["threshold"],
        "direction": "higher_is_better" if metric in ("roc_auc", "f1", "r2") else "lower_is_better",
        "kpi_metric": metric,
        "approval": {
            "approved": False,
            "comment": f"pending: proposed by shipway init on {today}; trainable for "
            "experimentation, not promotable until a named approver signs off",
        },
    }
