"""``shipway serve`` and ``shipway predict batch``: the prediction service and the batch job."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Annotated

import typer

from shipway.cli.app import UsecaseOpt, UserError, app, console, context, friendly
from shipway.core.launch import serve_command, service_env
from shipway.core.redaction import redact

predict_app = typer.Typer(help="Score data with the served model.", no_args_is_help=True)
app.add_typer(predict_app, name="predict")
log = logging.getLogger("shipway.cli.serve")


@app.command("serve")
@friendly
def serve_cmd(
    usecase: UsecaseOpt = None,
    port: Annotated[int | None, typer.Option(help="Port (default: settings.service_port).")] = None,
    host: Annotated[str, typer.Option(help="Interface to bind.")] = "127.0.0.1",
    challenger_mode: Annotated[
        str | None,
        typer.Option(help="off | split | shadow (default: SHIPWAY_CHALLENGER_MODE or off)."),
    ] = None,
    challenger_percent: Annotated[
        float | None, typer.Option(help="split mode: share of entities for the challenger.")
    ] = None,
) -> None:
    """Run the prediction service (bentoml serve) for a use case, in the foreground."""
    settings, spec = context(usecase)
    overrides: dict[str, str] = {}
    if challenger_mode is not None:
        if challenger_mode not in ("off", "split", "shadow"):
            raise UserError(
                f"--challenger-mode must be off, split or shadow, not {challenger_mode!r}"
            )
        overrides["SHIPWAY_CHALLENGER_MODE"] = challenger_mode
    if challenger_percent is not None:
        overrides["SHIPWAY_CHALLENGER_PERCENT"] = str(challenger_percent)
    port = port or settings.service_port
    if settings.api_token is None:
        log.warning(
            "authentication is off: SHIPWAY_API_TOKEN is not set, so /predict, /predict_batch "
            "and /feedback on %s:%s accept anonymous calls; set it before anyone else can "
            "reach this port (the chart always sets it)",
            host,
            port,
        )
    console.print(
        f"serving [bold]{spec.name}[/] on http://{host}:{port} "
        f"(OpenAPI at /, metrics at /metrics; registry {redact(settings.tracking_uri)})"
    )
    cmd = serve_command(port, host)
    env = service_env(settings, spec.name, None, **overrides)
    # become bentoml (exec): Ctrl+C, SIGTERM from a supervisor or kill reach the server
    # itself, with no orphaned child left behind a dead wrapper
    os.chdir(settings.root)
    os.execve(cmd[0], cmd, env)


@predict_app.command("batch")
@friendly
def batch_cmd(
    input: Annotated[Path, typer.Option("--input", "-i", help="CSV or Parquet file to score.")],
    output: Annotated[Path, typer.Option("--output", "-o", help="Parquet file to write.")],
    usecase: UsecaseOpt = None,
    chunk_rows: Annotated[int, typer.Option(help="Rows per streamed chunk.")] = 20_000,
) -> None:
    """Score a large file with the champion, streamed in chunks (same code as /predict)."""
    from services.batch import run

    settings, spec = context(usecase)
    if not input.is_file():
        raise UserError(f"input file not found: {input}")
    try:
        res = run(settings, spec, input, output, chunk_rows=chunk_rows)
    except (LookupError, ValueError) as exc:
        raise UserError(str(exc)) from exc
    console.print(
        f"[green]scored[/] {res.rows:,} rows with {res.model_name} v{res.model_version} "
        f"in {res.seconds:.1f}s ({res.rows_per_second:,.0f} rows/s) -> {res.output}"
    )
