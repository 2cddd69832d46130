"""Run the training pipeline locally (kfp.local) or send it to Kubeflow Pipelines."""

from __future__ import annotations

import contextlib
import io
import json
import logging
import re
import sys
import tempfile
from collections import deque
from collections.abc import Iterable
from pathlib import Path
from typing import Any, TextIO

from pipelines.training import (
    CLUSTER_PARAMETERS,
    COMPILED,
    PIPELINE_NAME,
    build_pipeline,
    compile_pipeline,
)
from shipway.lineage import git_commit
from shipway.settings import Settings

log = logging.getLogger(__name__)


def cluster_tracking_uri(settings: Settings) -> str:
    """The MLflow server a cluster run's steps use: the configured one, never the local
    SQLite default (an empty or local URI would make the steps track into their own pod)."""
    uri = settings.mlflow_tracking_uri or ""
    if "://" not in uri or uri.startswith(("sqlite:", "file:")):
        raise ValueError(
            "a Kubeflow run needs the MLflow server its pods reach: set "
            "SHIPWAY_MLFLOW_TRACKING_URI (the chart sets it in its pods), "
            f"got {uri or 'nothing (local SQLite default)'}"
        )
    return uri


def cluster_repo(settings: Settings) -> str:
    """The git URL a cluster run's fetch step reads the data version from: the image holds
    the code but no history, so ``data_rev`` can only be resolved in the repository."""
    if not settings.git_repo_url:
        raise ValueError(
            "a Kubeflow run fetches its data version from the project's git repository: set "
            "SHIPWAY_GIT_REPO_URL (the chart's pipelines.gitRepo), and SHIPWAY_DVC_REMOTE_URL "
            "when the repository's default DVC remote is not reachable from the cluster"
        )
    return settings.git_repo_url


def pipeline_arguments(
    settings: Settings, usecase: str, data_rev: str, *, cluster: bool, as_of: str = ""
) -> dict[str, str]:
    """Pipeline parameters from configuration (store URIs, repo, commit; on a cluster also
    the ConfigMap and Secrets the steps' pods take their settings and credentials from)."""
    args = {
        "usecase": usecase,
        "data_rev": data_rev,
        # on a cluster the fetch step clones the project's repository at data_rev
        "repo": cluster_repo(settings) if cluster else str(settings.root),
        "tracking_uri": cluster_tracking_uri(settings) if cluster else settings.tracking_uri,
        # on a cluster "" lets the MLflow server choose (it proxies the artifact store)
        "artifact_root": (settings.mlflow_artifact_root or "")
        if cluster
        else settings.artifact_root,
        "git_commit": git_commit(settings.root),
        "as_of": as_of,
    }
    if cluster:  # kfp.local ignores them: local steps inherit this process's environment
        args |= {param: getattr(settings, field) for param, field in CLUSTER_PARAMETERS.items()}
    return args


class PipelineFailed(RuntimeError):
    """A kfp.local run failed: the message names the failed task and the cause it raised."""


ANSI = re.compile(r"\x1b\[[0-9;]*m")


class OutputTail(io.TextIOBase):
    """Passes text through to ``out`` and keeps its last lines.

    kfp.local reports only "Inner task failed: 'register-model'"; the exception that
    failed the component is in the component's output, which it prints line by line.
    """

    def __init__(self, out: TextIO, keep: int = 400) -> None:
        self.out = out
        self.lines: deque[str] = deque(maxlen=keep)
        self._partial = ""

    def write(self, s: str) -> int:
        self.out.write(s)
        *done, self._partial = (self._partial + s).split("\n")
        self.lines.extend(done)
        return len(s)

    def flush(self) -> None:
        self.out.flush()


def failure_cause(lines: Iterable[str]) -> str:
    """The exception line that ends the last Python traceback in ``lines`` ('' if none).

    With chained exceptions the last traceback is the outermost one, which the steps
    raise with the step's name and the original cause in its message.
    """
    cause, indent = "", -1  # indent: of the open traceback's header (kfp.local adds some)
    for raw in lines:
        line = ANSI.sub("", raw).rstrip()
        text = line.lstrip()
        if text.startswith("Traceback (most recent call last)"):
            indent = len(line) - len(text)
        elif indent >= 0 and text and len(line) - len(text) == indent:
            cause, indent = text, -1
    return cause


