"""The training pipeline's production-readiness step: when it runs, and what it reports.

Promotion to champion needs a passing production-readiness record of the version (the
Bento builds and answers real requests within the latency budget, the monitoring
reference and alert rules exist, a rollback target exists or this is the first model).
The pipeline therefore runs the real gate (``checks.production_readiness``: ``bentoml
build`` + ``bentoml serve`` smoke) before it may auto-promote.

The gate costs about a minute (a Bento build and a service start), so it runs only when
its verdict can matter: the model-validation gate passed, use-case approval and data
readiness passed, and the spec lets the pipeline promote without a human
(``Governance.pipeline_promotes``). Otherwise the step is skipped with the reason, and
promotion is left to ``shipway gate production-readiness`` / ``approve`` / ``promote``.

The step is a fresh process: ``start`` sets the Bento build going first, and the step
imports MLflow and opens the registry while it runs, instead of before it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from shipway.core.net import free_port
from shipway.core.settings import Settings
from shipway.core.spec import UseCaseSpec
from shipway.governance.checks import production_readiness
from shipway.governance.probes import start_build

if TYPE_CHECKING:
    from concurrent.futures import Future


@dataclass(frozen=True)
class Started:
    """The gate's Bento build, running in the background since ``at`` (monotonic)."""

    build: Future[dict[str, Any]]
    at: float


def skip_reason(spec: UseCaseSpec, registered: dict[str, Any]) -> str:
    """Why the pipeline does not run production readiness for this version ('' = run it).

    ``registered`` is the register step's result (``gate_passed``, ``governance``).
    """
    if not registered.get("gate_passed"):
        return "model validation failed: the version cannot be promoted"
    failed = sorted(g for g, ok in (registered.get("governance") or {}).items() if not ok)
    if failed:
        return f"{', '.join(failed)} failed: the version cannot be promoted"
    g = spec.governance
    if not g.pipeline_promotes(spec.risk_level):
        return (
            f"the pipeline does not promote this use case (risk level {spec.risk_level.value}, "
            f"auto_promote {g.auto_promote}): run `shipway gate production-readiness`, then "
            "`shipway approve` if required, then `shipway promote`"
        )
    return ""


def start(settings: Settings, spec: UseCaseSpec, registered: dict[str, Any]) -> Started | None:
    """Start the gate's Bento build in the background when the gate will run (None when
    ``skip_reason`` skips it); needs neither the registry nor MLflow."""

    if skip_reason(spec, registered):
        return None
    at = time.monotonic()
    return Started(start_build(settings, spec), at)


def pipeline_readiness(
    settings: Settings,
    client: Any,
    spec: UseCaseSpec,
    mv: Any,
    registered: dict[str, Any],
    started: Started | None = None,
) -> dict[str, Any]:
    """Run the production-readiness gate on the freshly registered version when it can
    matter (see ``skip_reason``); the record is appended to the trail and linked.

    ``started``: what ``start`` began for this version (the build then is not run again,
    and the gate's seconds count from the build's start)."""

    reason = skip_reason(spec, registered)
    if reason:
        return {"ran": False, "passed": None, "skipped": reason, "summary": f"skipped: {reason}"}
    t0 = started.at if started is not None else time.monotonic()
    build = started.build if started is not None else None
    record, uri = production_readiness(settings, client, spec, mv, free_port(), build)
    seconds = round(time.monotonic() - t0, 1)
    failures = [c.summary() for c in record.failures]
    return {
        "ran": True,
        "passed": record.passed,
        "uri": uri,
        "seconds": seconds,
        "failures": failures,
        "summary": f"ran in {seconds}s: "
        + ("passed" if record.passed else "FAILED: " + "; ".join(failures)),
    }
