"""``shipway batch``: the KFP batch-scoring pipeline, once (kfp.local) or on a schedule
(a KFP recurring run on a cluster, or the same cron run here in the foreground)."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.markup import escape

from shipway.cli.app import UsecaseOpt, UserError, app, console, context, friendly
from shipway.cli.output import announce_log, captured, pipeline_steps, say, step
from shipway.core.redaction import redact

batch_app = typer.Typer(
    help="Score a dataset with the champion through the KFP batch pipeline, once or on a schedule.",
    no_args_is_help=True,
)
app.add_typer(batch_app, name="batch")

InputOpt = Annotated[
    str,
    typer.Option(
        "--input", "-i", help="Parquet dataset or CSV files: a file, a folder or an s3:// URI."
    ),
]
OutputOpt = Annotated[
    str,
    typer.Option(
        "--output", "-o", help="Folder (or URI) of the scored Parquet dataset and its manifest."
    ),
]
KeysOpt = Annotated[
    str,
    typer.Option(
        "--key",
        help="Comma-separated input columns passed through to identify each row (default: "
        "row_key = file#row).",
    ),
]
ShardsOpt = Annotated[
    int | None, typer.Option(min=1, help="Shards the input is cut into [default: 4].")
]
ParallelismOpt = Annotated[
    int | None, typer.Option(min=1, help="Shards scored at the same time [default: 4].")
]
ChunkOpt = Annotated[
    int | None, typer.Option(min=1, help="Rows per chunk inside a shard [default: 50000].")
]


def _job(
    usecase: str, input: str, output: str, key: str, shards: int | None,
    parallelism: int | None, chunk_rows: int | None,
) -> Any:  # fmt: skip
    """The job from the options; the pipeline's defaults for sizes not given
    (``pipelines`` is imported only when a command runs: kfp is heavy)."""
    from pipelines.batchrun import BatchJob

    sizes = {"shards": shards, "parallelism": parallelism, "chunk_rows": chunk_rows}
    try:
        return BatchJob(usecase, input, output, key, **{k: v for k, v in sizes.items() if v})
    except ValueError as exc:
        raise UserError(str(exc)) from exc


def _run_once(settings: Any, job: Any) -> dict[str, Any]:
    from pipelines.batchrun import run_batch_local
    from pipelines.runner import PipelineFailed

    title = f"batch-score {job.usecase} ({job.shards} shards, kfp.local)"
    with pipeline_steps(), step(title) as s:
        try:
            with captured("mlflow"):
                manifest = run_batch_local(settings, job)
        except (PipelineFailed, ValueError, LookupError, FileNotFoundError) as exc:
            raise UserError(str(exc)) from exc
        s.ok(f"{manifest['rows']:,} rows")
    say(
        escape(
            f"scored {manifest['rows']:,} rows with {manifest['model_name']} "
            f"v{manifest['model_version']} -> {job.output_uri} (manifest _manifest.json)"
        )
    )
    return manifest


@batch_app.command("run")
@friendly
def run_cmd(
    input: InputOpt,
    output: OutputOpt,
    usecase: UsecaseOpt = None,
    key: KeysOpt = "",
    shards: ShardsOpt = None,
    parallelism: ParallelismOpt = None,
    chunk_rows: ChunkOpt = None,
) -> None:
    """Run the batch pipeline once on kfp.local: every row scored by the champion at
    start, committed atomically as a partitioned Parquet dataset plus a manifest."""
    settings, spec = context(usecase)
    job = _job(spec.name, input, output, key, shards, parallelism, chunk_rows)
    announce_log()
    _run_once(settings, job)


@batch_app.command("schedule")
@friendly
def schedule_cmd(
    cron: Annotated[
        str, typer.Option(help="Cron expression (5 fields, or 6 with seconds first), UTC.")
    ],
    input: InputOpt,
    output: OutputOpt,
    usecase: UsecaseOpt = None,
    key: KeysOpt = "",
    shards: ShardsOpt = None,
    parallelism: ParallelismOpt = None,
    chunk_rows: ChunkOpt = None,
    host: Annotated[
        str | None,
        typer.Option(help="Kubeflow Pipelines API URL (default: SHIPWAY_KFP_HOST)."),
    ] = None,
    name: Annotated[
        str,
        typer.Option(
            help="Names the schedule (recurring run <usecase>-batch-<name>, replaced when it "
            "exists)."
        ),
    ] = "",
    once: Annotated[
        bool, typer.Option("--once", help="Without a host: run once now and stop.")
    ] = False,
) -> None:
    """With a Kubeflow host: create a KFP recurring run of the batch pipeline. Without one
    (embedded): run the same pipeline here at every due time, in the foreground."""
    from pipelines.batchrun import kfp_cron, next_runs, run_on_schedule, schedule_on_cluster

    settings, spec = context(usecase)
    job = _job(spec.name, input, output, key, shards, parallelism, chunk_rows)
    try:
        cron6 = kfp_cron(cron)
    except ValueError as exc:
        raise UserError(str(exc)) from exc
    host = host or settings.kfp_host
    if host:
        try:
            job_id = schedule_on_cluster(settings, host, job, cron6, name)
        except ValueError as exc:
            raise UserError(str(exc)) from exc
        except Exception as exc:  # connection refused, auth: say which host failed
            raise UserError(f"could not create the recurring run on {redact(host)}: {exc}") from exc
        console.print(f"[green]scheduled[/] recurring run {job_id} ({cron6}) on {redact(host)}")
        return
    announce_log()
    if once:  # one run now, its error in red like `shipway batch run`
        _run_once(settings, job)
        return
    from datetime import UTC, datetime

    first = next_runs(cron6, datetime.now(UTC))[0]
    say(
        escape(
            f"schedule {cron6} (UTC) runs here; next run {first:%Y-%m-%d %H:%M:%S}; Ctrl+C stops"
        )
    )

    run_on_schedule(cron6, lambda: _run_once(settings, job))
