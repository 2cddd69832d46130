"""The retraining trigger: decide, respect the cooldown, start the training pipeline.

A request (from an alert, the monitor or the CLI) becomes exactly one decision —
``started``, ``cooldown``, ``ignored`` or ``failed`` — appended as a JSON line to
``<state>/retraining/<usecase>.jsonl`` and counted in ``shipway_retrain_triggers_total``.
The cooldown (``spec.monitoring.retrain_cooldown_hours``, from the last start) and the
"already running" guard live in ``<usecase>.state.json``, read and written under an
exclusive ``flock``: concurrent webhook calls, threads and processes see one consistent
state, and a restart does not forget it, so alerts that repeat every minute cannot storm.

The retraining itself is the unchanged training pipeline (kfp.local locally, the
Kubeflow Pipelines API when ``settings.kfp_host`` is set) on the newest data version. Its
register step moves the champion alias only when the model-validation gate passes, so a
failing candidate never becomes champion; the outcome (promotion or rejection with the
failed criteria) is appended to the same log.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import socket
import subprocess
import threading
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry

from shipway.core.metrics_contract import counter
from shipway.core.redaction import redact
from shipway.core.settings import Settings
from shipway.core.spec import UseCaseSpec

if TYPE_CHECKING:
    from monitoring.window import WindowResult

log = logging.getLogger(__name__)
OUTCOMES = ("started", "cooldown", "ignored", "failed")
MAX_RUN = timedelta(hours=12)
"""A run marked as running by another process longer ago than this is considered dead."""
_TOKEN = uuid.uuid4().hex  # identifies this process in the state file (pids get reused)
_ACTIVE: set[str] = set()  # state files whose run is in progress in this process

Runner = Callable[..., dict[str, Any]]
"""``runner(settings, usecase, data_rev[, as_of=...])`` -> the pipeline's register result."""


def retraining_dir(settings: Settings) -> Path:
    return settings.state / "retraining"


def newest_data_rev(settings: Settings) -> str:
    """HEAD when the workspace's dvc.lock is committed, else the working tree."""
    if settings.kfp_host:
        return "HEAD"  # a cluster run fetches the repository's committed data version
    proc = subprocess.run(
        ["git", "-C", str(settings.root), "diff", "--quiet", "HEAD", "--", "dvc.lock"],
        capture_output=True,
        check=False,
    )
    return "HEAD" if proc.returncode == 0 else "workspace"


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _read(path: Path) -> dict[str, Any]:
    try:
        return dict(json.loads(path.read_text()))
    except (OSError, ValueError):
        return {}


def _running(state: dict[str, Any], key: str, now: datetime) -> bool:
    run = state.get("running")
    if not run:
        return False
    if run.get("token") == _TOKEN:
        return key in _ACTIVE
    return now - datetime.fromisoformat(run["started_at"]) < MAX_RUN


def _claim(state: dict[str, Any], path: Path, now: datetime, reason: str) -> None:
    """Mark a run as started by this process (caller holds the lock)."""
    run = {
        "token": _TOKEN,
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "started_at": now.isoformat(),
    }
    state.update(last_started_at=now.isoformat(), last_reason=reason, running=run)
    path.write_text(json.dumps(state, indent=2))
    _ACTIVE.add(str(path))


