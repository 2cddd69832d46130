"""Collecting the portfolio from the evidence that already exists: the spec, git, the
registry and the gate records its versions link (the serving cost included), the
data-readiness report and the monitor's last results."""

from __future__ import annotations

import json
import subprocess
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from shipway.core.evidence import verify
from shipway.core.settings import Settings
from shipway.core.spec import SpecError, UseCaseSpec
from shipway.core.usecases import list_usecases, load_usecase
from shipway.governance import cost
from shipway.governance.portfolio.model import GATES, Cost, Drift, GateState, Kpi, UseCaseStatus


def spec_first_commit(root: Path, spec_file: Path) -> datetime | None:
    """Author date of the commit that added the spec (None: not committed, or no git)."""
    try:
        rel = spec_file.resolve().relative_to(root.resolve())
        out = subprocess.run(
            ["git", "-C", str(root), "log", "--diff-filter=A", "--format=%aI", "--", str(rel)],
            capture_output=True,
            text=True,
            check=False,
            timeout=30,
        )
    except (ValueError, OSError, subprocess.SubprocessError):
        return None
    lines = [ln for ln in out.stdout.splitlines() if ln.strip()]
    return datetime.fromisoformat(lines[-1]) if out.returncode == 0 and lines else None


def last_drift(settings: Settings, usecase: str) -> Drift | None:
    """The newest monitoring window's results (window folders sort by their end time)."""
    base = settings.state / "monitoring" / usecase
    for path in sorted(base.glob("*/results.json"), reverse=True):
        try:
            d = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        drift = d.get("drift") or {}
        return Drift(
            outcome=str(d.get("outcome", "unknown")),
            share=drift.get("share"),
            threshold=drift.get("threshold"),
            window_end=str((d.get("window") or {}).get("end", path.parent.name)),
            path=str(path),
        )
    return None


def readiness_gate(settings: Settings, usecase: str) -> GateState:
    """The data-readiness report the DVC validate stage wrote for the current data."""
    path = settings.usecase_data(usecase) / "reports" / "readiness.json"
    if not path.is_file():
        return GateState("data_readiness", "missing", "no readiness report (run the data stages)")
    try:
        d = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        return GateState("data_readiness", "failed", f"unreadable report: {exc}", str(path))
    failed = [f"{c['column']} {c['rule']}" for c in d.get("checks", []) if not c.get("passed")]
    through = str(d.get("data_through") or "")[:10]
    detail = (
        f"{len(d.get('checks', []))} rules on {d.get('rows')} rows"
        + (f", data through {through}" if through else "")
        if not failed
        else "failed: " + "; ".join(failed[:3])
    )
    return GateState("data_readiness", "passed" if not failed else "failed", detail, str(path))


def approval_gate(spec: UseCaseSpec) -> GateState:
    ap = spec.objective.approval
    if ap.approved:
        return GateState("use_case_approval", "passed", f"{ap.approver}, {ap.approved_on}", "spec")
    return GateState("use_case_approval", "pending", ap.comment or "objective not approved", "spec")


def _registry(settings: Settings) -> Any | None:
    """An MLflow client, or None when the embedded registry was never created (reading
    the portfolio must not create stores)."""
    uri = settings.tracking_uri
    if uri.startswith("sqlite:///") and not Path(uri.removeprefix("sqlite:///")).is_file():
        return None
    from shipway.core import registry

    return registry.connect(uri)


def _read_record(client: Any, uri: str) -> dict[str, Any] | None:
    """A gate record behind a ``runs:/`` or file URI (None if it cannot be read)."""
    try:
        if uri.startswith("runs:/"):
            run_id, _, path = uri.removeprefix("runs:/").partition("/")
            with tempfile.TemporaryDirectory(prefix="shipway-portfolio-") as tmp:
                return dict(
                    json.loads(Path(client.download_artifacts(run_id, path, tmp)).read_text())
                )
        return dict(json.loads(Path(uri.removeprefix("file://")).read_text()))
    except Exception:  # a missing artifact is shown as such, never crashes the view
        return None


def _record_state(gate: str, record: dict[str, Any] | None, source: str) -> GateState:

    if record is None:
        return GateState(gate, "missing", "evidence not readable", source)
    if not verify(record):
        return GateState(gate, "failed", "evidence hash does not match its content", source)
    failed = [c["name"] for c in record.get("criteria", []) if not c.get("passed")]
    if record.get("passed"):
        return GateState(gate, "passed", f"{len(record.get('criteria', []))} criteria", source)
    return GateState(gate, "failed", "failed: " + ", ".join(failed[:4]), source)


def _version_gates(client: Any, mv: Any) -> tuple[dict[str, GateState], dict[str, dict[str, Any]]]:
    """Gates a registered version links: the training pipeline's ``evidence`` tag (model
    validation) and governance's ``evidence.<gate>`` tags, each record hash-verified;
    their states, and the records that verified (by gate)."""
    tags = mv.tags or {}
    links = {k.removeprefix("evidence."): v for k, v in tags.items() if k.startswith("evidence.")}
    if "model_validation" not in links and tags.get("evidence"):
        links["model_validation"] = tags["evidence"]
    records = {g: _read_record(client, uri) for g, uri in links.items()}
    out = {g: _record_state(g, records[g], uri) for g, uri in links.items()}
    verified = {g: r for g, r in records.items() if r is not None and verify(r)}
    if "model_validation" not in out and "gate_passed" in tags:
        ok = tags["gate_passed"] == "true"
        out["model_validation"] = GateState(
            "model_validation", "passed" if ok else "failed", "gate_passed tag only", "tag"
        )
    return out, verified


