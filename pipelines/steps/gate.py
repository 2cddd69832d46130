"""The model-validation gate: the spec's acceptance criteria, checked on held-out data.

Quality threshold, margin over the current champion on the same window, slice and
fairness bounds, single-row p99 latency, robustness (missing feature, out-of-range value,
unseen category, small perturbations) and ONNX parity. The result is an evidence record;
a failing gate never moves the champion alias.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import pandas as pd

from pipelines.steps import onnx_export
from shipway.core import metrics, modelframe
from shipway.core.evidence import Criterion, GateRecord
from shipway.core.spec import DType, Task, UseCaseSpec
from shipway.data.readiness import EVENT_TS

GATE = "model_validation"


def _cmp(higher_is_better: bool) -> str:
    return ">=" if higher_is_better else "<="


def latency_p99_ms(spec: UseCaseSpec, model: Any, x: pd.DataFrame, n: int = 200) -> float:
    """p99 of single-row predictions, measured here, in this process."""
    rows = [x.iloc[[i % len(x)]] for i in range(n)]
    modelframe.predict(spec, model, rows[0])  # warm-up
    times = []
    for r in rows:
        t0 = time.perf_counter()
        modelframe.predict(spec, model, r)
        times.append((time.perf_counter() - t0) * 1000)
    return float(np.percentile(times, 99))


def robustness(spec: UseCaseSpec, model: Any, x: pd.DataFrame) -> list[Criterion]:
    """Hostile inputs get a defined (finite) answer; small perturbations move little."""
    out: list[Criterion] = []
    sample = x.head(200).copy()
    base = modelframe.predict(spec, model, sample)
    nums = [c for c in spec.model_feature_names if c not in spec.categorical_features]

    def finite(name: str, frame: pd.DataFrame, detail: str) -> None:
        try:
            p = modelframe.predict(spec, model, frame)
            ok = bool(np.isfinite(p).all())
            out.append(Criterion(name, ok, "finite" if ok else "non-finite", detail=detail))
        except Exception as exc:  # a crash is exactly what this criterion catches
            out.append(Criterion(name, False, f"error: {type(exc).__name__}", detail=str(exc)))

    if spec.stored_feature_names:
        f = sample.copy()
        f[spec.stored_feature_names[0]] = np.nan
        finite("robust_missing_feature", f, f"{spec.stored_feature_names[0]} set to null")
    ranged = [c for c in spec.request_fields if c.max is not None and c.dtype is not DType.str]
    if ranged:
        f = sample.copy()
        f[ranged[0].name] = np.float32((ranged[0].max or 0) * 10 + 1)
        finite("robust_out_of_range", f, f"{ranged[0].name} = 10x its maximum")
    if spec.categorical_features:
        f = sample.copy()
        f[spec.categorical_features[0]] = "__never_seen__"
        finite("robust_unseen_category", f, f"{spec.categorical_features[0]} = unseen value")
    if nums:
        f = sample.copy()
        for c in nums:
            f[c] = (f[c] * (1 + spec.acceptance.perturbation_rel)).astype(np.float32)
        p = modelframe.predict(spec, model, f)
        scale = np.maximum(np.abs(base), 1e-6) if spec.target.task is Task.regression else 1.0
        change = float(np.mean(np.abs(p - base) / scale))
        out.append(
            Criterion(
                "robust_perturbation",
                change <= spec.acceptance.perturbation_bound,
                change,
                spec.acceptance.perturbation_bound,
                "<=",
                f"mean relative change for +{spec.acceptance.perturbation_rel:.0%}"
                " on every numeric feature",
            )
        )
    return out


MIN_COMPARISON_ROWS = 30
"""Fewest rows neither model trained on that make a champion comparison meaningful."""


def beats_champion(
    spec: UseCaseSpec,
    model: Any,
    champion: Any,
    test: pd.DataFrame,
    x_test: pd.DataFrame,
    y_test: np.ndarray,
    champion_before: pd.Timestamp | None,
    facts: dict[str, Any],
) -> Criterion:
    """The candidate against the champion, both scored on the same rows neither trained on.

    The candidate never trained on its test window; the champion may have (a retrained
    champion's training window can reach into it), and scoring a model on its own training
    rows flatters it. So only test rows from the end of the champion's training window on
    are compared. When too few such rows exist, or the champion's window is unknown, the
    criterion says so and fails: a new version must not replace a champion without
    evidence that it is better.
    """
    acc = spec.acceptance
    hib = acc.higher_is_better
    if champion_before is None:
        return Criterion(
            "beats_champion",
            False,
            "not comparable",
            detail="the champion's version records no training window (tag train_before), so "
            "no rows are known that it did not train on",
        )
    ts = pd.to_datetime(test[EVENT_TS], utc=True)
    unseen = (ts >= champion_before.tz_convert("UTC")).to_numpy()
    n = int(unseen.sum())
    facts["comparison_rows"] = n
    facts["champion_trained_before"] = champion_before.isoformat()
    if n < MIN_COMPARISON_ROWS:
        return Criterion(
            "beats_champion",
            False,
            "not comparable",
            detail=f"only {n} test rows are after the champion's training window (it trained "
            f"on events before {champion_before:%Y-%m-%d}); {MIN_COMPARISON_ROWS} needed. "
            "Train on newer data (shipway train --as-of DATE) to compare on rows neither saw",
        )
    y, x = y_test[unseen], x_test[unseen]
    cand = metrics.primary(spec, y, modelframe.predict(spec, model, x))
    champ = metrics.primary(spec, y, modelframe.predict(spec, champion, x))
    need = champ * (1 + acc.champion_margin) if hib else champ * (1 - acc.champion_margin)
    ok = cand >= need if hib else cand <= need
    facts["champion_metric"] = champ
    facts["candidate_metric_on_comparison_rows"] = cand
    return Criterion(
        "beats_champion",
        bool(ok),
        cand,
        need,
        _cmp(hib),
        f"candidate vs champion {acc.metric} {champ:.4g} on the same {n} test rows neither "
        f"trained on (events from {max(ts.min(), champion_before):%Y-%m-%d}), "
        f"margin {acc.champion_margin:.1%}",
    )


def evaluate_gate(
    spec: UseCaseSpec,
    model: Any,
    test: pd.DataFrame,
    x_test: pd.DataFrame,
    y_test: np.ndarray,
    champion: Any | None,
    onnx_diff: float | None,
    subject: dict[str, Any],
    *,
    champion_before: pd.Timestamp | None = None,
) -> GateRecord:
    """Run every criterion; return the evidence record. ``champion_before`` is the end
    (exclusive) of the champion's training window, from its registered version."""
    acc = spec.acceptance
    hib = acc.higher_is_better
    pred = modelframe.predict(spec, model, x_test)
    score = metrics.primary(spec, y_test, pred)
    crit: list[Criterion] = [
        Criterion(
            f"quality_{acc.metric}",
            bool(score >= acc.threshold if hib else score <= acc.threshold),
            score,
            acc.threshold,
            _cmp(hib),
            f"on the test window ({len(y_test)} rows)",
        )
    ]
    facts: dict[str, Any] = {"test_rows": len(y_test), "candidate_metric": score}
    if champion is not None:
        crit.append(
            beats_champion(spec, model, champion, test, x_test, y_test, champion_before, facts)
        )
    else:
        crit.append(Criterion("beats_champion", True, "no champion yet", detail="first model"))
    if acc.bounds:
        measured = metrics.quality(spec, y_test, pred)
        for b in acc.bounds:
            v = measured[b.metric]
            for side, limit, ok in (
                (">=", b.min, b.min is None or v >= b.min),
                ("<=", b.max, b.max is None or v <= b.max),
            ):
                if limit is not None:
                    crit.append(Criterion(f"bound_{b.metric}", bool(ok), v, limit, side, b.why))
    sl = metrics.slices(spec, test, y_test, pred)
    facts["slices"] = sl
    for attr, groups in sl.items():
        ratio = metrics.slice_ratio(spec, groups)
        crit.append(
            Criterion(
                f"slice_ratio_{attr}",
                ratio <= acc.max_slice_ratio,
                ratio,
                acc.max_slice_ratio,
                "<=",
                f"worst/best group {acc.metric} error over {attr}",
            )
        )
    if spec.target.task is Task.binary_classification:
        fair = metrics.fairness(spec, test, y_test, pred)
        facts["fairness"] = fair
        for attr, f in fair.items():
            if acc.max_demographic_parity_diff is not None:
                v = f["demographic_parity_difference"]
                crit.append(
                    Criterion(
                        f"demographic_parity_{attr}",
                        v <= acc.max_demographic_parity_diff,
                        v,
                        acc.max_demographic_parity_diff,
                        "<=",
                    )
                )
            if acc.max_equalized_odds_diff is not None:
                v = f["equalized_odds_difference"]
                crit.append(
                    Criterion(
                        f"equalized_odds_{attr}",
                        v <= acc.max_equalized_odds_diff,
                        v,
                        acc.max_equalized_odds_diff,
                        "<=",
                    )
                )
    p99 = latency_p99_ms(spec, model, x_test)
    crit.append(
        Criterion(
            "latency_p99_ms",
            p99 <= acc.latency_p99_ms,
            p99,
            acc.latency_p99_ms,
            "<=",
            "single-row predict, measured inside the pipeline",
        )
    )
    crit += robustness(spec, model, x_test)
    if onnx_diff is not None:
        crit.append(
            Criterion(
                "onnx_parity_max_abs_diff",
                onnx_diff <= acc.onnx_tolerance,
                onnx_diff,
                acc.onnx_tolerance,
                "<=",
                onnx_export.compared(spec),
            )
        )
    return GateRecord(gate=GATE, subject=subject, criteria=crit, facts=facts)