class RetrainTrigger:
    """Decisions and runs for every use case, with one counter for /metrics."""

    def __init__(
        self,
        settings: Settings,
        *,
        runner: Runner,
        registry: CollectorRegistry | None = None,
    ) -> None:
        """``runner`` starts a retraining (``pipelines.runner.retraining_runner``: kfp.local
        here, a submission on a cluster). It is passed in, never imported: monitoring and
        the pipelines are siblings that do not import each other."""
        self.settings = settings
        self.runner = runner
        self.registry = registry or CollectorRegistry()
        self.counter = counter("shipway_retrain_triggers_total", self.registry)
        self.threads: list[threading.Thread] = []

    def init_usecase(self, usecase: str) -> None:
        for outcome in OUTCOMES:
            self.counter.labels(usecase=usecase, outcome=outcome)

    def paths(self, usecase: str) -> tuple[Path, Path, Path]:
        d = retraining_dir(self.settings)
        return d / f"{usecase}.lock", d / f"{usecase}.state.json", d / f"{usecase}.jsonl"

    def _append(self, usecase: str, entry: dict[str, Any]) -> dict[str, Any]:
        """Append one JSON line (caller holds the lock) and count decisions."""
        entry = {"ts": datetime.now(UTC).isoformat(), "usecase": usecase, **entry}
        with self.paths(usecase)[2].open("a") as fh:
            fh.write(json.dumps(entry, default=str) + "\n")
        if entry.get("event") == "decision":
            self.counter.labels(usecase=usecase, outcome=entry["outcome"]).inc()
        log.info("retraining %s: %s", usecase, entry.get("outcome") or entry.get("event"))
        return entry

    def record(self, usecase: str, entry: dict[str, Any]) -> dict[str, Any]:
        """Append an entry under the lock (e.g. an ``ignored`` decision)."""
        with _locked(self.paths(usecase)[0]):
            return self._append(usecase, entry)

    def ignore(self, usecase: str, reason: str, source: str, **details: Any) -> dict[str, Any]:
        return self.record(
            usecase,
            {
                "event": "decision",
                "outcome": "ignored",
                "reason": reason,
                "source": source,
                "details": details,
            },
        )

    def request(
        self,
        spec: UseCaseSpec,
        *,
        reason: str,
        source: str,
        force: bool = False,
        wait: bool = True,
        data_rev: str | None = None,
        as_of: str = "",
        details: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Decide (under the lock) and, if started, run the pipeline (now or in a thread).

        ``force`` skips the cooldown but never starts a second concurrent run. ``as_of``
        (a date) asks the pipeline to move its split so the test window ends that day.
        Returns the decision entry; with ``wait`` it also carries the run's ``result``.
        """
        lock, state_path, _ = self.paths(spec.name)
        hours = spec.monitoring.retrain_cooldown_hours
        base = {
            "event": "decision",
            "reason": reason,
            "source": source,
            "forced": force,
            "cooldown_hours": hours,
            "details": details or {},
        }
        with _locked(lock):
            state, now = _read(state_path), datetime.now(UTC)
            last = state.get("last_started_at")
            until = datetime.fromisoformat(last) + timedelta(hours=hours) if last else None
            if _running(state, str(state_path), now):
                return self._append(
                    spec.name,
                    {**base, "outcome": "cooldown", "why": "a retraining is already running"},
                )
            if until is not None and now < until and not force:
                return self._append(
                    spec.name,
                    {**base, "outcome": "cooldown", "why": f"cooldown until {until.isoformat()}"},
                )
            try:
                rev = data_rev or newest_data_rev(self.settings)
            except Exception as exc:
                return self._append(spec.name, {**base, "outcome": "failed", "error": str(exc)})
            _claim(state, state_path, now, reason)
            started = {**base, "outcome": "started", "data_rev": rev, "as_of": as_of or None}
            decision = self._append(spec.name, started)
        kwargs = {"as_of": as_of} if as_of else {}
        if wait:
            return {**decision, "result": self._run(spec, self.runner, rev, kwargs)}
        t = threading.Thread(target=self._run, args=(spec, self.runner, rev, kwargs), daemon=True)
        t.start()
        self.threads.append(t)
        return decision

    def _run(
        self, spec: UseCaseSpec, run: Runner, rev: str, kwargs: dict[str, Any]
    ) -> dict[str, Any]:
        """Run the pipeline; log promotion, rejection or failure; clear the running mark."""
        lock, state_path, _ = self.paths(spec.name)
        try:
            res = run(self.settings, spec.name, rev, **kwargs)
            entry = {"event": _event(res), **_brief(res)}
        except Exception as exc:
            log.exception("retraining %s failed", spec.name)
            res = {"error": redact(f"{type(exc).__name__}: {exc}")}  # kept in the log file
            entry = {"event": "decision", "outcome": "failed", "data_rev": rev, **res}
        with _locked(lock):
            state = _read(state_path)
            state["running"] = None
            state_path.write_text(json.dumps(state, indent=2))
            _ACTIVE.discard(str(state_path))
            self._append(spec.name, entry)
        return res

    def join(self, timeout: float | None = None) -> None:
        """Wait for background runs (tests, graceful shutdown)."""
        for t in self.threads:
            t.join(timeout)


def _event(result: dict[str, Any]) -> str:
    if result.get("submitted"):
        return "submitted"  # the cluster pipeline's promotion step decides
    return "promotion" if result.get("promoted") else "rejected"


def _brief(result: dict[str, Any]) -> dict[str, Any]:
    keys = (
        "model",
        "version",
        "gate_passed",
        "promoted",
        "failures",
        "data_version",
        "data_rev",
        "run_id",
        "kfp_run_id",
        "host",
    )
    return {k: result[k] for k in keys if k in result}


def history(settings: Settings, usecase: str) -> list[dict[str, Any]]:
    """Every logged decision and outcome of a use case, oldest first."""
    path = retraining_dir(settings) / f"{usecase}.jsonl"
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def maybe_retrain(
    settings: Settings,
    spec: UseCaseSpec,
    result: WindowResult,
    reason: str | None = None,
    *,
    trigger: RetrainTrigger,
    force: bool = False,
    as_of: str | None = None,
) -> dict[str, Any]:
    """Retrain when a monitored window breached the spec (drift or degradation) or enough
    labelled rows arrived since the champion trained (``new_labels``, the spec's
    ``monitoring.retrain_on_new_labels``).

    The same thresholds as the alerts, applied to the monitor's own result, so the loop
    also closes without Prometheus; every reason goes through the same cooldown and log.
    A healthy window is logged as ``ignored``. ``as_of``
    defaults to the last day of an ``event_time`` window (a replay: train on the data up
    to what was monitored) and to the newest data for a ``ts`` window.
    """
    t = trigger
    accrued = result.new_labels
    reasons = (
        ("drift", result.drift_detected),
        ("degraded", result.degraded),
        ("new_labels", accrued is not None and accrued.due),
    )
    found = [w for w, hit in reasons if hit]
    details = {
        "window": result.window,
        "drift_share": result.drift.share if result.drift else None,
        "drop_ratio": result.performance.drop_ratio if result.performance else None,
        "new_labels": accrued.to_dict() if accrued else None,
        "report": str(result.report_path) if result.report_path else None,
    }
    why = reason or f"monitor window ending {result.window['end']}: {', '.join(found) or 'healthy'}"
    if not found:
        return t.ignore(spec.name, why, "monitor", **details)
    if as_of is None:
        as_of = window_last_day(result.window) if result.window["by"] == "event_time" else ""
    return t.request(spec, reason=why, source="monitor", force=force, as_of=as_of, details=details)


def window_last_day(window: dict[str, str]) -> str:
    """The last day inside [start, end), as an ISO date."""
    end = datetime.fromisoformat(window["end"])
    return (end - timedelta(microseconds=1)).date().isoformat()