def serving_cost(record: dict[str, Any] | None, source: str) -> Cost | None:
    """The serving cost a (verified) production-readiness record measured, and whether it
    kept the budget the gate held it to (None: no budget was set)."""
    c = cost.recorded(record)
    if c is None:
        return None
    verdicts = [c[f"{k}_passed"] for k in ("cpu", "memory") if c.get(f"{k}_budget") is not None]
    return Cost(
        cpu_seconds_per_1k=c.get("cpu_seconds_per_1k"),
        memory_mb=c.get("rss_peak_mb"),
        within_budget=all(verdicts) if verdicts else None,
        source=source,
    )


def _first_champion(
    client: Any, name: str, versions: list[Any]
) -> tuple[str | None, datetime | None]:
    """The first version that became champion and when it was created.

    The registry step records it as a registered-model tag when the champion alias is
    first set; governance tags each champion ``champion_at``. Failing both, the current
    champion is the best available answer.
    """
    from shipway.core import registry

    by_version = {str(mv.version): mv for mv in versions}
    tags = client.get_registered_model(name).tags or {}
    first = tags.get(registry.FIRST_CHAMPION_TAG)
    if first is None:
        stamped = [mv for mv in versions if "champion_at" in (mv.tags or {})]
        if stamped:
            first = str(min(stamped, key=lambda mv: mv.tags["champion_at"]).version)
    if first is None:
        champ = registry.alias_version(client, name, registry.CHAMPION)
        first = str(champ.version) if champ is not None else None
    mv = by_version.get(first) if first is not None else None
    if mv is None or not mv.creation_timestamp:
        return first, None
    return first, datetime.fromtimestamp(mv.creation_timestamp / 1000, UTC)


def _registry_facts(client: Any, spec: UseCaseSpec, status: UseCaseStatus) -> None:
    from mlflow.exceptions import MlflowException

    from shipway.core import registry

    name = spec.registered_model_name
    try:
        versions = client.search_model_versions(f"name = '{name}'")
    except MlflowException:
        versions = []
    if not versions:
        return
    versions = sorted(versions, key=lambda mv: int(mv.version))
    status.latest = str(versions[-1].version)
    champ = registry.alias_version(client, name, registry.CHAMPION)
    chall = registry.alias_version(client, name, registry.CHALLENGER)
    status.champion = str(champ.version) if champ else None
    status.challenger = str(chall.version) if chall else None
    subject = champ or versions[-1]
    gates, records = _version_gates(client, subject)
    status.cost = serving_cost(
        records.get("production_readiness"),
        f"{'champion' if champ else 'latest'} v{subject.version}, production-readiness smoke",
    )
    status.gates = [
        gates.get(g) or next((s for s in status.gates if s.gate == g), GateState(g, "missing"))
        for g in GATES
    ]
    status.first_champion_version, status.first_champion_at = _first_champion(
        client, name, versions
    )
    metric = spec.objective.kpi_metric or spec.acceptance.metric
    value = None
    if champ is not None:
        value = client.get_run(champ.run_id).data.metrics.get(f"test_{metric}")
    status.kpi = _kpi(spec, value, f"champion v{champ.version}, test window" if champ else "")


def _kpi(spec: UseCaseSpec, value: float | None, source: str) -> Kpi:
    o = spec.objective
    return Kpi(
        name=o.kpi,
        unit=o.unit,
        baseline=o.baseline,
        target=o.target,
        direction=o.direction,
        metric=o.kpi_metric or spec.acceptance.metric,
        value=value,
        source=source or "no champion yet",
    )


def status_of(settings: Settings, spec: UseCaseSpec, client: Any | None) -> UseCaseStatus:
    """The portfolio entry of one use case."""
    st = UseCaseStatus(
        name=spec.name,
        title=spec.title,
        task=spec.target.task.value,
        owner=spec.owner.email,
        risk_level=spec.risk_level.value,
        approved=spec.objective.approval.approved,
        impact=spec.portfolio.impact,
        feasibility=spec.portfolio.feasibility,
        gates=[approval_gate(spec), readiness_gate(settings, spec.name)]
        + [GateState(g, "missing") for g in GATES[2:]],
        drift=last_drift(settings, spec.name),
        kpi=_kpi(spec, None, ""),
        spec_committed_at=spec_first_commit(
            settings.root, settings.specs / spec.name / "usecase.yaml"
        ),
    )
    if client is not None:
        _registry_facts(client, spec, st)
    return st


def collect(settings: Settings, names: list[str] | None = None) -> list[UseCaseStatus]:
    """Every use case (or ``names``); a spec that fails to load is listed with its error."""

    client = _registry(settings)
    out = []
    for name in names or list_usecases(settings):
        try:
            spec = load_usecase(name, settings)
        except SpecError as exc:
            out.append(UseCaseStatus(name=name, error=str(exc).splitlines()[0]))
            continue
        out.append(status_of(settings, spec, client))
    return out
