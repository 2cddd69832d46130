"""Columns that give the answer away: one column alone predicts the target almost exactly.

Such a column is nearly always known only after the outcome (the amount spent on a card
predicts whether the card was granted) or the target restated in another unit. A model
that uses it scores perfectly offline and fails in production, and its perfect groups
make slice ratios meaningless, so the proposal leaves it out and says so.
"""

from __future__ import annotations

import pandas as pd

LEAK_AUC = 0.98
"""A classifier's column whose values alone rank the labels this well (ROC AUC)."""
LEAK_RHO = 0.99
"""A regression's numeric column with this rank correlation with the target."""
MAX_SCORED_CATEGORIES = 20
"""A category column is scored by its in-sample positive shares only with this few
values: with many small categories those shares fit the labels by chance."""


def auc(score: pd.Series, positive: pd.Series) -> float:
    """ROC AUC of ``score`` for the 0/1 ``positive`` (ties count half), by ranks."""
    ranks = score.rank()
    n_pos = int(positive.sum())
    n_neg = len(positive) - n_pos
    if not n_pos or not n_neg:
        return 0.5
    return float((ranks[positive == 1].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def leaks(
    df: pd.DataFrame, columns: list[str], y: pd.Series, positive_class: str | None
) -> dict[str, float]:
    """Column -> how well it alone predicts ``y`` (AUC or |rank correlation|), for the
    columns over the LEAK_ thresholds. A categorical column is scored by its categories'
    share of the positive class (classification only)."""
    out: dict[str, float] = {}
    for col in columns:
        x = df[col]
        keep = x.notna()
        if keep.sum() < 10:
            continue
        if positive_class is not None:
            pos = (y[keep].astype(str) == positive_class).astype(int)
            score = x[keep]
            if not pd.api.types.is_numeric_dtype(score) or pd.api.types.is_bool_dtype(score):
                if score.nunique() > MAX_SCORED_CATEGORIES:
                    continue
                score = pos.groupby(score.astype(str)).transform("mean")
            a = auc(score.astype(float), pos)
            strength = max(a, 1 - a)
            if strength >= LEAK_AUC:
                out[col] = round(strength, 3)
        elif pd.api.types.is_numeric_dtype(x) and not pd.api.types.is_bool_dtype(x):
            rho = abs(float(x[keep].corr(y[keep].astype(float), method="spearman")))
            if rho >= LEAK_RHO:
                out[col] = round(rho, 3)
    return out
