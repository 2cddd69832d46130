"""The portfolio in the terminal: one-line texts per column and the table ``shipway
status`` prints."""

from __future__ import annotations

from typing import Any

from shipway.governance.portfolio.model import GATES, Cost, Drift, Kpi, UseCaseStatus

STATE_MARK = {"passed": "✓", "failed": "✗", "pending": "…", "missing": "–"}

GATE_LETTER = dict(zip(GATES, "ADMPR", strict=True))
"""A(pproval) D(ata) M(odel validation) P(roduction readiness) R(eview)."""


def gate_summary(st: UseCaseStatus) -> str:
    """``A✓ D✓ M✓ P– R–``: one letter per gate, in order."""
    return " ".join(f"{GATE_LETTER[g]}{STATE_MARK.get(st.gate(g).state, '?')}" for g in GATES)


def kpi_text(k: Kpi | None, long: bool = False) -> str:
    """``0.137 / 0.15 ✓``: champion value / target, and whether the target is met."""
    if k is None:
        return "–"
    value = "n/a" if k.value is None else _num(k.value)
    mark = "" if k.met is None else (" ✓" if k.met else " ✗")
    if not long:
        return f"{value} / {_num(k.target)}{mark}"
    verdict = "" if k.met is None else (" — target met" if k.met else " — target not met")
    return (
        f"{k.metric} {value} vs target {_num(k.target)}, baseline {_num(k.baseline)} "
        f"{k.unit} ({k.source}){verdict}"
    )


def cost_text(c: Cost | None, long: bool = False) -> str:
    """``0.42 CPU-s · 310 MB``: serving CPU-seconds per 1,000 predictions and peak memory;
    ✓/✗ when a budget was enforced."""
    if c is None:
        return "not measured"
    cpu = "n/a" if c.cpu_seconds_per_1k is None else _num(c.cpu_seconds_per_1k)
    mem = "n/a" if c.memory_mb is None else f"{c.memory_mb:,.0f}"
    mark = "" if c.within_budget is None else (" ✓" if c.within_budget else " ✗")
    if not long:
        return f"{cpu} CPU-s · {mem} MB{mark}"
    verdict = (
        " — no budget set"
        if c.within_budget is None
        else (" — within budget" if c.within_budget else " — OVER budget")
    )
    return f"{cpu} CPU-seconds per 1,000 predictions, peak {mem} MB ({c.source}){verdict}"


def _num(v: float) -> str:
    """Four significant digits, without exponents for everyday magnitudes."""
    return f"{v:,.0f}" if abs(v) >= 1000 else f"{v:.4g}"


def drift_text(d: Drift | None) -> str:
    if d is None:
        return "no run"
    share = "" if d.share is None else f" {d.share:.0%}"
    return f"{d.outcome}{share} ({d.window_end[:10]})"


def lead_time_text(st: UseCaseStatus) -> str:
    days = st.lead_time_days
    if days is None:
        if st.spec_committed_at is None:
            return "spec not committed"
        return "no champion yet"
    if days >= 1:
        return f"{days:.1f} d"
    return f"{days * 24:.1f} h" if days * 24 >= 1 else f"{days * 1440:.0f} min"


def table(statuses: list[UseCaseStatus]) -> Any:
    """The rich table ``shipway status`` prints."""
    from rich.table import Table

    t = Table(
        title="Shipway portfolio",
        caption="gates: A approval, D data readiness, M model validation, P production "
        "readiness, R post-deployment review (✓ passed ✗ failed … pending – no record); "
        "KPI: champion / target; cost: serving CPU-seconds per 1,000 predictions · peak "
        "memory (production-readiness smoke); to prod: spec's first commit -> first champion",
    )
    t.add_column("use case", no_wrap=True)
    for col in ("stage", "risk", "champion", "gates", "last drift", "KPI", "cost", "to prod"):
        t.add_column(col)
    t.add_column("I×F", justify="right")
    for st in statuses:
        if st.error:
            t.add_row(st.name, "[red]error[/]", "", "", "", "", st.error, "", "", "")
            continue
        champ = f"v{st.champion}" if st.champion else "none"
        if st.latest and st.latest != st.champion:
            champ += f" (latest v{st.latest})"
        t.add_row(
            st.name,
            st.stage,
            st.risk_level,
            champ,
            gate_summary(st),
            drift_text(st.drift),
            kpi_text(st.kpi),
            cost_text(st.cost),
            lead_time_text(st),
            f"{st.impact}×{st.feasibility}",
        )
    return t
