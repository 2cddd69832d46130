"""``shipway monitor``, ``shipway retrain`` and ``shipway trigger``: watch and react.

- ``monitor run``: one window of the prediction log vs the champion (or ``--loop``,
  serving the gauges on ``--metrics-port`` for Prometheus);
- ``monitor report``: the windows on disk and where their reports are;
- ``retrain``: a retraining request from a person (same cooldown and gate as alerts);
- ``trigger serve``: the Alertmanager / Prometheus webhook receiver.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Annotated

import typer
from rich.table import Table

from shipway.cli.app import UsecaseOpt, UserError, app, console, context, friendly

monitor_app = typer.Typer(help="Drift and performance monitoring.", no_args_is_help=True)
trigger_app = typer.Typer(help="The retraining trigger (alert webhook).", no_args_is_help=True)
app.add_typer(monitor_app, name="monitor")
app.add_typer(trigger_app, name="trigger")

By = Annotated[
    str,
    typer.Option(
        "--by", help="Window on log time (ts) or business time (event_time, for replays)."
    ),
]


@monitor_app.command("run")
@friendly
def run_cmd(
    usecase: UsecaseOpt = None,
    window: Annotated[
        str | None, typer.Option(help="Window length (pandas offset); default: the spec's.")
    ] = None,
    start: Annotated[datetime | None, typer.Option(help="Window start (UTC).")] = None,
    end: Annotated[datetime | None, typer.Option(help="Window end (UTC); default: now.")] = None,
    by: By = "ts",
    loop: Annotated[bool, typer.Option(help="Repeat every --interval seconds.")] = False,
    interval: Annotated[float, typer.Option(help="Seconds between runs with --loop.")] = 300.0,
    metrics_port: Annotated[
        int | None, typer.Option(help="Serve /metrics here (default 9108 with --loop).")
    ] = None,
    retrain: Annotated[
        bool, typer.Option(help="Request a retraining when a window breaches the spec.")
    ] = False,
) -> None:
    """Compare a window of the prediction log with the champion's reference."""
    from monitoring.exporter import MonitorMetrics
    from monitoring.monitor import run_forever, run_window
    from monitoring.trigger import RetrainTrigger, maybe_retrain
    from monitoring.window import WindowResult
    from shipway.core.metrics_contract import DEFAULT_PORTS, Exporter

    settings, spec = context(usecase)
    metrics = MonitorMetrics()
    trigger = None
    if retrain:
        from pipelines.runner import retraining_runner  # kfp is heavy: only when retraining

        trigger = RetrainTrigger(
            settings, runner=retraining_runner(settings), registry=metrics.registry
        )

    def react(result: WindowResult) -> None:
        console.print(result.summary())
        if trigger is not None:
            d = maybe_retrain(settings, spec, result, trigger=trigger)
            console.print(f"retraining: {d['outcome']} ({d['reason']})")

    port = metrics_port or (DEFAULT_PORTS[Exporter.monitor] if loop else None)
    if port is not None:
        metrics.serve(port)
        console.print(f"metrics on :{port}/metrics")
    if loop:
        if start or end:
            raise UserError("--loop monitors windows ending now; drop --start/--end")
        run_forever(
            settings, spec, metrics, interval=interval, by=by, length=window, on_result=react
        )
        return
    try:
        result = run_window(settings, spec, start, end, by, length=window, metrics=metrics)
    except (LookupError, ValueError) as exc:
        raise UserError(str(exc)) from exc
    react(result)


