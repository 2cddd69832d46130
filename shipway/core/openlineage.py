"""OpenLineage run events for Shipway's jobs: the data stages, training, batch scoring.

Users see Shipway's lineage in the tools they already run (Marquez, DataHub, a data
catalog): each job run emits a START event and then COMPLETE or FAIL, with its input
and output datasets, their schema (``SchemaDatasetFacet``) and their version
(``DatasetVersionDatasetFacet``: the DVC md5 of a file or directory, the registry
version of a model). The events are built and sent with the ``openlineage-python``
client; its file transport writes them to ``<state>/openlineage/events.jsonl`` by
default, its HTTP transport posts them to a lineage server when
``SHIPWAY_OPENLINEAGE_URL`` is set (the chart's ``openlineage.url``).

Dataset names are repository-relative paths (``data/<usecase>/raw.parquet``) in the
namespace ``SHIPWAY_OPENLINEAGE_NAMESPACE`` (default ``shipway``), so the output of one
stage is, by name, the input of the next, whichever machine ran it. Models are named
``models/<registered name>/<version>`` in the namespace ``mlflow``. A lineage server that
is down never fails the job: the failure is logged once and the job goes on.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from shipway.core.settings import Settings

if TYPE_CHECKING:
    from openlineage.client import OpenLineageClient
    from openlineage.client.event_v2 import InputDataset, OutputDataset

log = logging.getLogger(__name__)

PRODUCER = "https://github.com/shipway/shipway"
MODEL_NAMESPACE = "mlflow"
EVENTS_FILE = "events.jsonl"


@dataclass(frozen=True)
class DatasetRef:
    """A dataset a job read or wrote: its name, version and columns (name, type)."""

    name: str
    version: str | None = None
    fields: Sequence[tuple[str, str]] = ()
    namespace: str | None = None  # None: the settings' namespace


@dataclass
class RunOutputs:
    """What the job body reports back: outputs known only once it has run."""

    datasets: list[DatasetRef] = field(default_factory=list)


def events_path(settings: Settings) -> Path:
    """Where the file transport writes (one JSON event per line)."""
    return settings.state / "openlineage" / EVENTS_FILE


def client(settings: Settings) -> OpenLineageClient:
    """The OpenLineage client: HTTP to ``settings.openlineage_url``, else a JSONL file."""
    from openlineage.client import OpenLineageClient
    from openlineage.client.transport.file import FileConfig, FileTransport
    from openlineage.client.transport.http import ApiKeyTokenProvider, HttpConfig, HttpTransport

    if settings.openlineage_url:
        key = settings.openlineage_api_key
        auth = ApiKeyTokenProvider({"apiKey": key.get_secret_value()}) if key else None
        config = HttpConfig(url=settings.openlineage_url, timeout=5.0)
        if auth is not None:
            config.auth = auth
        return OpenLineageClient(transport=HttpTransport(config))
    path = events_path(settings)
    path.parent.mkdir(parents=True, exist_ok=True)
    return OpenLineageClient(
        transport=FileTransport(FileConfig(log_file_path=str(path), append=True))
    )


def parquet_fields(path: Path) -> list[tuple[str, str]]:
    """Column names and Arrow types of a Parquet file (its footer only, not its rows)."""
    import pyarrow.parquet as pq

    return [(f.name, str(f.type)) for f in pq.read_schema(path)]


def dataset_name(settings: Settings, path: Path) -> str:
    """``data/<usecase>/...`` for DVC-tracked data wherever the data directory lives, a
    repository-relative path for other files of the repository, else the absolute path."""
    path = path.resolve()
    if path.is_relative_to(settings.data):
        return f"data/{path.relative_to(settings.data)}"
    if path.is_relative_to(settings.root):
        return str(path.relative_to(settings.root))
    return str(path)


def file_dataset(settings: Settings, path: Path, version: str | None = None) -> DatasetRef:
    """A file or directory as a dataset (:func:`dataset_name`); version: the given one,
    else its DVC md5 (``lineage.dvc_md5``), as dvc.lock records it."""
    from shipway.core.lineage import dvc_md5

    name = dataset_name(settings, path)
    fields = parquet_fields(path) if path.suffix == ".parquet" and path.is_file() else []
    if version is None and path.exists():
        version = dvc_md5(path)
    return DatasetRef(name, version, fields)


def model_dataset(name: str, version: str, fields: Sequence[tuple[str, str]]) -> DatasetRef:
    """A registered model version as a dataset, with the model's input columns."""
    return DatasetRef(f"models/{name}/{version}", str(version), fields, MODEL_NAMESPACE)


