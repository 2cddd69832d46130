"""The portfolio: every use case side by side, from the evidence that already exists.

Nothing here decides anything; it reads what the other parts recorded and shows it, so
the view cannot disagree with them: the spec (owner, risk, approval, KPI, impact and
feasibility), the registry (champion, challenger, the model-validation evidence each
version links, the first champion), the data-readiness report of the DVC stage, the
governance records a version links (``evidence.<gate>`` tags), the monitor's last
results.json, and git (when the spec was first committed). ``shipway status`` prints it;
``write_report`` renders ``<state_dir>/portfolio/index.html`` with the impact-feasibility
matrix embedded, so the page is one self-contained file.
"""

from __future__ import annotations

import base64
import html
import json
import subprocess
import tempfile
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from shipway.core.evidence import verify
from shipway.core.io import write_text
from shipway.core.settings import Settings
from shipway.core.spec import SpecError, UseCaseSpec
from shipway.core.usecases import list_usecases, load_usecase

GATES = (
    "use_case_approval",
    "data_readiness",
    "model_validation",
    "production_readiness",
    "post_deployment_review",
)
"""The five governance gates, in the order a model meets them."""


@dataclass(frozen=True)
class GateState:
    """One gate of one use case: passed, failed, pending (waiting on a person) or missing."""

    gate: str
    state: str
    detail: str = ""
    source: str = ""


@dataclass(frozen=True)
class Kpi:
    """The business KPI: baseline, target and the champion's value on held-out data."""

    name: str
    unit: str
    baseline: float
    target: float
    direction: str
    metric: str
    value: float | None
    source: str

    def _better(self, a: float, b: float) -> bool:
        return a <= b if self.direction == "lower_is_better" else a >= b

    @property
    def met(self) -> bool | None:
        """Whether the measured value reaches the committed target (None: not measured)."""
        return None if self.value is None else self._better(self.value, self.target)

    @property
    def beats_baseline(self) -> bool | None:
        return None if self.value is None else self._better(self.value, self.baseline)


@dataclass(frozen=True)
class Drift:
    """The monitor's last window of a use case (``results.json``)."""

    outcome: str
    share: float | None
    threshold: float | None
    window_end: str
    path: str


@dataclass
class UseCaseStatus:
    """Everything the portfolio shows about one use case."""

    name: str
    title: str = ""
    task: str = ""
    owner: str = ""
    risk_level: str = ""
    approved: bool = False
    impact: int = 0
    feasibility: int = 0
    champion: str | None = None
    challenger: str | None = None
    latest: str | None = None
    gates: list[GateState] = field(default_factory=list)
    drift: Drift | None = None
    kpi: Kpi | None = None
    spec_committed_at: datetime | None = None
    first_champion_version: str | None = None
    first_champion_at: datetime | None = None
    error: str = ""

    @property
    def lead_time_days(self) -> float | None:
        """Days from the spec's first commit to its first production champion."""
        if self.spec_committed_at is None or self.first_champion_at is None:
            return None
        return (self.first_champion_at - self.spec_committed_at).total_seconds() / 86400

    @property
    def stage(self) -> str:
        """production (a champion), candidate (versions, none promoted), idea (no model)."""
        if self.error:
            return "error"
        if self.champion:
            return "production"
        return "candidate" if self.latest else "idea"

    def gate(self, name: str) -> GateState:
        return next((g for g in self.gates if g.gate == name), GateState(name, "missing"))


# ---------------------------------------------------------------- sources of facts
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


def _version_gates(client: Any, mv: Any) -> dict[str, GateState]:
    """Gates a registered version links: the training pipeline's ``evidence`` tag (model
    validation) and governance's ``evidence.<gate>`` tags, each record hash-verified."""
    tags = mv.tags or {}
    links = {k.removeprefix("evidence."): v for k, v in tags.items() if k.startswith("evidence.")}
    if "model_validation" not in links and tags.get("evidence"):
        links["model_validation"] = tags["evidence"]
    out = {g: _record_state(g, _read_record(client, uri), uri) for g, uri in links.items()}
    if "model_validation" not in out and "gate_passed" in tags:
        ok = tags["gate_passed"] == "true"
        out["model_validation"] = GateState(
            "model_validation", "passed" if ok else "failed", "gate_passed tag only", "tag"
        )
    return out


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
    gates = _version_gates(client, subject)
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


