"""``shipway demo``: the whole loop on embedded defaults, step by step, on real data."""

from __future__ import annotations

from typing import Annotated, Any

import pandas as pd
import typer
from rich.markup import escape
from rich.table import Table

from shipway.cli.app import UsecaseOpt, app, console, context, friendly
from shipway.cli.data import run_tool
from shipway.cli.output import announce_log, captured, pipeline_steps, say, step
from shipway.core.redaction import redact
from shipway.core.settings import Settings
from shipway.core.spec import UseCaseSpec


@app.command("demo")
@friendly
def demo_cmd(
    usecase: UsecaseOpt = None,
    top: Annotated[int, typer.Option(help="How many of the busiest entities to show.")] = 3,
    loop: Annotated[
        bool, typer.Option(help="Go on after training: serve, replay, monitor, retrain.")
    ] = True,
    replay: Annotated[
        int,
        typer.Option(
            help="Labelled rows after the champion's training window to replay through "
            "/predict (with their outcomes sent to /feedback)."
        ),
    ] = 400,
) -> None:
    """Run the main job end to end on embedded defaults and print what happened.

    One line per step with its result and time; everything else (DVC, Feast, kfp.local,
    MLflow) goes to the log file whose path is printed first (--verbose shows it all).
    Re-runnable: a second run trains a new candidate, keeps the champion when the
    candidate does not beat it, and still serves and monitors a champion. Exits 1 when a
    step fails or no champion can be served.
    """
    from feature_repo.store import apply, feature_store, materialize
    from shipway.core.lineage import data_version
    from shipway.core.usecases import load_all

    settings, spec = context(usecase)
    announce_log()
    with step("step 1: data: ingest -> validate -> features (dvc repro), DVC push") as s:
        run_tool(["dvc", "repro", "features"], settings.root)
        run_tool(["dvc", "push", "-q"], settings.root)
        version = data_version(settings.root, settings.data, spec.name)
        s.ok(f"data version {version} (DVC md5 of data/{spec.name}/features)")

    with step("step 2: Feast: apply definitions, materialize the online store") as s:
        with captured("feast"):
            store = feature_store(settings)
            names = apply(store, load_all(settings), settings.data)
            end = materialize(store, spec, settings.data)
        s.ok(
            f"{len(names)} objects, feature service {spec.feature_service_name}, "
            f"materialized up to {end:%Y-%m-%d}"
        )

    _show_online_features(settings, spec, store, top)

    from pipelines.runner import run_local
    from shipway.cli.train import print_result

    rev = data_rev_for_demo(settings.root)
    with (
        pipeline_steps(),
        step(f"step 4: train: the KFP pipeline (kfp.local) on data {rev}, gated") as s,
    ):
        result = run_local(settings, spec.name, rev)
        s.ok(f"{result['model']} v{result['version']}")
    print_result(result)
    say(registry_line(settings))
    serving = _champion_to_serve(settings, spec, result)
    if not loop:
        say(f"[green]done[/]: {spec.name} data {version} -> champion {result['model']} v{serving}")
        return
    from shipway.cli.loop import run_loop

    out = run_loop(settings, spec, n=replay, first=5)
    summary = Table(title="summary")
    summary.add_column("what")
    summary.add_column("result", overflow="fold")  # paths are read whole, never cut
    summary.add_row("data version (DVC md5)", version)
    summary.add_row(
        "trained this run",
        f"v{result['version']} (gate passed: {result['gate_passed']}, "
        f"promoted: {result['promoted']})",
    )
    summary.add_row("champion served", f"v{serving}")
    summary.add_row("replayed predictions with feedback", str(out.get("replayed")))
    summary.add_row(
        "drift detected / degraded", f"{out.get('drift_detected')} / {out.get('degraded')}"
    )
    summary.add_row("retraining decision", str(out.get("retrain")))
    summary.add_row(
        "champion before -> after", f"v{out.get('champion_before')} -> v{out.get('champion_after')}"
    )
    summary.add_row("monitoring report", str(out.get("report")))
    console.print(summary)
    import json

    (settings.state / "demo-summary.json").write_text(
        json.dumps(
            {"data_version": version, "first": result, "served": serving, **out},
            indent=2,
            default=str,
        )
    )
    if out.get("retrain") == "failed":
        say(
            f"[red]the retraining run failed[/]: {escape(str(out.get('retrain_error')))}; "
            f"see {settings.state / 'retraining' / (spec.name + '.jsonl')}"
        )
        raise typer.Exit(1)


def registry_line(settings: Settings) -> str:
    """Where the demo's runs and versions are, and how to browse them (password masked)."""
    shown = escape(redact(settings.tracking_uri))
    return f"  [dim]MLflow: {shown} (browse: mlflow ui --backend-store-uri {shown})[/]"


def _show_online_features(settings: Settings, spec: UseCaseSpec, store: Any, top: int) -> None:
    """Step 3: what the online store serves for the busiest entities (a table each)."""
    from feature_repo.store import online_entity

    with step("step 3: online features of the busiest entities") as s:
        events = pd.read_parquet(settings.usecase_data(spec.name) / "features" / "events.parquet")
        tables = []
        for ef in spec.entity_features:
            table = Table(title=f"stored {ef.entity} features")
            for name in (ef.entity, *[a.name for a in ef.aggregates]):
                table.add_column(name, overflow="fold")
            for key in events[ef.entity].value_counts().head(top).index:
                values = online_entity(store, spec, ef.entity, str(key))
                table.add_row(
                    str(key),
                    *[
                        "missing" if values[a.name] is None else f"{values[a.name]:,.1f}"
                        for a in ef.aggregates
                    ],
                )
            tables.append(table)
        s.ok(f"{len(tables)} feature views" if tables else "no stored features in the spec")
    for table in tables:
        console.print(table)


def _champion_to_serve(settings: Settings, spec: UseCaseSpec, result: dict[str, Any]) -> str:
    """The champion the rest of the demo serves: the version just trained when it was
    promoted, else the champion already in the registry (a second run's candidate that
    does not beat it leaves it serving). With no champion at all the demo cannot go on:
    it says what a human must decide and exits non-zero."""
    from shipway.core import registry

    if result.get("promoted"):
        return str(result["version"])
    client = registry.connect(settings.tracking_uri)
    champ = registry.alias_version(client, spec.registered_model_name, registry.CHAMPION)
    why = (
        result.get("promotion_blocked") or "; ".join(result.get("failures") or []) or "gate failed"
    )
    v = f"{result['model']}@{result['version']}"
    if champ is not None:
        say(
            f"{escape(v)} was not promoted ({escape(why)}); champion v{champ.version} keeps serving"
        )
        return str(champ.version)
    say(
        f"[red]no champion to serve[/]: {escape(v)} was not promoted ({escape(why)}).\n"
        "A governed promotion is a human decision:\n"
        f"  shipway gate production-readiness {v}\n"
        f"  shipway approve {v} --by NAME --comment '...'\n"
        f"  shipway promote {v}\n"
        f"then `make demo USECASE={spec.name}` serves and monitors it."
    )
    raise typer.Exit(1)


def data_rev_for_demo(root: object) -> str:
    """HEAD when the workspace data is the committed version, else the working tree."""
    import subprocess

    proc = subprocess.run(
        ["git", "-C", str(root), "diff", "--quiet", "HEAD", "--", "dvc.lock"], check=False
    )
    return "HEAD" if proc.returncode == 0 else "workspace"
