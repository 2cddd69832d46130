"""A generated ``prometheus.yml`` for Shipway, and a real Prometheus server to run it.

:class:`PrometheusConfig` describes what to scrape (the prediction service, the monitor,
the retraining trigger) and which rule files to load; :meth:`PrometheusConfig.to_dict` and
:meth:`PrometheusConfig.to_yaml` turn it into Prometheus' configuration format.
:func:`start_prometheus` runs the ``prometheus`` binary (Debian package ``prometheus``)
with it on a local port and temporary storage, for ``make demo`` and integration tests;
:func:`query` asks its HTTP API.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import httpx
import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator

from shipway.core.metrics_contract import DEFAULT_PORTS, Exporter

PROMETHEUS_DIR = Path(__file__).resolve().parent / "prometheus"
RULES_FILE = PROMETHEUS_DIR / "rules.yml"
INSTALL_HINT = (
    "the Prometheus server is not installed; on Debian/Ubuntu: "
    "`sudo apt-get install prometheus` (it provides /usr/bin/prometheus and promtool)"
)

# Job names; dashboards and rules never depend on them (they select on `usecase`).
SERVICE_JOB = "shipway-service"
MONITOR_JOB = "shipway-monitor"
TRIGGER_JOB = "shipway-trigger"

_DURATION = re.compile(r"^(\d+(ms|s|m|h|d|w|y))+$")
_TARGET = re.compile(r"^[A-Za-z0-9.\-\[\]:]+:\d{1,5}$")


def _local(exporter: Exporter) -> list[str]:
    return [f"localhost:{DEFAULT_PORTS[exporter]}"]


class PrometheusConfig(BaseModel):
    """What a generated prometheus.yml scrapes and evaluates."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    service_targets: list[str] = Field(
        default_factory=lambda: _local(Exporter.service),
        description="host:port of each prediction-service replica (metrics at /metrics).",
    )
    monitor_targets: list[str] = Field(
        default_factory=lambda: _local(Exporter.monitor),
        description="host:port of the drift and performance monitor's metrics endpoint.",
    )
    trigger_targets: list[str] = Field(
        default_factory=lambda: _local(Exporter.trigger),
        description="host:port of the retraining trigger's metrics endpoint.",
    )
    scrape_interval: str = Field(
        default="15s", description="How often every target is scraped (Prometheus duration)."
    )
    evaluation_interval: str | None = Field(
        default=None,
        description="How often rules are evaluated; default: the scrape interval.",
    )
    rule_files: list[Path] = Field(
        default_factory=lambda: [RULES_FILE],
        description="Rule files to load; relative paths are resolved to absolute ones.",
    )
    alertmanager_targets: list[str] = Field(
        default_factory=list,
        description="host:port of Alertmanagers that receive the alerts; none: no alerting.",
    )
    alertmanager_credentials_file: Path | None = Field(
        default=None,
        description="File with the bearer token Prometheus sends to the alertmanager targets "
        "(alerting.alertmanagers[].authorization); the retraining webhook requires one, so "
        "pointing alerts at the trigger needs its SHIPWAY_TRIGGER_TOKEN_FILE here. A file, "
        "not the token: prometheus.yml itself never holds a secret.",
    )
    external_labels: dict[str, str] = Field(
        default_factory=dict, description="Labels added to every series and alert sent out."
    )

    @field_validator("scrape_interval", "evaluation_interval")
    @classmethod
    def _duration(cls, value: str | None) -> str | None:
        if value is not None and not _DURATION.match(value):
            raise ValueError(f"{value!r} is not a Prometheus duration such as '15s' or '1m30s'")
        return value

    @field_validator(
        "service_targets", "monitor_targets", "trigger_targets", "alertmanager_targets"
    )
    @classmethod
    def _targets(cls, value: list[str]) -> list[str]:
        bad = [t for t in value if not _TARGET.match(t)]
        if bad:
            raise ValueError(f"targets must be host:port without scheme or path, got {bad}")
        return value

    def to_dict(self) -> dict[str, Any]:
        """The prometheus.yml content as a plain dict."""
        global_: dict[str, Any] = {
            "scrape_interval": self.scrape_interval,
            "evaluation_interval": self.evaluation_interval or self.scrape_interval,
        }
        if self.external_labels:
            global_["external_labels"] = dict(self.external_labels)
        jobs = (
            (SERVICE_JOB, self.service_targets),
            (MONITOR_JOB, self.monitor_targets),
            (TRIGGER_JOB, self.trigger_targets),
        )
        config: dict[str, Any] = {
            "global": global_,
            "rule_files": [str(p.resolve()) for p in self.rule_files],
            "scrape_configs": [
                {
                    "job_name": job,
                    "metrics_path": "/metrics",
                    "static_configs": [{"targets": list(targets)}],
                }
                for job, targets in jobs
                if targets
            ],
        }
        if self.alertmanager_targets:
            manager: dict[str, Any] = {"static_configs": [{"targets": self.alertmanager_targets}]}
            if self.alertmanager_credentials_file is not None:
                manager["authorization"] = {
                    "type": "Bearer",
                    "credentials_file": str(self.alertmanager_credentials_file.resolve()),
                }
            config["alerting"] = {"alertmanagers": [manager]}
        return config

    def to_yaml(self) -> str:
        """The prometheus.yml content as YAML text."""
        header = "# Generated by monitoring/prometheus_config.py; do not edit.\n"
        return header + yaml.safe_dump(self.to_dict(), sort_keys=False)


