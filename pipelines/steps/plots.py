"""Diagnostic plots logged with every run: residuals (regression), calibration (classification)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from shipway.core.spec import Task, UseCaseSpec


def diagnostics(spec: UseCaseSpec, y: np.ndarray, pred: np.ndarray, out_dir: Path) -> list[Path]:
    """Write PNG plots for the test split; return their paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths: list[Path] = []
    if spec.target.task is Task.binary_classification:
        from sklearn.calibration import calibration_curve
        from sklearn.metrics import RocCurveDisplay

        frac, mean = calibration_curve(y, pred, n_bins=10, strategy="quantile")
        fig, ax = plt.subplots(figsize=(5, 5))
        ax.plot([0, 1], [0, 1], "k--", lw=1, label="perfect")
        ax.plot(mean, frac, "o-", label="model")
        ax.set(
            xlabel="predicted probability",
            ylabel="observed frequency",
            title=f"{spec.name}: calibration (test)",
        )
        ax.legend()
        paths.append(out_dir / "calibration.png")
        fig.savefig(paths[-1], dpi=100, bbox_inches="tight")
        plt.close(fig)
        fig, ax = plt.subplots(figsize=(5, 5))
        RocCurveDisplay.from_predictions(y, pred, ax=ax)
        ax.set_title(f"{spec.name}: ROC (test)")
        paths.append(out_dir / "roc.png")
        fig.savefig(paths[-1], dpi=100, bbox_inches="tight")
        plt.close(fig)
        return paths
    resid = y - pred
    fig, axes = plt.subplots(1, 2, figsize=(10, 4.5))
    axes[0].scatter(pred, y, s=4, alpha=0.4)
    lo, hi = float(min(y.min(), pred.min())), float(max(y.max(), pred.max()))
    axes[0].plot([lo, hi], [lo, hi], "k--", lw=1)
    axes[0].set(xlabel="predicted", ylabel="actual", title="predicted vs actual (test)")
    axes[1].hist(resid, bins=60)
    axes[1].set(
        xlabel="residual (actual - predicted)",
        ylabel="rows",
        title=f"residuals: mean {resid.mean():.2f}, sd {resid.std():.2f}",
    )
    fig.suptitle(spec.title)
    paths.append(out_dir / "residuals.png")
    fig.savefig(paths[-1], dpi=100, bbox_inches="tight")
    plt.close(fig)
    return paths