def run_local(
    settings: Settings, usecase: str, data_rev: str = "HEAD", as_of: str = ""
) -> dict[str, Any]:
    """Run every component through kfp.local in this virtualenv; return the promotion result."""
    from kfp import local

    settings.export_env()
    root = settings.state / "kfp"
    root.mkdir(parents=True, exist_ok=True)
    local.init(
        runner=local.SubprocessRunner(use_venv=False), pipeline_root=str(root), raise_on_error=True
    )
    pipeline = build_pipeline(settings.image)
    tail = OutputTail(sys.stdout)
    try:
        with contextlib.redirect_stdout(tail):  # kfp.local prints each component's output
            task = pipeline(
                **pipeline_arguments(settings, usecase, data_rev, cluster=False, as_of=as_of)
            )
    except RuntimeError as exc:
        cause = failure_cause(tail.lines)
        raise PipelineFailed(
            ANSI.sub("", str(exc)) + (f" Cause: {cause}" if cause else "")
        ) from exc
    artifact = task.output
    return dict(json.loads(Path(artifact.path).read_text()))


def run_in_process(
    settings: Settings,
    usecase: str,
    data_rev: str = "HEAD",
    workdir: Path | None = None,
    as_of: str = "",
) -> dict[str, Any]:
    """The same steps called directly (the baseline of the kfp.local benchmark)."""
    from pipelines.steps import tasks

    settings.export_env()
    w = workdir or Path(tempfile.mkdtemp(prefix="shipway-inproc-"))
    args = pipeline_arguments(settings, usecase, data_rev, cluster=False, as_of=as_of)
    tasks.fetch_task(args["repo"], data_rev, usecase, w / "data")
    tasks.training_set_task(w / "data", w / "sets", as_of)
    tasks.train_task(w / "data", w / "sets", w / "model")
    tasks.evaluate_task(w / "data", w / "sets", w / "model", w / "eval")
    tasks.gate_task(
        w / "data", w / "sets", w / "model", w / "eval", args["tracking_uri"], w / "gate"
    )
    registered = tasks.register_task(
        w / "data",
        w / "sets",
        w / "model",
        w / "eval",
        w / "gate",
        args["tracking_uri"],
        args["artifact_root"],
        "in-process",
        args["git_commit"],
        w / "register",
    )
    ready = tasks.readiness_task(w / "data", registered, args["tracking_uri"])
    return tasks.promote_task(w / "data", registered, ready, args["tracking_uri"], "in-process")


def package_for(image: str) -> Path:
    """The committed YAML for the default image, else a fresh compile for ``image``."""
    from pipelines.training import DEFAULT_IMAGE

    if image == DEFAULT_IMAGE and COMPILED.is_file():
        return COMPILED
    out = Path(tempfile.mkdtemp(prefix="shipway-kfp-")) / "training_pipeline.yaml"
    return compile_pipeline(out, image)


def submit(
    settings: Settings,
    host: str,
    usecase: str,
    data_rev: str = "HEAD",
    experiment: str = "shipway",
    as_of: str = "",
) -> str:
    """Start a run of the compiled pipeline on a Kubeflow Pipelines endpoint; return its id."""
    import kfp

    arguments = pipeline_arguments(settings, usecase, data_rev, cluster=True, as_of=as_of)
    client = kfp.Client(host=host)
    package = package_for(settings.image)
    run = client.create_run_from_pipeline_package(
        str(package),
        arguments=arguments,
        experiment_name=experiment,
        run_name=f"{usecase}-{data_rev}",
    )
    return str(run.run_id)


def upload(host: str, package: Path, version: str) -> str:
    """Upload the package as a new version of the pipeline (creating the pipeline first)."""
    import kfp

    client = kfp.Client(host=host)
    pid = client.get_pipeline_id(PIPELINE_NAME)
    if pid is None:
        p = client.upload_pipeline(str(package), pipeline_name=PIPELINE_NAME)
        return str(p.pipeline_id)
    v = client.upload_pipeline_version(str(package), pipeline_version_name=version, pipeline_id=pid)
    return str(v.pipeline_version_id)