@monitor_app.command("report")
@friendly
def report_cmd(
    usecase: UsecaseOpt = None,
    open_: Annotated[bool, typer.Option("--open", help="Open the index in a browser.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print results as JSON.")] = False,
) -> None:
    """List the monitored windows and where their reports are."""
    from monitoring.reference import monitoring_dir
    from monitoring.report import INDEX, list_windows

    settings, spec = context(usecase)
    root = monitoring_dir(settings, spec)
    windows = list_windows(root)
    if as_json:
        console.print_json(json.dumps(windows, default=str))
        return
    if not windows:
        raise UserError(f"no monitoring windows yet under {root}; run `shipway monitor run`")
    table = Table("window end", "by", "rows", "drift share", "live", "outcome", "summary")
    for w in windows:
        p = w.get("performance") or {}
        live = f"{p['metric']} {p['live']:.4g}" if p.get("live") is not None else "-"
        share = f"{w['drift']['share']:.0%}" if w.get("drift") else "-"
        table.add_row(
            w["window"]["end"],
            w["window"]["by"],
            str(w["rows_evaluated"]),
            share,
            live,
            w["outcome"],
            str(root / w["dir"] / "summary.html"),
        )
    console.print(table)
    console.print(f"index: {root / INDEX}")
    if open_:
        import webbrowser

        webbrowser.open((root / INDEX).as_uri())


@app.command("retrain")
@friendly
def retrain_cmd(
    usecase: UsecaseOpt = None,
    reason: Annotated[str, typer.Option(help="Why (kept in the retraining log).")] = "manual",
    force: Annotated[bool, typer.Option(help="Ignore the cooldown (not a running run).")] = False,
    data_rev: Annotated[
        str | None, typer.Option(help="Data revision (default: the newest: HEAD or workspace).")
    ] = None,
) -> None:
    """Start the training pipeline now, through the same cooldown and gate as alerts."""
    from monitoring.trigger import RetrainTrigger, retraining_dir
    from pipelines.runner import retraining_runner

    settings, spec = context(usecase)
    with console.status(f"retraining {spec.name}"):
        d = RetrainTrigger(settings, runner=retraining_runner(settings)).request(
            spec, reason=reason, source="cli", force=force, data_rev=data_rev
        )
    console.print(f"decision: [bold]{d['outcome']}[/] {d.get('why', '')}")
    res = d.get("result") or {}
    if "error" in res:
        console.print(f"[bold red]retraining failed[/]: {res['error']}")
        raise typer.Exit(1)
    if res:
        from shipway.cli.train import print_result

        print_result(res)
    console.print(f"log: {retraining_dir(settings) / (spec.name + '.jsonl')}")


@trigger_app.command("serve")
@friendly
def serve_cmd(
    host: Annotated[
        str | None,
        typer.Option(help="Listen address (default: SHIPWAY_TRIGGER_HOST, else 127.0.0.1)."),
    ] = None,
    port: Annotated[int, typer.Option(help="Listen port.")] = 9109,
    insecure_no_token: Annotated[
        bool,
        typer.Option(
            "--insecure-no-token",
            help="Accept alerts without a bearer token (local use only; loopback only).",
        ),
    ] = False,
) -> None:
    """Receive Alertmanager webhooks (/alertmanager) and Prometheus pushes (/api/v2/alerts).

    Both need `Authorization: Bearer <token>`, the token from SHIPWAY_TRIGGER_TOKEN_FILE
    (or SHIPWAY_TRIGGER_TOKEN); configure the sender with http_config / authorization
    {type: Bearer, credentials_file: <the same file>}.
    """
    from monitoring.trigger import RetrainTrigger
    from monitoring.webhook import TokenError, TriggerServer, trigger_token
    from pipelines.runner import retraining_runner
    from shipway.core.settings import get_settings

    settings = get_settings()
    settings.export_env()
    host = host or settings.trigger_host
    try:
        token = trigger_token(settings)
        if token is not None and insecure_no_token:
            raise TokenError("--insecure-no-token with a token configured: drop one of them")
        trigger = RetrainTrigger(settings, runner=retraining_runner(settings))
        server = TriggerServer(trigger, host, port, token=token, insecure=insecure_no_token)
    except TokenError as exc:
        raise UserError(str(exc)) from exc
    except OSError as exc:
        raise UserError(f"cannot listen on {host}:{port}: {exc.strerror}") from exc
    console.print(
        f"trigger on http://{host}:{server.server_address[1]}: POST /alertmanager, "
        "POST /api/v2/alerts (bearer token "
        + ("[bold red]OFF[/]" if token is None else "required")
        + "), GET /healthz, GET /metrics, GET /openapi.json",
        highlight=False,
    )
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        server.shutdown()
