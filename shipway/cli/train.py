"""``shipway train`` and ``shipway pipeline``: the KFP training pipeline, local or remote."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from shipway.cli.app import UsecaseOpt, UserError, app, console, context, friendly
from shipway.cli.logs import to_log
from shipway.cli.output import announce_log, captured, pipeline_steps, say, step, verbose
from shipway.core.redaction import redact

pipeline_app = typer.Typer(
    help="Compile, submit or upload the KFP training pipeline.", no_args_is_help=True
)
app.add_typer(pipeline_app, name="pipeline")

DataRev = Annotated[
    str,
    typer.Option(
        "--data-rev", help="Git revision of the DVC-tracked data ('workspace' = working tree)."
    ),
]


RESULT_FIELDS = (
    "model",
    "version",
    "gate_passed",
    "promoted",
    "data_version",
    "data_rev",
    "git_commit",
    "feature_service",
    "kfp_run_id",
    "spec_hash",
    "run_id",
)


def print_result(res: dict[str, Any]) -> None:
    """A training run's outcome in a few lines: the verdict, what blocked promotion or
    which criteria failed, and where the version came from. Every field is in the log
    file; --verbose also prints them as a table."""
    for k in RESULT_FIELDS:
        to_log(f"training result {k}: {res.get(k)}")
    if verbose():
        table = Table("field", "value", title="training result")
        for k in RESULT_FIELDS:
            table.add_row(k, str(res.get(k)))
        console.print(table)
    subject = escape(f"{res.get('model')} v{res.get('version')}")
    if res.get("promoted"):
        say(f"[green]✓ gate passed[/]: {subject} is champion")
    elif res.get("gate_passed"):
        blocked = escape(res.get("promotion_blocked") or "not promoted")
        say(f"[yellow]! gate passed[/] but {blocked}: {subject} stays challenger.")
    else:
        say(
            f"[bold red]✗ gate FAILED[/]: {subject} stays challenger; champion unchanged. Failed criteria:"
        )
        for line in res.get("failures", []):
            say(f"  [red]- {escape(str(line))}[/]")
    where = [
        ("data", res.get("data_version")),
        ("rev", res.get("data_rev")),
        ("feature service", res.get("feature_service")),
        ("MLflow run", res.get("run_id")),
        ("kfp run", res.get("kfp_run_id")),
    ]
    say("  [dim]" + escape(" · ".join(f"{k} {v}" for k, v in where if v)) + "[/]")


def training_rev(root: Path, usecase: str, data_rev: str | None) -> str:
    """The data revision to train on: ``data_rev``, or the default (HEAD, or the working
    tree when the use case is not committed, said in one line); a revision without the
    use case or its data is one line saying what to run, before any pipeline starts."""
    from pipelines.steps.fetch import RevisionError, check_rev, default_rev

    try:
        if data_rev is None:
            data_rev, why = default_rev(root, usecase)
            if why:
                say(
                    escape(
                        f"training the working tree (--data-rev workspace): {why}; commit "
                        "the spec, params.yaml and dvc.lock to train a reproducible revision"
                    )
                )
        check_rev(str(root), data_rev, usecase)
    except RevisionError as exc:
        raise UserError(str(exc)) from exc
    return data_rev


@app.command("train")
@friendly
def train_cmd(
    usecase: UsecaseOpt = None,
    data_rev: Annotated[
        str | None,
        typer.Option(
            "--data-rev",
            help="Git revision of the DVC-tracked data ('workspace' = working tree). Default: "
            "HEAD when the use case's spec, params.yaml and dvc.lock are committed, else the "
            "working tree (said in one line).",
        ),
    ] = None,
    in_process: Annotated[
        bool,
        typer.Option("--in-process", help="Call the steps directly instead of through kfp.local."),
    ] = False,
    require_pass: Annotated[
        bool, typer.Option(help="Exit with code 3 when the gate fails.")
    ] = False,
    output: Annotated[Path | None, typer.Option(help="Write the result JSON here.")] = None,
    as_of: Annotated[
        str,
        typer.Option(
            help="Move the spec's split so the test window ends on this date (YYYY-MM-DD)."
        ),
    ] = "",
) -> None:
    """Run the training pipeline on the embedded default (kfp.local, SQLite MLflow)."""
    from pipelines.runner import run_in_process, run_local

    settings, spec = context(usecase)
    data_rev = training_rev(settings.root, spec.name, data_rev)
    runner = run_in_process if in_process else run_local
    where = "in-process" if in_process else "kfp.local"
    announce_log()
    with pipeline_steps(), step(f"train {spec.name} on data {data_rev} ({where})") as s:
        with captured("mlflow"):  # what the steps print in this process (MLflow's eprint)
            res = runner(settings, spec.name, data_rev, as_of=as_of)
        s.ok(f"{res.get('model')} v{res.get('version')}")
    print_result(res)
    if output:
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_text(json.dumps(res, indent=2, default=str) + "\n")
    if require_pass and not res.get("gate_passed"):
        raise typer.Exit(3)


@pipeline_app.command("compile")
@friendly
def compile_cmd(
    output: Annotated[
        Path | None, typer.Option(help="Target file (default: committed YAML).")
    ] = None,
    image: Annotated[str | None, typer.Option(help="Component image (default: settings).")] = None,
) -> None:
    """Compile the pipelines to the YAML the Kubeflow UI uploads (with no --output: the
    training and the batch-scoring pipeline, both committed)."""
    from pipelines.batch import compile_batch_pipeline
    from pipelines.training import COMPILED, DEFAULT_IMAGE, compile_pipeline

    path = compile_pipeline(output or COMPILED, image or DEFAULT_IMAGE)
    console.print(f"[green]compiled[/] {path}")
    if output is None:
        batch = compile_batch_pipeline(image=image or DEFAULT_IMAGE)
        console.print(f"[green]compiled[/] {batch}")


@pipeline_app.command("submit")
@friendly
def submit_cmd(
    host: Annotated[
        str | None, typer.Option(help="Kubeflow Pipelines API URL.", envvar="SHIPWAY_KFP_HOST")
    ] = None,
    usecase: UsecaseOpt = None,
    data_rev: DataRev = "HEAD",
) -> None:
    """Start a run on a Kubeflow Pipelines endpoint (image and stores from configuration)."""
    from pipelines.runner import submit

    settings, spec = context(usecase)
    host = host or settings.kfp_host
    if not host:
        raise UserError("no Kubeflow host: pass --host or set SHIPWAY_KFP_HOST")
    try:
        run_id = submit(settings, host, spec.name, data_rev)
    except Exception as exc:  # connection refused, auth: say which host failed
        raise UserError(f"could not submit to {host}: {exc}") from exc
    console.print(f"[green]submitted[/] run {run_id} to {redact(host)}")


PipelineKindOpt = Annotated[
    str,
    typer.Option("--kind", help="Pipeline kind (pipelines/packaging.py KINDS): training or batch."),
]
DefaultsOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--default",
        "-D",
        help="NAME=VALUE: the default of pipeline parameter NAME in the package (repeatable). "
        "The chart passes its release's tracking URI, ConfigMap and Secret names, repository "
        "and DVC remote, so a run started from the Kubeflow UI needs nothing typed.",
    ),
]
SourceOpt = Annotated[
    Path | None,
    typer.Option("--package", help="Compiled pipeline YAML (default: the kind's committed one)."),
]


ImageOpt = Annotated[
    str | None,
    typer.Option(
        "--image", help="Container image of the steps (default: the package's, the chart's tag)."
    ),
]


def parse_defaults(pairs: list[str]) -> dict[str, str]:
    """``NAME=VALUE`` pairs; a value may be empty (``repo=``) and may contain ``=``."""
    out: dict[str, str] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name.strip():
            raise UserError(f"--default expects NAME=VALUE, got {pair.split('=', 1)[0]!r}")
        if name.strip() in out:
            raise UserError(f"--default {name.strip()} given twice")
        out[name.strip()] = value
    return out


def build_package(
    usecase: str,
    kind: str,
    defaults: list[str] | None,
    source: Path | None,
    out: Path,
    image: str | None = None,
) -> Path:
    """The use case's package of ``kind`` with the defaults baked in, written to ``out``."""
    from pipelines.packaging import PackagingError, package

    try:
        return package(kind, usecase, parse_defaults(defaults or []), out, source, image)
    except PackagingError as exc:
        raise UserError(str(exc)) from exc


