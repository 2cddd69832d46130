"""``shipway init`` (a new use case from a data file) and ``shipway status`` (the portfolio)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from shipway.cli.app import UserError, app, console, friendly
from shipway.settings import get_settings


@app.command("init")
@friendly
def init_cmd(
    name: Annotated[str, typer.Argument(help="Use-case name (snake_case), e.g. churn_risk.")],
    data: Annotated[
        Path, typer.Option("--data", "-d", help="CSV or Parquet file with one row per event.")
    ],
    target: Annotated[str, typer.Option("--target", "-t", help="Column the model predicts.")],
    force: Annotated[bool, typer.Option(help="Replace an existing spec.")] = False,
    register: Annotated[
        bool, typer.Option(help="Add the use case to params.yaml (the DVC data stages).")
    ] = True,
) -> None:
    """Scaffold usecases/<name>/usecase.yaml from a data file: types, ranges, categories,
    entity, event time, sensitive columns, task and acceptance thresholds, all inferred
    and listed for review. The objective starts unapproved: it trains but is not promoted."""
    from shipway.scaffold import ScaffoldError, scaffold

    settings = get_settings()
    try:
        prop = scaffold(
            settings.root, settings.specs, name, data, target, force=force, register=register
        )
    except ScaffoldError as exc:
        raise UserError(str(exc)) from exc
    console.print(f"[green]wrote[/] {prop.path}")
    if prop.copied_source is not None:
        console.print(
            f"copied the data next to it: {prop.copied_source} (commit it, or move "
            "it under data/ with DVC and point source.path there)"
        )
    if prop.registered:
        console.print(f"added {name} to params.yaml (usecases:)")
    console.print("[bold]review[/] (also in the file's header):")
    for note in prop.notes:
        console.print(f"  - {note}", highlight=False)
    console.print(
        "next: [bold]dvc repro features[/] (or make data), [bold]shipway features apply[/], "
        f"[bold]shipway features materialize -u {name}[/], "
        f"[bold]shipway train -u {name} --data-rev workspace[/]; after approval, "
        f"[bold]shipway serve -u {name}[/]"
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
    against its target and the time from the spec's first commit to its first champion."""
    from shipway.portfolio import collect, table, write_report

    settings = get_settings()
    statuses = collect(settings, usecase or None)
    if not statuses:
        raise UserError(f"no use cases under {settings.specs}")
    console.print(table(statuses))
    if html:
        page = write_report(settings, statuses)
        console.print(f"report: {page}")