def _facets(ref: DatasetRef) -> dict[str, Any]:
    from openlineage.client.generated.dataset_version_dataset import DatasetVersionDatasetFacet
    from openlineage.client.generated.schema_dataset import (
        SchemaDatasetFacet,
        SchemaDatasetFacetFields,
    )

    facets: dict[str, Any] = {}
    if ref.fields:
        facets["schema"] = SchemaDatasetFacet(
            fields=[
                SchemaDatasetFacetFields(name=n, type=t, ordinal_position=i)
                for i, (n, t) in enumerate(ref.fields, start=1)
            ]
        )
    if ref.version:
        facets["version"] = DatasetVersionDatasetFacet(datasetVersion=ref.version)
    return facets


def _inputs(settings: Settings, refs: Sequence[DatasetRef]) -> list[InputDataset]:
    from openlineage.client.event_v2 import InputDataset

    ns = settings.openlineage_namespace
    return [InputDataset(r.namespace or ns, r.name, facets=_facets(r)) for r in refs]


def _outputs(settings: Settings, refs: Sequence[DatasetRef]) -> list[OutputDataset]:
    from openlineage.client.event_v2 import OutputDataset

    ns = settings.openlineage_namespace
    return [OutputDataset(r.namespace or ns, r.name, facets=_facets(r)) for r in refs]


def run_id_for(key: str) -> str:
    """A stable run id for an external run key (e.g. a KFP run id), so every step of one
    pipeline run reports the same OpenLineage run; a fresh UUIDv7 when there is none."""
    if key:
        return str(uuid.uuid5(uuid.NAMESPACE_URL, f"shipway:{key}"))
    from openlineage.client.uuid import generate_new_uuid

    return str(generate_new_uuid())


def _emit(
    settings: Settings,
    state: str,
    job: str,
    run_id: str,
    inputs: Sequence[DatasetRef],
    outputs: Sequence[DatasetRef],
    error: BaseException | None = None,
) -> None:
    from openlineage.client.event_v2 import Job, Run, RunEvent, RunState
    from openlineage.client.generated.error_message_run import ErrorMessageRunFacet
    from openlineage.client.generated.job_type_job import JobTypeJobFacet

    run_facets: dict[str, Any] = {}
    if error is not None:
        run_facets["errorMessage"] = ErrorMessageRunFacet(
            message=f"{type(error).__name__}: {error}"[:2000], programmingLanguage="python"
        )
    event = RunEvent(
        eventType=RunState[state],
        eventTime=datetime.now(UTC).isoformat(),
        run=Run(runId=run_id, facets=run_facets),
        job=Job(
            namespace=settings.openlineage_namespace,
            name=job,
            facets={
                "jobType": JobTypeJobFacet(
                    processingType="BATCH", integration="SHIPWAY", jobType="JOB"
                )
            },
        ),
        producer=PRODUCER,
        inputs=_inputs(settings, inputs),
        outputs=_outputs(settings, outputs),
    )
    try:
        client(settings).emit(event)
    except Exception as exc:  # a lineage server that is down never fails the job
        log.warning(
            "OpenLineage %s event of %s not sent (%s); the job goes on",
            state,
            job,
            type(exc).__name__,
        )


def start(settings: Settings, job: str, inputs: Sequence[DatasetRef], *, run_key: str) -> None:
    """START of a run whose end another process reports (:func:`complete`): a pipeline
    whose first and last steps are separate pods, tied by ``run_key``."""
    _emit(settings, "START", job, run_id_for(run_key), inputs, [])


def complete(
    settings: Settings,
    job: str,
    inputs: Sequence[DatasetRef],
    outputs: Sequence[DatasetRef],
    *,
    run_key: str,
) -> None:
    """COMPLETE of the run :func:`start` began under the same ``run_key``."""
    _emit(settings, "COMPLETE", job, run_id_for(run_key), inputs, outputs)


@contextmanager
def lineage_run(
    settings: Settings,
    job: str,
    inputs: Sequence[DatasetRef],
    *,
    run_key: str = "",
) -> Iterator[RunOutputs]:
    """Emit START, run the body, then COMPLETE with the outputs it reported (FAIL with
    the error, re-raised, if it raised). ``run_key`` ties the events of several
    processes to one run (``run_id_for``)."""
    run_id = run_id_for(run_key)
    _emit(settings, "START", job, run_id, inputs, [])
    outputs = RunOutputs()
    try:
        yield outputs
    except BaseException as exc:
        _emit(settings, "FAIL", job, run_id, inputs, outputs.datasets, error=exc)
        raise
    _emit(settings, "COMPLETE", job, run_id, inputs, outputs.datasets)