@pipeline_app.command("package")
@friendly
def package_cmd(
    output: Annotated[Path, typer.Option("--output", "-o", help="Target file.")],
    usecase: UsecaseOpt = None,
    kind: PipelineKindOpt = "training",
    default: DefaultsOpt = None,
    package: SourceOpt = None,
    image: ImageOpt = None,
) -> None:
    """Write one use case's pipeline package with the given parameter defaults (what
    "Create run" in the Kubeflow UI starts from)."""
    _, spec = context(usecase)
    path = build_package(spec.name, kind, default, package, output, image)
    console.print(f"[green]packaged[/] the {escape(kind)} pipeline of {spec.name}: {path}")


@pipeline_app.command("upload")
@friendly
def upload_cmd(
    host: Annotated[
        str | None, typer.Option(help="Kubeflow Pipelines API URL.", envvar="SHIPWAY_KFP_HOST")
    ] = None,
    package: SourceOpt = None,
    version: Annotated[
        str | None, typer.Option(help="Pipeline version name (default: sha256 of the package).")
    ] = None,
    usecase: UsecaseOpt = None,
    kind: PipelineKindOpt = "training",
    default: DefaultsOpt = None,
    name: Annotated[
        str | None,
        typer.Option(help="Pipeline name in Kubeflow (default: shipway-<usecase>-<kind>)."),
    ] = None,
    image: ImageOpt = None,
) -> None:
    """Upload one use case's pipeline of a kind, its defaults baked in, as a new version of
    its own pipeline (used by the Helm Job, once per use case and kind)."""
    import hashlib
    import tempfile

    from pipelines.packaging import KINDS, pipeline_name
    from pipelines.runner import upload

    settings, spec = context(usecase)
    host = host or settings.kfp_host
    if not host:
        raise UserError("no Kubeflow host: pass --host or set SHIPWAY_KFP_HOST")
    pname = name or pipeline_name("shipway", spec.name, kind)
    with tempfile.TemporaryDirectory(prefix="shipway-upload-") as tmp:
        pkg = build_package(spec.name, kind, default, package, Path(tmp) / f"{kind}.yaml", image)
        digest = hashlib.sha256(pkg.read_bytes()).hexdigest()[:12]
        about = f"{spec.name}: {KINDS[kind].title}, this release's stores as the defaults"
        try:
            vid = upload(host, pkg, version or f"sha256-{digest}", pname, about)
        except Exception as exc:
            raise UserError(f"could not upload to {redact(host)}: {exc}") from exc
    console.print(f"[green]uploaded[/] {escape(pname)} (sha256 {digest}) as {vid}")
