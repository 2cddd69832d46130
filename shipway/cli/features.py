"""``shipway features``: Feast apply, materialize and online lookups."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from shipway.cli.app import UsecaseOpt, UserError, app, console, context, friendly
from shipway.core.settings import get_settings
from shipway.core.usecases import load_all

features_app = typer.Typer(help="The Feast feature store.", no_args_is_help=True)
app.add_typer(features_app, name="features")


@features_app.command("apply")
@friendly
def apply_cmd() -> None:
    """Register every use case's entities, feature views and feature services in Feast."""
    from feature_repo.store import apply, feature_store

    settings = get_settings()  # every use case: no default use case needed
    settings.export_env()
    specs = load_all(settings)
    names = apply(feature_store(settings), specs, settings.data)
    console.print(f"[green]applied[/] {len(names)} Feast objects for {len(specs)} use case(s)")


@features_app.command("materialize")
@friendly
def materialize_cmd(usecase: UsecaseOpt = None) -> None:
    """Load the newest feature values into the online store."""
    from feature_repo.store import feature_store, materialize

    settings, spec = context(usecase)
    if not (settings.usecase_data(spec.name) / "features").is_dir():
        raise UserError(f"no feature tables for {spec.name}: run `shipway data features` first")
    with console.status(f"materializing {spec.name} into the online store"):
        end = materialize(feature_store(settings), spec, settings.data)
    console.print(f"[green]materialized[/] {spec.name} up to {end.isoformat()}")


def parse_entities(pairs: list[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for p in pairs:
        if "=" not in p:
            raise UserError(f"--entity expects key=value, got {p!r}")
        k, v = p.split("=", 1)
        out[k.strip()] = v.strip()
    return out


@features_app.command("show")
@friendly
def show_cmd(
    usecase: UsecaseOpt = None,
    entity: Annotated[
        list[str] | None,
        typer.Option("--entity", "-e", help="key=value, e.g. agent=alexander_drake"),
    ] = None,
) -> None:
    """Print the online (stored) features of one entity per key."""
    from feature_repo.store import feature_store, online_entity

    settings, spec = context(usecase)
    keys = parse_entities(entity or [])
    unknown = set(keys) - {ef.entity for ef in spec.entity_features}
    if unknown or not keys:
        raise UserError(
            f"give --entity for one of {[ef.entity for ef in spec.entity_features]}"
            + (f"; unknown: {sorted(unknown)}" if unknown else "")
        )
    store = feature_store(settings)
    table = Table("entity", "key", "feature", "value")
    for ent, key in keys.items():
        for name, v in online_entity(store, spec, ent, key).items():
            shown = "missing" if v is None else f"{v:,.2f}" if isinstance(v, float) else str(v)
            table.add_row(ent, key, name, shown)
    console.print(table)
