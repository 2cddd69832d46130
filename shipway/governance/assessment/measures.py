"""What Shipway measures about readiness by itself, each figure citing what it read.

Every signal is a share in [0, 1] (``None``: could not be measured, which scores as
absent) with the file, store or URI it came from, so a board member can follow any
number on the report to its source, and the score moves when the evidence does.
Monitoring is read as files (``monitoring/prometheus/rules.yml``, the monitor's
``results.json``): governance never imports the monitoring layer.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import yaml

from shipway.core.registry import LINEAGE_TAGS
from shipway.core.settings import Settings
from shipway.core.spec import UseCaseSpec
from shipway.governance import RETENTION
from shipway.governance.assessment import (
    DATA_MATURITY,
    GOVERNANCE_AND_COMPLIANCE,
    TECHNICAL_INFRASTRUCTURE,
)
from shipway.governance.trail import trail_for

RULES = "monitoring/prometheus/rules.yml"
PIPELINE = "pipelines/compiled/training_pipeline.yaml"


@dataclass(frozen=True)
class Signal:
    """One measured fact: a share in [0, 1] (None: not measurable) and where it came from."""

    dimension: str
    name: str
    value: float | None
    detail: str
    source: str

    @property
    def score(self) -> float:
        """1 (absent) to 5 (everywhere): linear in the measured share."""
        return 1.0 if self.value is None else round(1 + 4 * self.value, 2)


def _share(part: int, whole: int) -> float | None:
    return part / whole if whole else None


def _guard(fn: Callable[[], Signal], dimension: str, name: str, source: str) -> Signal:
    """A probe that raises is a measurement too: the thing is not reachable."""
    try:
        return fn()
    except Exception as exc:  # any failure to reach a store is what this signal reports
        return Signal(dimension, name, 0.0, f"unreachable: {type(exc).__name__}: {exc}", source)


# ---- data maturity ----
def _report(settings: Settings, spec: UseCaseSpec) -> dict[str, Any] | None:
    path = settings.usecase_data(spec.name) / "reports" / "readiness.json"
    try:
        return dict(json.loads(path.read_text()))
    except (OSError, ValueError):
        return None


def readiness(settings: Settings, specs: list[UseCaseSpec]) -> list[Signal]:
    """Rule coverage (declared columns a readiness rule checked) and the rules' pass rate."""
    src = "data/<usecase>/reports/readiness.json"
    coverage, passed, total, missing = [], 0, 0, []
    for spec in specs:
        report = _report(settings, spec)
        declared = {c.name for c in spec.request_fields} | {spec.target.column}
        if report is None:
            missing.append(spec.name)
            coverage.append(0.0)
            continue
        checks = report.get("checks", [])
        checked = {c.get("column") for c in checks} & declared
        coverage.append(len(checked) / len(declared))
        total += len(checks)
        passed += sum(1 for c in checks if c.get("passed"))
    cov = sum(coverage) / len(coverage) if coverage else None
    no_report = f"; no report for {', '.join(missing)} (dvc repro validate)" if missing else ""
    return [
        Signal(
            DATA_MATURITY,
            "readiness_rule_coverage",
            cov,
            f"{cov or 0:.0%} of declared columns checked by a readiness rule{no_report}",
            src,
        ),
        Signal(
            DATA_MATURITY,
            "readiness_pass_rate",
            _share(passed, total),
            f"{passed} of {total} readiness rules passed",
            src,
        ),
    ]


def documented_data(specs: list[UseCaseSpec]) -> Signal:
    cols = [c for s in specs for c in s.request_fields]
    doc = [c for c in cols if c.description.strip()]
    return Signal(
        DATA_MATURITY,
        "documented_columns",
        _share(len(doc), len(cols)),
        f"{len(doc)} of {len(cols)} declared columns have a description",
        "usecases/<usecase>/usecase.yaml",
    )


def lineage(client: Any, specs: list[UseCaseSpec], uri: str) -> Signal:
    """Registered versions carrying every lineage tag (data md5, git commit, spec hash...)."""

    def probe() -> Signal:
        versions = [
            mv
            for s in specs
            for mv in client.search_model_versions(f"name = '{s.registered_model_name}'")
        ]
        full = [mv for mv in versions if all((mv.tags or {}).get(t) for t in LINEAGE_TAGS)]
        return Signal(
            DATA_MATURITY,
            "lineage_coverage",
            _share(len(full), len(versions)),
            f"{len(full)} of {len(versions)} registered versions carry every lineage tag",
            uri,
        )

    return _guard(probe, DATA_MATURITY, "lineage_coverage", uri)


# ---- technical infrastructure ----
def registry_reachable(client: Any, uri: str) -> Signal:
    def probe() -> Signal:
        models = client.search_registered_models(max_results=100)
        return Signal(
            TECHNICAL_INFRASTRUCTURE,
            "model_registry",
            1.0,
            f"reachable, {len(models)} registered model(s)",
            uri,
        )

    return _guard(probe, TECHNICAL_INFRASTRUCTURE, "model_registry", uri)