def find_prometheus() -> str | None:
    """Path of the ``prometheus`` binary on PATH, or None."""
    return shutil.which("prometheus")


class PrometheusError(RuntimeError):
    """Prometheus failed to start, or answered a query with an error."""


@dataclass
class PrometheusServer:
    """A running Prometheus server started by :func:`start_prometheus`; stop it when done."""

    process: subprocess.Popen[bytes]
    url: str
    workdir: Path
    """Holds prometheus.yml, prometheus.log and (by default) the TSDB."""
    _owns_workdir: bool = field(default=False, repr=False)

    @property
    def config_file(self) -> Path:
        return self.workdir / "prometheus.yml"

    @property
    def log_file(self) -> Path:
        return self.workdir / "prometheus.log"

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_file.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the server (SIGTERM, then SIGKILL) and remove the temporary directory."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout)
        if self._owns_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def start_prometheus(
    config: PrometheusConfig,
    port: int,
    *,
    workdir: Path | None = None,
    binary: str | None = None,
    timeout: float = 30.0,
) -> PrometheusServer:
    """Start ``prometheus`` on 127.0.0.1:``port`` with ``config`` and wait until it is ready.

    The configuration, the log and the TSDB go to ``workdir`` (default: a temporary
    directory removed by :meth:`PrometheusServer.stop`). Raises :class:`PrometheusError`
    with the end of the server's log if it exits or is not ready within ``timeout``
    seconds, and ``FileNotFoundError`` (with how to install it) if there is no binary.
    """
    exe = binary or find_prometheus()
    if exe is None:
        raise FileNotFoundError(INSTALL_HINT)
    owns = workdir is None
    wd = Path(tempfile.mkdtemp(prefix="shipway-prometheus-")) if workdir is None else workdir
    wd.mkdir(parents=True, exist_ok=True)
    (wd / "prometheus.yml").write_text(config.to_yaml())
    url = f"http://127.0.0.1:{port}"
    with (wd / "prometheus.log").open("wb") as log:
        process = subprocess.Popen(
            [
                exe,
                f"--config.file={wd / 'prometheus.yml'}",
                f"--storage.tsdb.path={wd / 'data'}",
                f"--web.listen-address=127.0.0.1:{port}",
                "--web.enable-lifecycle",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    server = PrometheusServer(process, url, wd, owns)
    try:
        _wait_ready(server, timeout)
    except BaseException:
        server.stop()
        raise
    return server


def _wait_ready(server: PrometheusServer, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    with httpx.Client(timeout=2.0) as client:
        while time.monotonic() < deadline:
            if server.process.poll() is not None:
                raise PrometheusError(
                    f"prometheus exited with {server.process.returncode}:\n{server.log_tail()}"
                )
            try:
                if client.get(f"{server.url}/-/ready").status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.2)
    raise PrometheusError(f"prometheus not ready after {timeout}s:\n{server.log_tail()}")


@dataclass(frozen=True)
class Sample:
    """One element of a query result: the series labels (with ``__name__``) and value."""

    labels: dict[str, str]
    value: float


def query(base_url: str, promql: str, *, timeout: float = 10.0) -> list[Sample]:
    """Evaluate ``promql`` now through ``base_url``'s HTTP API (instant query).

    A vector gives one :class:`Sample` per series; a scalar gives one sample without
    labels. Raises :class:`PrometheusError` if Prometheus rejects the query.
    """
    response = httpx.get(
        f"{base_url.rstrip('/')}/api/v1/query", params={"query": promql}, timeout=timeout
    )
    body = response.json()
    if body.get("status") != "success":
        raise PrometheusError(f"query {promql!r} failed: {body.get('error', response.text)}")
    data = body["data"]
    if data["resultType"] == "vector":
        return [Sample(r["metric"], float(r["value"][1])) for r in data["result"]]
    if data["resultType"] == "scalar":
        return [Sample({}, float(data["result"][1]))]
    raise PrometheusError(f"query {promql!r} gave a {data['resultType']}, not a vector")


def wait_for(
    base_url: str,
    promql: str,
    until: Callable[[list[Sample]], bool] = bool,
    *,
    timeout: float = 60.0,
    interval: float = 0.5,
) -> list[Sample]:
    """Poll ``promql`` until ``until(result)`` holds (default: non-empty); return the result."""
    deadline = time.monotonic() + timeout
    result: list[Sample] = []
    while time.monotonic() < deadline:
        result = query(base_url, promql)
        if until(result):
            return result
        time.sleep(interval)
    raise TimeoutError(f"{promql!r} did not reach the expected state in {timeout}s: {result}")
