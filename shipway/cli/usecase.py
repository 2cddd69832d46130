"""``shipway usecase``: list, show and check use-case specs."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from shipway.cli.app import UsecaseOpt, app, console, context, friendly
from shipway.settings import get_settings
from shipway.spec import load_spec
from shipway.usecases import list_usecases, load_usecase

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
