"""The typer application, shared options and error handling of the CLI."""

from __future__ import annotations

import sys
from collections.abc import Callable
from functools import wraps
from pathlib import Path
from typing import Annotated, Any, TypeVar

import click
import typer
from rich.markup import escape

from shipway.cli import logs, output
from shipway.cli.output import console as console  # every command prints through these
from shipway.cli.output import err_console as err_console
from shipway.core.redaction import redact
from shipway.core.settings import Settings, get_settings
from shipway.core.spec import SpecError, UseCaseSpec
from shipway.core.usecases import load_usecase

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


def _expected() -> tuple[type[BaseException], ...]:
    """Failures caused by input or by a step that explains itself: one red line each.

    A failed kfp.local run counts when ``pipelines.runner`` is loaded (only then can it
    have raised), an unreachable registry when ``shipway.core.registry`` is; importing
    them here would load kfp or MLflow for every command.
    """
    from shipway.data.ingest import IngestError
    from shipway.data.readiness import ValidationFailed

    runner = sys.modules.get("pipelines.runner")
    pipeline = (runner.PipelineFailed,) if runner is not None else ()
    # An unreachable registry names its address (never credentials) in one line; only a
    # command that loaded the registry client (and so MLflow) can have raised it.
    registry = sys.modules.get("shipway.core.registry")
    unreachable = (registry.RegistryUnavailable,) if registry is not None else ()
    return (
        SpecError,
        UserError,
        IngestError,
        ValidationFailed,
        FileNotFoundError,
        *pipeline,
        *unreachable,
    )


def _log_hint() -> None:
    path = logs.log_path()
    if path is not None and path.exists():
        err_console.print(f"full log: {path}", highlight=False, markup=False, soft_wrap=True)


def friendly(fn: F) -> F:
    """Turn expected failures into one clear red line and exit code 1; any other error
    keeps its traceback. Either way the log file gets the traceback and its path is said."""

    @wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except (typer.Exit, click.exceptions.ClickException, click.exceptions.Abort):
            raise
        except Exception as exc:
            logs.log_exception(f"{fn.__name__} failed", exc)
            if not isinstance(exc, _expected()):
                _log_hint()
                raise
            # an error message may quote a store URI or a header: masked like the log
            err_console.print(f"[bold red]error:[/] {escape(redact(str(exc)))}", highlight=False)
            _log_hint()
            raise typer.Exit(1) from None

    return wrapper  # type: ignore[return-value]


def _log_dir() -> Path | None:
    try:
        return get_settings().state / "logs"
    except Exception:  # a bad SHIPWAY_* value: the command itself will say so
        return None


@app.callback()
def main(
    ctx: typer.Context,
    verbose: Annotated[
        bool,
        typer.Option(
            "--verbose",
            "-v",
            help="Also show what the libraries and pipeline components print, and debug "
            "logging (everything is in the log file under <state_dir>/logs either way).",
        ),
    ] = False,
) -> None:
    """Shipway command line."""
    # the log is named after the command (a group's callback cannot see its subcommand)
    output.setup(ctx.invoked_subcommand or "shipway", verbose=verbose, log_dir=_log_dir())
    ctx.call_on_close(output.teardown)


def context(usecase: str | None) -> tuple[Settings, UseCaseSpec]:
    """Settings plus the selected use case's spec (validated)."""
    settings = get_settings()
    settings.export_env()
    return settings, load_usecase(usecase or settings.usecase, settings)
