"""The typer application, shared options and error handling of the CLI."""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from functools import wraps
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.logging import RichHandler

from shipway.settings import Settings, get_settings
from shipway.spec import SpecError, UseCaseSpec
from shipway.usecases import load_usecase

console = Console()
err_console = Console(stderr=True)

app = typer.Typer(
    name="shipway",
    help=(
        "Shipway: take a model from raw data to a governed, monitored prediction service.\n\n"
        "Data (DVC) -> features (Feast) -> training (Kubeflow Pipelines, MLflow) -> "
        "serving (BentoML) -> monitoring (Prometheus, Evidently) -> retraining."
    ),
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
)

UsecaseOpt = Annotated[
    str | None,
    typer.Option(
        "--usecase",
        "-u",
        help="Use case name (folder under usecases/).",
        envvar="SHIPWAY_USECASE",
        show_default="hotel_rates",
    ),
]


class UserError(Exception):
    """An error caused by input (spec, data, arguments): shown without a traceback."""


F = TypeVar("F", bound=Callable[..., Any])


def friendly(fn: F) -> F:
    """Turn expected failures into one clear red line and exit code 1."""

    @wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from shipway.data.ingest import IngestError
        from shipway.data.readiness import ValidationFailed

        try:
            return fn(*args, **kwargs)
        except (SpecError, UserError, IngestError, ValidationFailed, FileNotFoundError) as exc:
            err_console.print(f"[bold red]error:[/] {exc}", highlight=False)
            raise typer.Exit(1) from None

    return wrapper  # type: ignore[return-value]


def setup_logging(verbose: bool = False) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(message)s",
        handlers=[RichHandler(console=err_console, show_path=False, rich_tracebacks=True)],
        force=True,
    )
    for noisy in ("feast", "urllib3", "alembic", "dvc", "httpx", "git"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


@app.callback()
def main(
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Debug logging.")] = False,
) -> None:
    """Shipway command line."""
    setup_logging(verbose)
    quiet_warnings()


def quiet_warnings() -> None:
    """Hide third-party deprecation chatter (Feast, ibis) that users cannot act on."""
    import warnings

    for cat in (DeprecationWarning, FutureWarning):
        warnings.filterwarnings("ignore", category=cat)
    warnings.filterwarnings("ignore", message=".*experimental feature.*")
    warnings.filterwarnings("ignore", category=UserWarning, module="feast")


def context(usecase: str | None) -> tuple[Settings, UseCaseSpec]:
    """Settings plus the selected use case's spec (validated)."""
    settings = get_settings()
    settings.export_env()
    return settings, load_usecase(usecase or settings.usecase, settings)


def venv_bin() -> str:
    """Folder of this interpreter's scripts, so child tools (dvc, feast) resolve the venv's."""
    from pathlib import Path

    return str(Path(sys.executable).parent)
