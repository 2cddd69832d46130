"""``shipway status``: the portfolio of use cases."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console, Group, RenderableType
from rich.measure import Measurement
from rich.padding import Padding
from rich.table import Table
from rich.text import Text

from shipway.cli.app import UserError, app, console, friendly
from shipway.core.settings import Settings, get_settings
from shipway.governance.portfolio import (
    UseCaseStatus,
    cost_text,
    drift_text,
    gate_summary,
    kpi_text,
    lead_time_text,
    table,
)


@app.command("status")
@friendly
def status_cmd(
    usecase: Annotated[
        list[str] | None,
        typer.Option("--usecase", "-u", help="Only these use cases (repeatable); default all."),
    ] = None,
    html: Annotated[bool, typer.Option(help="Also write <state_dir>/portfolio/index.html.")] = True,
) -> None:
    """The portfolio: per use case the champion, gate states, last drift, business KPI
    against its target, the serving cost per 1,000 predictions and the time from the spec's first commit to its first champion;
    under it the latest readiness assessment (shipway assess)."""
    from shipway.governance.portfolio import collect, write_report

    settings = get_settings()
    statuses = collect(settings, usecase or None)
    if not statuses:
        raise UserError(f"no use cases under {settings.specs}")
    print_status(statuses, console)
    console.print(assessment_text(settings))
    if html:
        page = write_report(settings, statuses)
        console.print(f"report: {page}")


def assessment_text(settings: Settings) -> Text:
    """The latest readiness assessment under the portfolio: date, organisation and the
    five scores, data maturity in red below the approval gate's minimum."""
    from shipway.governance.assessment import DATA_MATURITY, DIMENSIONS, MIN_DATA_MATURITY
    from shipway.governance.assessment import title as dim_title
    from shipway.governance.assessment.scoring import latest

    data = latest(settings)
    line = Text("readiness assessment: ", style="bold")
    if data is None:
        return line.append("none recorded (shipway assess --questionnaire FILE)", style="dim")
    line.append(f"{data['created_at'][:10]} {data['organization']} — ")
    for i, d in enumerate(DIMENSIONS):
        score = float(data["scores"][d])
        low = d == DATA_MATURITY and score < MIN_DATA_MATURITY
        line.append(f"{dim_title(d).lower()} ")
        line.append(f"{score:.1f}", style="bold red" if low else "bold")
        line.append(" · " if i < len(DIMENSIONS) - 1 else "")
    return line


def print_status(statuses: list[UseCaseStatus], out: Console) -> None:
    """The portfolio without a cut value at any width.

    The table when it fits: on a terminal wide enough for its widest rows, and always
    in a pipe or file (as wide as the rows need; nobody reads those at 80 columns and a
    row stays one greppable line). On a narrower terminal, where rich would squeeze the
    columns and cut values with "…", one block per use case instead.
    """
    wide = table(statuses)
    need = Measurement.get(out, out.options.update_width(100_000), wide).maximum  # unclamped
    if not out.is_terminal:
        width = out.width
        out.width = max(need, width)  # print() clamps to the console's width
        try:
            out.print(wide)
        finally:
            out.width = width
    elif need <= out.width:
        out.print(wide)
    else:
        out.print(blocks(statuses, str(wide.caption or "")))


def blocks(statuses: list[UseCaseStatus], legend: str) -> RenderableType:
    """One block per use case, a value per line (values wrap, never cut)."""
    parts: list[RenderableType] = [Text("Shipway portfolio", style="bold")]
    for st in statuses:
        head = Text.assemble((st.name, "bold"), f" · {st.stage}")
        rows: list[tuple[str, str]] = [("error", st.error)]
        if not st.error:
            head.append(f" · risk {st.risk_level} · I×F {st.impact}×{st.feasibility}")
            champ = f"v{st.champion}" if st.champion else "none"
            if st.latest and st.latest != st.champion:
                champ += f" (latest v{st.latest})"
            rows = [
                ("champion", champ),
                ("gates", gate_summary(st)),
                ("last drift", drift_text(st.drift)),
                ("KPI", kpi_text(st.kpi)),
                ("cost", cost_text(st.cost)),
                ("to prod", lead_time_text(st)),
            ]
        grid = Table.grid(padding=(0, 2))
        grid.add_column(style="dim", no_wrap=True)
        grid.add_column(overflow="fold")
        for key, value in rows:
            grid.add_row(key, value)
        parts += [head, Padding(grid, (0, 0, 0, 2), expand=False)]
    if legend:
        parts.append(Text(legend, style="dim"))
    return Group(*parts)
