"""Per-prediction explanations: how much each of the spec's model features moved one
answer away from the model's base value.

The registered model is an sklearn ``Pipeline`` (``pre`` encoding + ``model``,
``pipelines.steps.learner``). Contributions are computed on the encoded columns with
the method exact for the estimator, then summed back to the spec's feature names (a
categorical one-hot encoded into k columns is one feature, as a person reads it):

* LightGBM: its own TreeSHAP (``Booster.predict(pred_contrib=True)``), in raw-score space
  (log-odds for a classifier, the value for a regressor);
* random forests: TreeSHAP from the ``shap`` library (``TreeExplainer``), in the forest's
  output space (the positive-class probability for a classifier);
* linear models: exact contributions ``coef_j * z_j`` of the encoded, standardised
  columns, base value the intercept (log-odds for logistic regression).

In every case ``base_value + sum(contributions) == output`` (the ``scale`` says which
output), which tests check to 1e-6 per algorithm and task. ``prediction`` is what the
service answers (the probability for a classifier), for reference.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from shipway.core.spec import Task, UseCaseSpec


@dataclass(frozen=True)
class Explanation:
    """One answer's explanation in the spec's terms."""

    method: str
    scale: str
    base_value: float
    output: float
    prediction: float
    contributions: dict[str, float]

    def top(self, n: int = 5) -> list[tuple[str, float]]:
        """The ``n`` features that moved this answer most, largest effect first."""
        return sorted(self.contributions.items(), key=lambda kv: -abs(kv[1]))[:n]

    def to_dict(self, top: int | None = None) -> dict[str, Any]:
        return {
            "method": self.method,
            "scale": self.scale,
            "base_value": self.base_value,
            "output": self.output,
            "prediction": self.prediction,
            "contributions": dict(self.top(top) if top else self.contributions.items()),
        }


def encoded_owners(pre: Any) -> list[str]:
    """For each column the fitted encoder (``ColumnTransformer``) outputs, the spec feature
    it comes from: one column per ordinal-encoded or numeric feature, ``len(categories)``
    columns per one-hot encoded one."""
    owners: list[str] = []
    for _, transformer, columns in pre.transformers_:
        if transformer == "drop" or not len(columns):
            continue
        step = transformer.steps[0][1] if hasattr(transformer, "steps") else transformer
        cats = getattr(step, "categories_", None)
        if cats is not None and type(step).__name__ == "OneHotEncoder":
            for col, values in zip(columns, cats, strict=True):
                owners.extend([col] * len(values))
        else:
            owners.extend(columns)
    return owners


def _grouped(owners: list[str], names: list[str], row: np.ndarray) -> dict[str, float]:
    sums = dict.fromkeys(names, 0.0)
    for owner, value in zip(owners, row, strict=True):
        sums[owner] += float(value)
    return sums


def _contributions(spec: UseCaseSpec, est: Any, z: np.ndarray) -> tuple[str, str, np.ndarray]:
    """(method, scale, array n x (columns + 1)) whose last column is the base value."""
    clf = spec.target.task is Task.binary_classification
    kind = spec.model.algorithm
    if kind == "lightgbm":  # one thread: OpenMP's start-up costs more than a few rows
        contrib = est.booster_.predict(z, pred_contrib=True, num_threads=1)
        return "lightgbm_tree_shap", "log_odds" if clf else "value", np.asarray(contrib)
    if kind == "random_forest":
        import shap

        explainer = shap.TreeExplainer(est)
        values = np.asarray(explainer.shap_values(z, check_additivity=False))
        base = np.asarray(explainer.expected_value, dtype=np.float64).reshape(-1)
        if clf:  # (n, columns, classes): the positive class, as the service answers
            values, base = values[..., 1], base[1:2]
        out = np.column_stack([values, np.full(len(z), float(base[0]))])
        return "tree_shap", "probability" if clf else "value", out
    coef = np.asarray(est.coef_, dtype=np.float64).reshape(-1)
    intercept = float(np.asarray(est.intercept_, dtype=np.float64).reshape(-1)[0])
    out = np.column_stack([z * coef, np.full(len(z), intercept)])
    return "linear_exact", "log_odds" if clf else "value", out


def explain(
    spec: UseCaseSpec, model: Any, x: pd.DataFrame, served: Any = None
) -> list[Explanation]:
    """Explanations of ``model``'s answers on the model frame ``x``, one per row.

    ``served``: the answers the caller already has for these rows (the service has just
    scored them), so they are not computed a second time; by default they are."""
    from shipway.core.modelframe import predict

    pre, est = model.named_steps["pre"], model.named_steps["model"]
    z = np.asarray(pre.transform(x), dtype=np.float64)
    method, scale, contrib = _contributions(spec, est, z)
    owners = encoded_owners(pre)
    names = list(spec.model_feature_names)
    if served is None:
        served = predict(spec, model, x)
    result = []
    for i in range(len(z)):
        base = float(contrib[i, -1])
        parts = _grouped(owners, names, contrib[i, :-1])
        result.append(
            Explanation(
                method=method,
                scale=scale,
                base_value=base,
                output=base + float(np.sum(contrib[i, :-1])),
                prediction=float(served[i]),
                contributions=parts,
            )
        )
    return result


def raw_output(spec: UseCaseSpec, model: Any, x: pd.DataFrame) -> np.ndarray:
    """The model's own output on each explanation's scale, computed without explaining:
    what the contributions must add up to (tests hold them to it)."""
    pre, est = model.named_steps["pre"], model.named_steps["model"]
    z = np.asarray(pre.transform(x), dtype=np.float64)
    clf = spec.target.task is Task.binary_classification
    if spec.model.algorithm == "lightgbm":
        return np.asarray(est.booster_.predict(z, raw_score=True), dtype=np.float64)
    if spec.model.algorithm == "random_forest":
        return np.asarray(est.predict_proba(z)[:, 1] if clf else est.predict(z), dtype=np.float64)
    return np.asarray(est.decision_function(z) if clf else est.predict(z), dtype=np.float64)


def global_importance(explanations: list[Explanation]) -> dict[str, float]:
    """Mean absolute contribution per feature over many answers (the model card's
    global importance), largest first."""
    if not explanations:
        return {}
    names = list(explanations[0].contributions)
    mean = {n: float(np.mean([abs(e.contributions[n]) for e in explanations])) for n in names}
    return dict(sorted(mean.items(), key=lambda kv: -kv[1]))
