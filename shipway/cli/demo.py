"""``shipway demo``: the whole loop on embedded defaults, step by step, on real data."""

from __future__ import annotations

from typing import Annotated

import pandas as pd
import typer
from rich.rule import Rule
from rich.table import Table

from shipway.cli.app import UsecaseOpt, app, console, context, friendly
from shipway.cli.data import run_tool


def _step(n: int, title: str) -> None:
    console.print(Rule(f"[bold]step {n}: {title}"))


@app.command("demo")
@friendly
def demo_cmd(
    usecase: UsecaseOpt = None,
    top: Annotated[int, typer.Option(help="How many agents/countries to print.")] = 3,
    loop: Annotated[
        bool, typer.Option(help="Go on after training: serve, replay, monitor, retrain.")
    ] = True,
    replay: Annotated[int, typer.Option(help="Later bookings to replay through /predict.")] = 400,
) -> None:
    """Run the main job end to end on embedded defaults and print what happened."""
    from feature_repo.store import apply, feature_store, materialize, online_entity
    from shipway.lineage import data_version
    from shipway.usecases import load_all

    settings, spec = context(usecase)
    _step(1, "data: ingest -> validate -> features (dvc repro), push to the DVC remote")
    run_tool(["dvc", "repro", "features"], settings.root)
    run_tool(["dvc", "push", "-q"], settings.root)
    version = data_version(settings.root, settings.data, spec.name)
    console.print(f"data version (DVC md5 of data/{spec.name}/features): [bold]{version}[/]")

    _step(2, "Feast: apply definitions, materialize the online store")
    store = feature_store(settings)
    names = apply(store, load_all(settings), settings.data)
    console.print(
        f"applied {len(names)} Feast objects; feature service {spec.feature_service_name}"
    )
    end = materialize(store, spec, settings.data)
    console.print(f"materialized up to {end:%Y-%m-%d}")

    _step(3, "online features of the busiest entities")
    events = pd.read_parquet(settings.usecase_data(spec.name) / "features" / "events.parquet")
    for ef in spec.entity_features:
        table = Table(
            ef.entity, *[a.name for a in ef.aggregates], title=f"stored {ef.entity} features"
        )
        for key in events[ef.entity].value_counts().head(top).index:
            values = online_entity(store, spec, ef.entity, str(key))
            table.add_row(
                str(key),
                *[
                    "missing" if values[a.name] is None else f"{values[a.name]:,.1f}"
                    for a in ef.aggregates
                ],
            )
        console.print(table)

    _step(4, "train: the KFP pipeline through kfp.local -> MLflow registry, gated")
    from pipelines.runner import run_local
    from shipway.cli.train import print_result

    rev = data_rev_for_demo(settings.root)
    console.print(
        f"training on data revision [bold]{rev}[/] (pipeline {spec.feature_service_name})"
    )
    result = run_local(settings, spec.name, rev)
    print_result(result)
    console.print(
        f"MLflow: {settings.tracking_uri}  (browse: mlflow ui --backend-store-uri "
        f"{settings.tracking_uri})"
    )
    if not result.get("promoted"):
        v = f"{result['model']}@{result['version']}"
        console.print(
            f"[yellow]no champion to serve[/]: {v} was not promoted "
            f"({result.get('promotion_blocked') or 'gate failed'}).\n"
            "A governed promotion is a human decision:\n"
            f"  shipway gate production-readiness {v}\n"
            f"  shipway approve {v} --by NAME --comment '...'\n"
            f"  shipway promote {v}\n"
            f"then `make demo USECASE={spec.name}` serves and monitors it."
        )
        return
    if not loop:
        console.print(
            f"[green]done[/]: {spec.name} data {version} -> model "
            f"{result['model']} v{result['version']}"
        )
        return
    from shipway.cli.loop import run_loop

    out = run_loop(settings, spec, console, n=replay, step=5)
    console.print(Rule("[bold]summary"))
    summary = Table("what", "result")
    summary.add_row("data version (DVC md5)", version)
    summary.add_row(
        "first champion", f"v{result['version']} (gate passed: {result['gate_passed']})"
    )
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
        json.dumps({"data_version": version, "first": result, **out}, indent=2, default=str)
    )


def data_rev_for_demo(root: object) -> str:
    """HEAD when the workspace data is the committed version, else the working tree."""
    import subprocess

    proc = subprocess.run(
        ["git", "-C", str(root), "diff", "--quiet", "HEAD", "--", "dvc.lock"], check=False
    )
    return "HEAD" if proc.returncode == 0 else "workspace"