# ---------------------------------------------------------------- presentation
STATE_MARK = {"passed": "✓", "failed": "✗", "pending": "…", "missing": "–"}
STAGE_COLOR = {
    "production": "#1a7f37",
    "candidate": "#bf8700",
    "idea": "#57606a",
    "error": "#cf222e",
}


GATE_LETTER = dict(zip(GATES, "ADMPR", strict=True))
"""A(pproval) D(ata) M(odel validation) P(roduction readiness) R(eview)."""


def gate_summary(st: UseCaseStatus) -> str:
    """``A✓ D✓ M✓ P– R–``: one letter per gate, in order."""
    return " ".join(f"{GATE_LETTER[g]}{STATE_MARK.get(st.gate(g).state, '?')}" for g in GATES)


def kpi_text(k: Kpi | None, long: bool = False) -> str:
    """``0.137 / 0.15 ✓``: champion value / target, and whether the target is met."""
    if k is None:
        return "–"
    value = "n/a" if k.value is None else _num(k.value)
    mark = "" if k.met is None else (" ✓" if k.met else " ✗")
    if not long:
        return f"{value} / {_num(k.target)}{mark}"
    verdict = "" if k.met is None else (" — target met" if k.met else " — target not met")
    return (
        f"{k.metric} {value} vs target {_num(k.target)}, baseline {_num(k.baseline)} "
        f"{k.unit} ({k.source}){verdict}"
    )


def _num(v: float) -> str:
    """Four significant digits, without exponents for everyday magnitudes."""
    return f"{v:,.0f}" if abs(v) >= 1000 else f"{v:.4g}"


def drift_text(d: Drift | None) -> str:
    if d is None:
        return "no run"
    share = "" if d.share is None else f" {d.share:.0%}"
    return f"{d.outcome}{share} ({d.window_end[:10]})"


def lead_time_text(st: UseCaseStatus) -> str:
    days = st.lead_time_days
    if days is None:
        if st.spec_committed_at is None:
            return "spec not committed"
        return "no champion yet"
    if days >= 1:
        return f"{days:.1f} d"
    return f"{days * 24:.1f} h" if days * 24 >= 1 else f"{days * 1440:.0f} min"


def table(statuses: list[UseCaseStatus]) -> Any:
    """The rich table ``shipway status`` prints."""
    from rich.table import Table

    t = Table(
        title="Shipway portfolio",
        caption="gates: A approval, D data readiness, M model validation, P production "
        "readiness, R post-deployment review (✓ passed ✗ failed … pending – no record); "
        "KPI: champion / target; to prod: spec's first commit -> first champion",
    )
    t.add_column("use case", no_wrap=True)
    for col in ("stage", "risk", "champion", "gates", "last drift", "KPI", "to prod"):
        t.add_column(col)
    t.add_column("I×F", justify="right")
    for st in statuses:
        if st.error:
            t.add_row(st.name, "[red]error[/]", "", "", "", "", st.error, "", "")
            continue
        champ = f"v{st.champion}" if st.champion else "none"
        if st.latest and st.latest != st.champion:
            champ += f" (latest v{st.latest})"
        t.add_row(
            st.name,
            st.stage,
            st.risk_level,
            champ,
            gate_summary(st),
            drift_text(st.drift),
            kpi_text(st.kpi),
            lead_time_text(st),
            f"{st.impact}×{st.feasibility}",
        )
    return t


