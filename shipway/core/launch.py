"""How a Shipway service process is started and ended: the environment and command of
``bentoml serve``, and a handle that ends the server with all its workers.

It lives in the core because every layer that runs the service as a process needs it:
the CLI (``shipway serve``), the production-readiness gate's smoke test, the demo and
the tests. The service itself is named by its import string, never imported here.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psutil

from shipway.core.settings import Settings
from shipway.core.spec import UseCaseSpec

SERVICE = "services.prediction:PredictionService"


def service_env(
    settings: Settings, usecase: str, base: dict[str, str] | None = None, **overrides: str
) -> dict[str, str]:
    """The environment of a service process: ``base`` (default: ours), resolved locations,
    the use case, then ``overrides`` (``SHIPWAY_*`` knobs such as the challenger mode)."""
    env = dict(os.environ if base is None else base)
    env.update(
        SHIPWAY_ROOT=str(settings.root),
        SHIPWAY_STATE_DIR=str(settings.state),
        SHIPWAY_DATA_DIR=str(settings.data),
        SHIPWAY_USECASE=usecase,
        PATH=f"{venv_bin()}{os.pathsep}{env.get('PATH', '')}",
    )
    env.setdefault("BENTOML_HOME", str(settings.state / "bentoml"))
    env.setdefault("BENTOML_DO_NOT_TRACK", "true")
    env.update(overrides)
    return env


def serve_command(port: int, host: str = "127.0.0.1") -> list[str]:
    return [
        str(Path(venv_bin()) / "bentoml"),
        "serve",
        SERVICE,
        "--port",
        str(port),
        "--host",
        host,
    ]


def venv_bin() -> str:
    """Folder of this interpreter's scripts, so child tools (dvc, feast) resolve the venv's."""
    return str(Path(sys.executable).parent)


@dataclass
class ServiceHandle:
    """A running ``bentoml serve`` and its workers; ``stop()`` or ``kill()`` ends them all.

    BentoML's process manager (circus) starts every worker in a session of its own
    (``os.setsid``), so signalling the server's process group does not reach the workers:
    after a SIGKILL of the group they would live on, holding the port and the prediction
    log. Both methods therefore also signal every descendant process, found before the
    server dies (afterwards the orphans no longer point back to it).
    """

    proc: subprocess.Popen[bytes]
    url: str
    log_path: Path
    responses: list[dict[str, Any]] = field(default_factory=list)

    def workers(self) -> list[psutil.Process]:
        """Every process below the server (its workers), while the server lives.

        The server itself is left to ``proc`` (``Popen.wait`` must reap it, or its exit
        status is lost)."""
        try:
            return list(psutil.Process(self.proc.pid).children(recursive=True))
        except psutil.NoSuchProcess:
            return []

    def _signal(self, sig: int) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, sig)

    @staticmethod
    def _reap(procs: list[psutil.Process], grace: float) -> None:
        """Give ``procs`` ``grace`` seconds to exit, then SIGKILL the rest and wait."""
        _, alive = psutil.wait_procs(procs, timeout=grace)
        for p in alive:
            with contextlib.suppress(psutil.NoSuchProcess):
                p.kill()
        psutil.wait_procs(alive, timeout=30)

    def kill(self) -> list[psutil.Process]:
        """SIGKILL the server and all its workers at once, as a node or pod crash would;
        returns the workers killed (gone on return; ``proc.wait()`` gives the server's)."""
        procs = self.workers()
        self._signal(signal.SIGKILL)
        self._reap(procs, grace=0)
        return procs

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30.0) -> None:
        """Ask the server to stop (it stops its workers); SIGKILL whatever is left."""
        procs = self.workers()
        if self.proc.poll() is None:
            self._signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self._signal(signal.SIGKILL)
                self.proc.wait(10)
        self._reap(procs, grace=10)


def start_service(
    settings: Settings,
    spec: UseCaseSpec,
    port: int,
    env: dict[str, str] | None = None,
    log_path: Path | None = None,
    base_env: dict[str, str] | None = None,
) -> ServiceHandle:
    """Start ``bentoml serve`` in its own process group (``ServiceHandle`` ends its workers)."""

    log_path = log_path or settings.state / "logs" / f"service-{port}.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("wb") as out:
        proc = subprocess.Popen(
            serve_command(port),
            cwd=settings.root,
            env=service_env(settings, spec.name, base_env, **(env or {})),
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    return ServiceHandle(proc, f"http://127.0.0.1:{port}", log_path)


def wait_ready(handle: ServiceHandle, timeout: float = 180.0) -> None:
    """Poll /readyz until 200; fail with the service log's tail if it dies or times out."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if handle.proc.poll() is not None:
            raise RuntimeError(f"service exited ({handle.proc.returncode}):\n{_tail(handle)}")
        try:
            if httpx.get(f"{handle.url}/readyz", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise TimeoutError(f"service not ready after {timeout:.0f}s:\n{_tail(handle)}")


def _tail(handle: ServiceHandle, n: int = 40) -> str:
    try:
        return "\n".join(handle.log_path.read_text(errors="replace").splitlines()[-n:])
    except OSError:
        return ""
