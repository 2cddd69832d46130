"""What one monitoring window found (``WindowResult``): the monitor writes it, the
exporter, the trigger and the CLI read it. Its own module so that none of them has to
import the monitor that computes it."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from monitoring.accrual import NewLabels
from monitoring.challenger import Comparison
from monitoring.drift import DriftResult
from shipway.core.performance import Performance

MIN_DRIFT_ROWS = 30
"""Fewer served rows than this: no drift verdict (a handful of rows is not a distribution)."""


@dataclass
class WindowResult:
    """Everything one monitoring window found; ``to_dict`` is its results.json."""

    usecase: str
    window: dict[str, str]
    model: dict[str, Any]
    rows: dict[str, int]
    drift: DriftResult | None
    performance: Performance | None
    challenger: Comparison | None
    spec_thresholds: dict[str, float]
    report_path: Path | None = None
    new_labels: NewLabels | None = None
    """Labelled rows since the champion trained, when the spec has a rule for them."""
    generated_at: str = field(default_factory=lambda: datetime.now(UTC).isoformat())

    @property
    def drift_detected(self) -> bool:
        return self.drift is not None and self.drift.dataset_drift

    @property
    def degraded(self) -> bool:
        return self.performance is not None and self.performance.degraded

    @property
    def rows_evaluated(self) -> int:
        """Served rows compared with the reference (the drift sample's source)."""
        return self.rows["served"]

    @property
    def outcome(self) -> str:
        if self.degraded:
            return "degraded"
        if self.drift_detected:
            return "drift"
        return "ok" if self.drift is not None else "no_data"

    @property
    def summary_path(self) -> Path | None:
        return self.report_path.with_name("summary.html") if self.report_path else None

    def summary(self) -> str:
        """A few human lines: what was compared, what was found, where the report is."""
        w, m = self.window, self.model
        lines = [
            f"{self.usecase} window {w['start']} -> {w['end']} (by {w['by']}): "
            f"{self.rows['served']} served rows, {self.rows['labelled']} with feedback; "
            f"reference {m['name']} v{m['version']}",
        ]
        if self.drift is None:
            lines.append(f"drift: not assessed (fewer than {MIN_DRIFT_ROWS} served rows)")
        else:
            d = self.drift
            top = sorted(d.features, key=lambda f: -f.score)[:5]
            lines.append(
                f"drift: {len(d.drifted)}/{len(d.features)} features drifted "
                f"({d.share:.0%}, threshold {d.threshold:.0%}) -> "
                f"{'DRIFT' if d.dataset_drift else 'no drift'}; strongest: "
                + ", ".join(f"{f.name} {f.score:.2f}" for f in top)
            )
            if d.prediction is not None:
                lines.append(
                    f"prediction drift: {d.prediction.method} {d.prediction.score:.3f} "
                    f"({'drifted' if d.prediction.drifted else 'stable'})"
                )
        p = self.performance
        if p is not None and p.live is not None:
            drop = p.drop_ratio or 0.0  # set whenever there is a live value
            lines.append(
                f"live {p.metric}: {p.live:.4g} vs validation {p.validation:.4g} -> "
                f"{abs(drop):.1%} {'worse' if drop > 0 else 'better'} "
                f"(threshold {p.threshold:.0%} worse)"
                f"{' DEGRADED' if p.degraded else ''}"
            )
        elif p is not None:
            lines.append(f"live performance: not yet ({p.rows} rows with feedback)")
        c = self.challenger
        if c is not None:
            ci = "" if c.ci_low is None else f", 95% CI [{c.ci_low:.4g}, {c.ci_high:.4g}]"
            lines.append(
                f"challenger v{c.challenger_version} vs champion v{c.champion_version} "
                f"({c.design}, {min(c.rows_champion, c.rows_challenger)} rows): {c.verdict}{ci}"
            )
        if self.new_labels is not None:
            lines.append(self.new_labels.summary())
        if self.report_path is not None:
            lines.append(f"report: {self.summary_path}  (Evidently: {self.report_path})")
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        return {
            "usecase": self.usecase,
            "window": self.window,
            "model": self.model,
            "rows": self.rows,
            "rows_evaluated": self.rows_evaluated,
            "outcome": self.outcome,
            "drift_detected": self.drift_detected,
            "degraded": self.degraded,
            "drift": self.drift.to_dict() if self.drift else None,
            "performance": self.performance.to_dict() if self.performance else None,
            "challenger": self.challenger.to_dict() if self.challenger else None,
            "new_labels": self.new_labels.to_dict() if self.new_labels else None,
            "spec_thresholds": self.spec_thresholds,
            "report_path": str(self.report_path) if self.report_path else None,
            "generated_at": self.generated_at,
        }
