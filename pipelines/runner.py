"""Run the training pipeline locally (kfp.local) or send it to Kubeflow Pipelines."""

from __future__ import annotations

import contextlib
import io
import json
import logging
import re
import sys
import tempfile
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from contextvars import ContextVar
from pathlib import Path
from typing import Any, Protocol, TextIO
from urllib.parse import urlsplit

from pipelines.training import (
    CLUSTER_PARAMETERS,
    COMPILED,
    PIPELINE_NAME,
    build_pipeline,
    compile_pipeline,
)
from shipway.core.lineage import git_commit
from shipway.core.redaction import redact
from shipway.core.settings import Settings

log = logging.getLogger(__name__)


def cluster_tracking_uri(settings: Settings) -> str:
    """The MLflow server a cluster run's steps use: the configured one, never the local
    SQLite default (an empty or local URI would make the steps track into their own pod)."""
    uri = settings.mlflow_tracking_uri or ""
    if "://" not in uri or uri.startswith(("sqlite:", "file:")):
        raise ValueError(
            "a Kubeflow run needs the MLflow server its pods reach: set "
            "SHIPWAY_MLFLOW_TRACKING_URI (the chart sets it in its pods), "
            f"got {redact(uri) or 'nothing (local SQLite default)'}"
        )
    if urlsplit(uri).username is not None:
        raise ValueError(
            "the MLflow tracking URI carries credentials, and a Kubeflow run's parameters are "
            "shown in the UI and kept in its records: put them in MLFLOW_TRACKING_USERNAME and "
            "MLFLOW_TRACKING_PASSWORD (the chart's pods get them from Secrets) and drop them "
            f"from SHIPWAY_MLFLOW_TRACKING_URI (the one for host {urlsplit(uri).hostname})"
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
    parts = urlsplit(settings.git_repo_url)
    if parts.password is not None or (
        parts.scheme in ("http", "https") and parts.username is not None
    ):
        raise ValueError(
            "SHIPWAY_GIT_REPO_URL carries credentials, and a Kubeflow run's parameters are "
            "shown in the UI and kept in its records: use a repository the pipeline's pods "
            f"read without them (or an ssh:// URL with a mounted key); host {parts.hostname}"
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
        "dvc_remote": settings.dvc_remote_url or "",  # empty: the repository's default remote
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


class TaskReporter(Protocol):
    """Where a kfp.local run's output goes: every line it prints (its own log lines, each
    component's streamed output, warnings), and the start and end of each component,
    named by its display name. The CLI shows one line per component and logs the rest."""

    def output(self, line: str) -> None: ...

    def pipeline_started(self, name: str, tasks: int) -> None: ...

    def task_started(self, task: str) -> None: ...

    def task_finished(self, task: str, ok: bool, seconds: float) -> None: ...


class PassThrough:
    """The reporter when none is set: every line to ``out``, as kfp.local prints it."""

    def __init__(self, out: TextIO) -> None:
        self.out = out

    def output(self, line: str) -> None:
        self.out.write(line + "\n")

    def pipeline_started(self, name: str, tasks: int) -> None:
        pass

    def task_started(self, task: str) -> None:
        pass

    def task_finished(self, task: str, ok: bool, seconds: float) -> None:
        pass


_reporter: ContextVar[TaskReporter | None] = ContextVar("shipway_kfp_reporter", default=None)


@contextlib.contextmanager
def reporting(reporter: TaskReporter) -> Iterator[None]:
    """Every ``run_local`` inside the block reports to ``reporter``, also when it is
    called deep inside other code (the retraining trigger), without passing it down."""
    token = _reporter.set(reporter)
    try:
        yield
    finally:
        _reporter.reset(token)


class KfpOutput(io.TextIOBase):
    """The stream kfp.local prints into during a run, split into lines for the reporter.

    kfp.local logs "Executing task 'x'" and "Task 'x' finished with status ..." around
    each component: those become ``task_started``/``task_finished`` with the component's
    display name and time. It reports only "Inner task failed: 'register-model'"; the
    exception that failed the component is in the component's output, so the last lines
    are kept for :func:`failure_cause`.
    """

    STARTED = re.compile(r"Executing task '([^']+)'")
    FINISHED = re.compile(r"Task '([^']+)' finished with status (\w+)")

    def __init__(
        self, reporter: TaskReporter, titles: dict[str, str] | None = None, keep: int = 400
    ) -> None:
        self.reporter = reporter
        self.titles = titles or {}
        self.lines: deque[str] = deque(maxlen=keep)
        self.running: dict[str, float] = {}
        self.reporter_error: Exception | None = None
        self._partial = ""

    def write(self, s: str) -> int:
        *done, self._partial = (self._partial + s).split("\n")
        for line in done:
            self._line(ANSI.sub("", line))
        return len(s)

    def _line(self, line: str) -> None:
        self.lines.append(line)
        self._report("output", line)
        if started := self.STARTED.search(line):
            task = started.group(1)
            self.running[task] = time.monotonic()
            self._report("task_started", self.titles.get(task, task))
        elif finished := self.FINISHED.search(line):
            task, status = finished.groups()
            self._finish(task, status == "SUCCESS")

    def _finish(self, task: str, ok: bool) -> None:
        began = self.running.pop(task, time.monotonic())
        self._report("task_finished", self.titles.get(task, task), ok, time.monotonic() - began)

    def _report(self, event: str, *args: Any) -> None:
        """Call the reporter; a reporter that fails is set aside (``reporter_error``), so a
        display problem never fails a training run that kfp.local streams through here."""
        if self.reporter_error is not None:
            return
        try:
            getattr(self.reporter, event)(*args)
        except Exception as exc:
            self.reporter_error = exc

    def close(self) -> None:
        """Flush a last partial line; a component still running has failed (kfp.local
        raises on a failed component instead of logging its end)."""
        if self._partial:
            self._line(ANSI.sub("", self._partial))
            self._partial = ""
        for task in list(self.running):
            self._finish(task, ok=False)
        super().close()


_EXCEPTION_LINE = re.compile(r"^(?:\w+\.)*[A-Z]\w*(?::(?:\s.*)?)?$")
"""What ends a traceback: ``ValueError: ...``, ``pkg.mod.Failed: ...``, a bare ``KeyError``
(a CamelCase, possibly dotted name), never a source line such as ``self.flush()``."""


def failure_cause(lines: Iterable[str]) -> str:
    """The exception line that ends the last Python traceback in ``lines`` ('' if none).

    With chained exceptions the last traceback is the outermost one, which the steps
    raise with the step's name and the original cause in its message. What logging prints
    for its own failure ("--- Logging error ---" up to its "Arguments:" line: kfp.local's
    parallel tasks can log into a stream another task already closed) is not a cause,
    however many tracebacks it chains. Re-indented output can put source lines at the
    header's indent, so only a line shaped like an exception ends a traceback.
    """
    cause, indent = "", -1  # indent: of the open traceback's header (kfp.local adds some)
    logging_error = False
    for raw in lines:
        line = ANSI.sub("", raw).rstrip()
        text = line.lstrip()
        if text == "--- Logging error ---":
            logging_error, indent = True, -1
        elif logging_error:
            logging_error = not text.startswith("Arguments:")  # the block's last line
        elif text.startswith("Traceback (most recent call last)"):
            indent = len(line) - len(text)
        elif indent >= 0 and len(line) - len(text) == indent and _EXCEPTION_LINE.match(text):
            cause, indent = text, -1
    return cause


def task_titles(pipeline: Any) -> dict[str, str]:
    """kfp task name -> display name (what the Kubeflow UI shows for the component)."""
    tasks = pipeline.pipeline_spec.root.dag.tasks
    return {name: t.task_info.name or name for name, t in tasks.items()}


def run_local(
    settings: Settings,
    usecase: str,
    data_rev: str = "HEAD",
    as_of: str = "",
    reporter: TaskReporter | None = None,
) -> dict[str, Any]:
    """Run every component through kfp.local in this virtualenv; return the promotion result.

    Everything kfp.local prints goes to ``reporter`` (else the one set by
    :func:`reporting`, else through to stdout).
    """
    arguments = pipeline_arguments(settings, usecase, data_rev, cluster=False, as_of=as_of)
    pipeline = build_pipeline(settings.image)
    artifact = run_pipeline_local(settings, pipeline, PIPELINE_NAME, arguments, reporter)
    return dict(json.loads(Path(artifact.path).read_text()))


def run_package_local(
    settings: Settings, package: Path, reporter: TaskReporter | None = None
) -> dict[str, Any]:
    """Run a compiled pipeline package on kfp.local with no arguments, as "Create run" in
    the Kubeflow UI does: every parameter takes the default baked into the package
    (``pipelines.packaging``). Returns the promotion result."""
    from kfp.components import load_component_from_file

    pipeline = load_component_from_file(str(package))
    name = pipeline.pipeline_spec.pipeline_info.name
    artifact = run_pipeline_local(settings, pipeline, name, {}, reporter)
    return dict(json.loads(Path(artifact.path).read_text()))


def run_pipeline_local(
    settings: Settings,
    pipeline: Any,
    name: str,
    arguments: dict[str, Any],
    reporter: TaskReporter | None = None,
) -> Any:
    """Run ``pipeline`` through kfp.local in this virtualenv; its output artifact.

    Everything kfp.local prints goes to ``reporter`` (else the one set by
    :func:`reporting`, else through to stdout); a failed run raises
    :class:`PipelineFailed` naming the task and the cause it raised.
    """
    from kfp import local

    settings.export_env()
    root = settings.state / "kfp"
    root.mkdir(parents=True, exist_ok=True)
    local.init(
        runner=local.SubprocessRunner(use_venv=False), pipeline_root=str(root), raise_on_error=True
    )
    titles = task_titles(pipeline)
    report = reporter or _reporter.get() or PassThrough(sys.stdout)
    report.pipeline_started(name, len(titles))
    out = KfpOutput(report, titles)
    try:
        # kfp.local prints its log and each component's output; its warnings go to stderr
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
            task = pipeline(**arguments)
    except RuntimeError as exc:
        out.close()
        cause = failure_cause(out.lines)
        raise PipelineFailed(
            ANSI.sub("", str(exc)) + (f" Cause: {cause}" if cause else "")
        ) from exc
    finally:
        out.close()
        if out.reporter_error is not None:
            err = out.reporter_error
            log.warning(
                "kfp output reporter failed, the run went on without it: %r", err, exc_info=err
            )
    return task.output


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
    tasks.fetch_task(args["repo"], data_rev, usecase, w / "data", args["dvc_remote"])
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


def retraining_runner(settings: Settings) -> Callable[..., dict[str, Any]]:
    """What a retraining trigger runs (``monitoring.trigger.RetrainTrigger``'s runner):
    the training pipeline on kfp.local here, or a submission to ``settings.kfp_host``."""
    host = settings.kfp_host
    if host:

        def submit_run(s: Settings, usecase: str, rev: str, **kw: Any) -> dict[str, Any]:
            run_id = submit(s, host, usecase, rev, **kw)
            return {"submitted": True, "host": redact(host), "kfp_run_id": run_id}

        return submit_run
    return run_local


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


def upload(
    host: str, package: Path, version: str, name: str = PIPELINE_NAME, description: str = ""
) -> str:
    """Upload the package as version ``version`` of pipeline ``name`` (created first when
    missing); a version of that name already there is kept, so an upgrade that changes
    nothing succeeds. Returns the pipeline or version id."""
    import kfp

    client = kfp.Client(host=host)
    pid = client.get_pipeline_id(name)
    if pid is None:
        p = client.upload_pipeline(
            str(package), pipeline_name=name, description=description or None
        )
        return str(p.pipeline_id)
    # the filter get_pipeline_id uses, on the version's display name
    same = {"predicates": [{"operation": 1, "key": "display_name", "stringValue": version}]}
    found = client.list_pipeline_versions(pid, filter=json.dumps(same)).pipeline_versions
    if found:
        return str(found[0].pipeline_version_id)
    v = client.upload_pipeline_version(
        str(package),
        pipeline_version_name=version,
        pipeline_id=pid,
        description=description or None,
    )
    return str(v.pipeline_version_id)