def pipeline(settings: Settings) -> Signal:
    """The compiled training pipeline is committed and parses as a KFP pipeline spec."""
    path = settings.root / PIPELINE
    try:
        # KFP writes the pipeline spec, then (optionally) a platform spec document
        doc = next(iter(yaml.safe_load_all(path.read_text())), None) or {}
    except (OSError, yaml.YAMLError) as exc:
        return Signal(TECHNICAL_INFRASTRUCTURE, "training_pipeline", 0.0, str(exc), PIPELINE)
    ok = isinstance(doc, dict) and "root" in doc and "deploymentSpec" in doc
    host = f"; Kubeflow host {settings.kfp_host}" if settings.kfp_host else "; runs via kfp.local"
    return Signal(
        TECHNICAL_INFRASTRUCTURE,
        "training_pipeline",
        1.0 if ok else 0.0,
        ("compiled pipeline spec present" if ok else "not a KFP pipeline spec") + host,
        PIPELINE,
    )


def feature_store(settings: Settings) -> Signal:
    """The Feast registry answers and holds feature views."""

    def probe() -> Signal:
        from feature_repo.store import feature_store as open_store
        from feature_repo.store import repo_config

        reg = repo_config(settings).registry
        path = getattr(reg, "path", reg)
        if settings.environment == "local" and not (settings.root / str(path)).exists():
            return Signal(
                TECHNICAL_INFRASTRUCTURE, "feature_store", 0.0, "no Feast registry yet", str(path)
            )
        views = open_store(settings).list_feature_views()
        return Signal(
            TECHNICAL_INFRASTRUCTURE,
            "feature_store",
            1.0 if views else 0.0,
            f"Feast registry reachable, {len(views)} feature view(s)",
            str(path),
        )

    return _guard(probe, TECHNICAL_INFRASTRUCTURE, "feature_store", "feature_store.yaml")


def alert_rules(settings: Settings) -> Signal:
    """Alerting rules in place, each with a runbook (Prometheus rules file, read as YAML)."""
    path = settings.root / RULES
    try:
        groups = (yaml.safe_load(path.read_text()) or {}).get("groups") or []
    except (OSError, yaml.YAMLError, AttributeError) as exc:
        return Signal(TECHNICAL_INFRASTRUCTURE, "alert_rules", 0.0, f"unreadable: {exc}", RULES)
    alerts = [r for g in groups for r in g.get("rules") or [] if "alert" in r]
    with_runbook = [a for a in alerts if (a.get("annotations") or {}).get("runbook_url")]
    return Signal(
        TECHNICAL_INFRASTRUCTURE,
        "alert_rules",
        _share(len(with_runbook), len(alerts)) or 0.0,
        f"{len(alerts)} alerting rules, {len(with_runbook)} with a runbook",
        RULES,
    )


def monitored(settings: Settings, specs: list[UseCaseSpec]) -> Signal:
    """Use cases the drift/performance monitor has run for (a results.json window)."""
    done = [
        s.name
        for s in specs
        if any((settings.state / "monitoring" / s.name).glob("*/results.json"))
    ]
    return Signal(
        TECHNICAL_INFRASTRUCTURE,
        "monitoring_windows",
        _share(len(done), len(specs)),
        f"{len(done)} of {len(specs)} use cases have a monitoring window"
        + (f" ({', '.join(done)})" if done else ""),
        "<state_dir>/monitoring/<usecase>/*/results.json",
    )


# ---- governance and compliance ----
def approvals(specs: list[UseCaseSpec]) -> Signal:
    ok = [s.name for s in specs if s.objective.approval.approved]
    return Signal(
        GOVERNANCE_AND_COMPLIANCE,
        "approved_objectives",
        _share(len(ok), len(specs)),
        f"{len(ok)} of {len(specs)} use cases have an approved business objective",
        "usecases/<usecase>/usecase.yaml objective.approval",
    )


def fairness(specs: list[UseCaseSpec]) -> Signal:
    """Use cases that declare sensitive attributes, so the gate bounds quality across groups."""
    ok = [s.name for s in specs if s.sensitive_attributes]
    return Signal(
        GOVERNANCE_AND_COMPLIANCE,
        "fairness_bounds",
        _share(len(ok), len(specs)),
        f"{len(ok)} of {len(specs)} use cases declare sensitive attributes the "
        "model-validation gate bounds",
        "usecases/<usecase>/usecase.yaml sensitive_attributes, acceptance",
    )


def trails(settings: Settings, specs: list[UseCaseSpec], client: Any) -> list[Signal]:
    """Retention enforced (a retention record) and the audit trail intact, per use case."""
    enforced, intact, src = [], [], "audit trail of <usecase>"
    for s in specs:
        t = trail_for(settings, s.name, client=client)
        if t.latest(RETENTION) is not None:
            enforced.append(s.name)
        if t.entries() and not t.verify():
            intact.append(s.name)
    n = len(specs)
    return [
        Signal(
            GOVERNANCE_AND_COMPLIANCE,
            "retention_enforced",
            _share(len(enforced), n),
            f"{len(enforced)} of {n} use cases have enforced their retention policy "
            "(shipway retention --apply)",
            src,
        ),
        Signal(
            GOVERNANCE_AND_COMPLIANCE,
            "audit_trail_intact",
            _share(len(intact), n),
            f"{len(intact)} of {n} use cases have a non-empty audit trail that verifies",
            src,
        ),
    ]


def measure(settings: Settings, specs: list[UseCaseSpec], client: Any) -> list[Signal]:
    """Every signal Shipway can measure itself, in dimension order."""
    uri = settings.tracking_uri
    return [
        *readiness(settings, specs),
        documented_data(specs),
        lineage(client, specs, uri),
        registry_reachable(client, uri),
        pipeline(settings),
        feature_store(settings),
        alert_rules(settings),
        monitored(settings, specs),
        approvals(specs),
        fairness(specs),
        *trails(settings, specs, client),
    ]
