"""Run the batch-scoring pipeline: once on kfp.local, or on a cron schedule, locally (the
same pipeline, in the foreground) or as a KFP recurring run on a cluster.

A schedule is one cron expression for both: KFP's recurring runs take six fields
(seconds first); five-field expressions get ``0`` seconds. Locally the schedule is
computed by croniter and each due time runs the very pipeline ``shipway batch run`` runs.
"""

from __future__ import annotations

import logging
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pipelines.batch import (
    COMPILED,
    DEFAULT_CHUNK_ROWS,
    DEFAULT_PARALLELISM,
    DEFAULT_SHARDS,
    PIPELINE_NAME,
    build_batch_pipeline,
    compile_batch_pipeline,
)
from pipelines.runner import TaskReporter, cluster_tracking_uri, run_pipeline_local
from pipelines.training import CLUSTER_PARAMETERS, DEFAULT_IMAGE
from shipway.core.redaction import redact
from shipway.core.settings import Settings

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class BatchJob:
    """One batch-scoring job: what to score, where to, and how wide; the same for a run
    now, a local schedule and a KFP recurring run."""

    usecase: str
    input_uri: str
    output_uri: str
    key_columns: str = ""
    """Comma-separated input columns passed through to identify rows ('' = row_key)."""
    shards: int = DEFAULT_SHARDS
    parallelism: int = DEFAULT_PARALLELISM
    chunk_rows: int = DEFAULT_CHUNK_ROWS

    def __post_init__(self) -> None:
        for name in ("shards", "parallelism", "chunk_rows"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")

    def arguments(self, settings: Settings, *, cluster: bool) -> dict[str, Any]:
        """Pipeline parameters (on a cluster also the ConfigMap and Secrets the steps'
        pods take their settings and credentials from, and the MLflow server)."""
        args: dict[str, Any] = {
            "usecase": self.usecase,
            "input_uri": self.input_uri,
            "output_uri": self.output_uri,
            "key_columns": self.key_columns,
            "shards": self.shards,
            "chunk_rows": self.chunk_rows,
            "tracking_uri": cluster_tracking_uri(settings) if cluster else settings.tracking_uri,
        }
        if cluster:
            args |= {param: getattr(settings, f) for param, f in CLUSTER_PARAMETERS.items()}
        return args


def run_batch_local(
    settings: Settings, job: BatchJob, reporter: TaskReporter | None = None
) -> dict[str, Any]:
    """Run the batch pipeline on kfp.local; the committed output's manifest."""
    import json

    pipeline = build_batch_pipeline(settings.image, job.parallelism)
    args = job.arguments(settings, cluster=False)
    artifact = run_pipeline_local(settings, pipeline, PIPELINE_NAME, args, reporter)
    return dict(json.loads(Path(artifact.path).read_text()))


def kfp_cron(expression: str) -> str:
    """The six-field (seconds first) form KFP takes; a clear error on a bad expression."""
    from croniter import croniter

    fields = expression.split()
    if len(fields) == 5:
        fields = ["0", *fields]
    six = " ".join(fields)
    if len(fields) != 6 or not croniter.is_valid(six, second_at_beginning=True):
        raise ValueError(
            f"cron {expression!r} is not a valid cron expression "
            "(five fields 'min hour day month weekday', or six with seconds first)"
        )
    return six


def next_runs(expression: str, after: datetime, count: int = 1) -> list[datetime]:
    """The next ``count`` due times of the schedule after ``after`` (UTC, like KFP)."""
    from croniter import croniter

    it = croniter(kfp_cron(expression), after, second_at_beginning=True)
    return [it.get_next(datetime) for _ in range(count)]


def run_on_schedule(
    expression: str,
    job: Callable[[], Any],
    *,
    runs: int | None = None,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    sleep: Callable[[float], None] = time.sleep,
) -> int:
    """Run ``job`` at every due time of the schedule, in the foreground (``runs``: stop
    after that many). A failed run is logged and the schedule goes on, like a failed run
    of a KFP recurring run; a due time missed while a run was still going is skipped
    (KFP's ``no_catchup``). Returns the number of runs that failed."""
    failures, done = 0, 0
    due = next_runs(expression, clock())[0]
    while runs is None or done < runs:
        wait = (due - clock()).total_seconds()
        if wait > 0:
            sleep(wait)
        try:
            job()
        except Exception:
            failures += 1
            log.exception("scheduled batch run due %s failed", due.isoformat())
        done += 1
        due = next_runs(expression, max(due, clock()))[0]
    return failures


def package_for(image: str, parallelism: int) -> Path:
    """The committed YAML for the default image and parallelism, else a fresh compile."""
    if image == DEFAULT_IMAGE and parallelism == DEFAULT_PARALLELISM and COMPILED.is_file():
        return COMPILED
    out = Path(tempfile.mkdtemp(prefix="shipway-kfp-")) / "batch_pipeline.yaml"
    return compile_batch_pipeline(out, image, parallelism)


def schedule_name(usecase: str, name: str = "") -> str:
    """The recurring run's name: one schedule per (use case, name)."""
    return f"{usecase}-batch-{name or 'scoring'}"


def schedule_on_cluster(
    settings: Settings,
    host: str,
    job: BatchJob,
    expression: str,
    name: str = "",
    experiment: str = "shipway-batch",
) -> str:
    """Create the KFP recurring run of the batch pipeline, replacing one of the same name
    (so the chart's Job, run at every upgrade, keeps one schedule per entry); its id."""
    import kfp

    cron = kfp_cron(expression)
    args = job.arguments(settings, cluster=True)
    job_name = schedule_name(job.usecase, name)
    client = kfp.Client(host=host)
    exp = client.create_experiment(experiment)
    token = ""
    while True:
        page = client.list_recurring_runs(
            page_token=token, page_size=100, experiment_id=exp.experiment_id
        )
        for old in page.recurring_runs or []:
            if old.display_name == job_name:
                client.delete_recurring_run(old.recurring_run_id)
                log.info("replaced recurring run %s (%s)", old.recurring_run_id, job_name)
        token = page.next_page_token or ""
        if not token:
            break
    run = client.create_recurring_run(
        experiment_id=exp.experiment_id,
        job_name=job_name,
        description=f"Shipway batch scoring of {job.usecase}, cron {cron}",
        cron_expression=cron,
        max_concurrency=1,  # a late run never overlaps the next one on the same output
        no_catchup=True,
        params=args,
        pipeline_package_path=str(package_for(settings.image, job.parallelism)),
    )
    log.info("recurring run %s created on %s", run.recurring_run_id, redact(host))
    return str(run.recurring_run_id)