def matrix_png(statuses: list[UseCaseStatus], path: Path) -> Path:
    """Impact (y) against feasibility (x), 1-5, coloured by stage; quick wins top right."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 6))
    ax.axhline(3, color="#d0d7de", lw=1)
    ax.axvline(3, color="#d0d7de", lw=1)
    for (x, y), label in (
        ((4.5, 5.3), "quick wins"),
        ((1.5, 5.3), "strategic bets"),
        ((4.5, 0.7), "fill-ins"),
        ((1.5, 0.7), "deprioritise"),
    ):
        ax.text(x, y, label, ha="center", va="center", color="#8c959f", fontsize=9)
    seen: dict[tuple[int, int], int] = {}
    for st in statuses:
        if st.error:
            continue
        key = (st.feasibility, st.impact)
        k = seen.get(key, 0)
        seen[key] = k + 1
        x, y = st.feasibility + 0.12 * k, st.impact - 0.12 * k  # overlapping points fan out
        ax.scatter([x], [y], s=160, color=STAGE_COLOR[st.stage], zorder=3)
        ax.annotate(st.name, (x, y), xytext=(8, 6), textcoords="offset points", fontsize=9)
    for stage, color in STAGE_COLOR.items():
        if stage != "error":
            ax.scatter([], [], color=color, label=stage)
    ax.legend(loc="lower left", bbox_to_anchor=(0.0, 0.08), fontsize=8, frameon=False)
    ax.set(xlim=(0.5, 5.5), ylim=(0.4, 5.6), xlabel="feasibility (1-5)", ylabel="impact (1-5)")
    ax.set_xticks(range(1, 6))
    ax.set_yticks(range(1, 6))
    ax.set_title("Impact-feasibility matrix")
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100, bbox_inches="tight")
    plt.close(fig)
    return path


def render_html(statuses: list[UseCaseStatus], png: bytes, generated_at: datetime) -> str:
    """One self-contained page: summary table, per-use-case gates, the matrix."""
    esc = html.escape
    rows = []
    for st in statuses:
        if st.error:
            rows.append(
                f"<tr><td>{esc(st.name)}</td><td colspan=8 class=failed>{esc(st.error)}</td></tr>"
            )
            continue
        cells = [
            f"<b>{esc(st.name)}</b><br><small>{esc(st.title)} · {esc(st.owner)}</small>",
            f"<span style='color:{STAGE_COLOR[st.stage]}'>{st.stage}</span>",
            esc(st.risk_level),
            f"v{esc(st.champion)}" if st.champion else "none",
            "".join(
                f"<span class={st.gate(g).state} title='{esc(g)}: {esc(st.gate(g).detail)}'>"
                f"{esc(g.replace('_', ' '))}: {st.gate(g).state}</span><br>"
                for g in GATES
            ),
            esc(drift_text(st.drift)),
            esc(kpi_text(st.kpi, long=True))
            + (f"<br><small>{esc(st.kpi.name)}</small>" if st.kpi else ""),
            esc(lead_time_text(st)),
            f"{st.impact} × {st.feasibility}",
        ]
        rows.append("<tr>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
    details = "".join(
        f"<h3>{esc(st.name)}</h3><ul>"
        + "".join(
            f"<li class={g.state}>{esc(g.gate)}: {g.state}"
            + (f" — {esc(g.detail)}" if g.detail else "")
            + "</li>"
            for g in st.gates
        )
        + "</ul>"
        for st in statuses
        if not st.error
    )
    img = base64.b64encode(png).decode()
    head = "".join(
        f"<th>{h}</th>"
        for h in (
            "use case",
            "stage",
            "risk",
            "champion",
            "gates",
            "last drift",
            "business KPI",
            "spec commit → first champion",
            "impact × feasibility",
        )
    )
    return f"""<!doctype html><html><head><meta charset="utf-8"><title>Shipway portfolio</title>
<style>body{{font-family:sans-serif;margin:2em}}table{{border-collapse:collapse}}
td,th{{border:1px solid #d0d7de;padding:6px 10px;vertical-align:top;text-align:left}}
.passed{{color:#1a7f37}}.failed{{color:#cf222e}}.pending{{color:#bf8700}}.missing{{color:#8c959f}}
</style></head><body>
<h1>Shipway portfolio</h1><p>{len(statuses)} use case(s), generated {generated_at:%Y-%m-%d %H:%M} UTC</p>
<table><tr>{head}</tr>{"".join(rows)}</table>
<h2>Impact-feasibility matrix</h2>
<img alt="impact-feasibility matrix" src="data:image/png;base64,{img}">
<h2>Gates</h2>{details}
</body></html>
"""


def write_report(settings: Settings, statuses: list[UseCaseStatus]) -> Path:
    """``<state_dir>/portfolio/index.html`` (with the matrix embedded) and ``matrix.png``."""

    out = settings.state / "portfolio"
    png = matrix_png(statuses, out / "matrix.png")
    page = out / "index.html"
    write_text(render_html(statuses, png.read_bytes(), datetime.now(UTC)), page)
    return page
