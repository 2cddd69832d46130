"""The portfolio as one self-contained HTML page with the impact-feasibility matrix
embedded (``<state_dir>/portfolio/index.html``)."""

from __future__ import annotations

import base64
import html
from datetime import UTC, datetime
from pathlib import Path

from shipway.core.io import write_text
from shipway.core.settings import Settings
from shipway.governance.portfolio.model import GATES, UseCaseStatus
from shipway.governance.portfolio.text import cost_text, drift_text, kpi_text, lead_time_text

STAGE_COLOR = {
    "production": "#1a7f37",
    "candidate": "#bf8700",
    "idea": "#57606a",
    "error": "#cf222e",
}


def matrix_png(statuses: list[UseCaseStatus], path: Path) -> Path:
    """Impact (y) against feasibility (x), 1-5, coloured by stage; quick wins top right."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 6))
    ax.axhline(3, color="#d0d7de", lw=1)
    ax.axvline(3, color="#d0d7de", lw=1)
    for (x, y), label in (
        ((4.5, 5.3), "quick wins"),
        ((1.5, 5.3), "strategic bets"),
        ((4.5, 0.7), "fill-ins"),
        ((1.5, 0.7), "deprioritise"),
    ):
        ax.text(x, y, label, ha="center", va="center", color="#8c959f", fontsize=9)
    seen: dict[tuple[int, int], int] = {}
    for st in statuses:
        if st.error:
            continue
        key = (st.feasibility, st.impact)
        k = seen.get(key, 0)
        seen[key] = k + 1
        x, y = st.feasibility + 0.12 * k, st.impact - 0.12 * k  # overlapping points fan out
        ax.scatter([x], [y], s=160, color=STAGE_COLOR[st.stage], zorder=3)
        ax.annotate(st.name, (x, y), xytext=(8, 6), textcoords="offset points", fontsize=9)
    for stage, color in STAGE_COLOR.items():
        if stage != "error":
            ax.scatter([], [], color=color, label=stage)
    ax.legend(loc="lower left", bbox_to_anchor=(0.0, 0.08), fontsize=8, frameon=False)
    ax.set(xlim=(0.5, 5.5), ylim=(0.4, 5.6), xlabel="feasibility (1-5)", ylabel="impact (1-5)")
    ax.set_xticks(range(1, 6))
    ax.set_yticks(range(1, 6))
    ax.set_title("Impact-feasibility matrix")
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100, bbox_inches="tight")
    plt.close(fig)
    return path


def render_html(statuses: list[UseCaseStatus], png: bytes, generated_at: datetime) -> str:
    """One self-contained page: summary table, per-use-case gates, the matrix."""
    esc = html.escape
    rows = []
    for st in statuses:
        if st.error:
            rows.append(
                f"<tr><td>{esc(st.name)}</td><td colspan=9 class=failed>{esc(st.error)}</td></tr>"
            )
            continue
        cells = [
            f"<b>{esc(st.name)}</b><br><small>{esc(st.title)} · {esc(st.owner)}</small>",
            f"<span style='color:{STAGE_COLOR[st.stage]}'>{st.stage}</span>",
            esc(st.risk_level),
            f"v{esc(st.champion)}" if st.champion else "none",
            "".join(
                f"<span class={st.gate(g).state} title='{esc(g)}: {esc(st.gate(g).detail)}'>"
                f"{esc(g.replace('_', ' '))}: {st.gate(g).state}</span><br>"
                for g in GATES
            ),
            esc(drift_text(st.drift)),
            esc(kpi_text(st.kpi, long=True))
            + (f"<br><small>{esc(st.kpi.name)}</small>" if st.kpi else ""),
            esc(cost_text(st.cost, long=True)),
            esc(lead_time_text(st)),
            f"{st.impact} × {st.feasibility}",
        ]
        rows.append("<tr>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
    details = "".join(
        f"<h3>{esc(st.name)}</h3><ul>"
        + "".join(
            f"<li class={g.state}>{esc(g.gate)}: {g.state}"
            + (f" — {esc(g.detail)}" if g.detail else "")
            + "</li>"
            for g in st.gates
        )
        + "</ul>"
        for st in statuses
        if not st.error
    )
    img = base64.b64encode(png).decode()
    head = "".join(
        f"<th>{h}</th>"
        for h in (
            "use case",
            "stage",
            "risk",
            "champion",
            "gates",
            "last drift",
            "business KPI",
            "serving cost",
            "spec commit → first champion",
            "impact × feasibility",
        )
    )
    return f"""<!doctype html><html><head><meta charset="utf-8"><title>Shipway portfolio</title>
<style>body{{font-family:sans-serif;margin:2em}}table{{border-collapse:collapse}}
td,th{{border:1px solid #d0d7de;padding:6px 10px;vertical-align:top;text-align:left}}
.passed{{color:#1a7f37}}.failed{{color:#cf222e}}.pending{{color:#bf8700}}.missing{{color:#8c959f}}
</style></head><body>
<h1>Shipway portfolio</h1><p>{len(statuses)} use case(s), generated {generated_at:%Y-%m-%d %H:%M} UTC</p>
<table><tr>{head}</tr>{"".join(rows)}</table>
<h2>Impact-feasibility matrix</h2>
<img alt="impact-feasibility matrix" src="data:image/png;base64,{img}">
<h2>Gates</h2>{details}
</body></html>
"""


def write_report(settings: Settings, statuses: list[UseCaseStatus]) -> Path:
    """``<state_dir>/portfolio/index.html`` (with the matrix embedded) and ``matrix.png``."""

    out = settings.state / "portfolio"
    png = matrix_png(statuses, out / "matrix.png")
    page = out / "index.html"
    write_text(render_html(statuses, png.read_bytes(), datetime.now(UTC)), page)
    return page
