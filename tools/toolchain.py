"""The chart and Dockerfile checking tools, installed on demand for the tests.

``ensure()`` runs tools/install-tools.sh (idempotent: a no-op in milliseconds once done) and
returns the paths of helm, kubectl, checkov, kubernetes-validate and hadolint under .tools/.
Used by tests/integration/test_chart.py and test_dockerfiles.py through
``tests.conftest.chart_tools()``, which turns a ``ToolchainError`` into a skip on a
developer machine and a failure under CI=true (the suite's one CI-aware rule).
"""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TOOLS_DIR = Path(os.environ.get("SHIPWAY_TOOLS_DIR", ROOT / ".tools"))
INSTALL_SCRIPT = ROOT / "tools" / "install-tools.sh"


class ToolchainError(RuntimeError):
    """A tool could not be installed or does not run on this machine."""


@dataclass(frozen=True)
class Toolchain:
    helm: Path
    kubectl: Path
    checkov: Path
    kubernetes_validate: Path
    hadolint: Path

    def env(self, **extra: str) -> dict[str, str]:
        """The environment for tool subprocesses: .tools/bin first on PATH (checkov calls
        `helm` by name), no proxy to an outside service needed."""
        env = dict(os.environ)
        env["PATH"] = f"{self.helm.parent}{os.pathsep}{env.get('PATH', '')}"
        env.update(extra)
        return env


def ensure(timeout: float = 1800) -> Toolchain:
    """Install the tools if needed and return where they are."""
    try:
        proc = subprocess.run(
            ["bash", str(INSTALL_SCRIPT)],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as err:
        raise ToolchainError(f"tools/install-tools.sh could not run: {err}") from err
    if proc.returncode != 0:
        tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-15:])
        raise ToolchainError(f"tools/install-tools.sh failed ({proc.returncode}):\n{tail}")
    venv_bin = TOOLS_DIR / "venv" / "bin"
    tools = Toolchain(
        helm=TOOLS_DIR / "bin" / "helm",
        kubectl=TOOLS_DIR / "bin" / "kubectl",
        checkov=venv_bin / "checkov",
        kubernetes_validate=venv_bin / "kubernetes-validate",
        hadolint=venv_bin / "hadolint",
    )
    missing = [str(p) for p in vars(tools).values() if not os.access(p, os.X_OK)]
    if missing:
        raise ToolchainError(f"tools missing after install: {', '.join(missing)}")
    return tools
