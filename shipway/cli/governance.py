"""Governance commands: gates, approvals, promotion, rollback, lineage, audit, retention.

Every command that decides something appends a record to the audit trail; the gate
commands exit 3 when the gate fails (the record is written either way), so scripts and
CI can stop on a failed gate without parsing output.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from functools import wraps
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.table import Table

from shipway.cli.app import UsecaseOpt, UserError, app, console, context, friendly
from shipway.core.evidence import GateRecord
from shipway.core.settings import Settings
from shipway.core.spec import UseCaseSpec

gate_app = typer.Typer(
    help="Run one governance gate and record its evidence.", no_args_is_help=True
)
app.add_typer(gate_app, name="gate")

F = TypeVar("F", bound=Callable[..., Any])
Ref = Annotated[str, typer.Argument(help="<model>@<version>, version a number or an alias.")]
GATE_FAILED = 3


def governed(fn: F) -> F:
    """Refusals and missing evidence are user-facing errors (one red line, exit 1)."""

    @wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from mlflow.exceptions import MlflowException

        from shipway.governance.versions import GovernanceError

        try:
            return fn(*args, **kwargs)
        except (GovernanceError, MlflowException) as exc:
            raise UserError(str(exc)) from exc

    return wrapper  # type: ignore[return-value]


def _client(settings: Settings) -> Any:
    import os

    from shipway.core import registry

    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")  # keep output readable
    return registry.connect(settings.tracking_uri)


def _version(ref: str, usecase: str | None = None) -> tuple[Settings, UseCaseSpec, Any, Any]:
    """Settings, the spec of the model's use case, an MLflow client and the version."""
    from shipway.governance.versions import ModelRef, resolve

    r = ModelRef.parse(ref)
    settings, _ = context(usecase)
    client = _client(settings)
    mv = resolve(client, r)
    _, spec = context((mv.tags or {}).get("usecase") or usecase or r.name)
    return settings, spec, client, mv


def show(record: GateRecord, uri: str | None) -> None:
    """The record as a table, its verdict and where it was recorded."""
    table = Table("criterion", "result", "value", "needs", "detail", title=record.gate)
    for c in record.criteria:
        need = f"{c.comparator} {c.threshold}" if c.comparator else ""
        table.add_row(
            c.name, "pass" if c.passed else "[red]FAIL[/]", str(c.value)[:40], need, c.detail
        )
    console.print(table)
    verdict = "[green]PASSED[/]" if record.passed else "[bold red]FAILED[/]"
    console.print(f"{record.gate}: {verdict}" + (f" — recorded at {uri}" if uri else ""))
    if not record.passed:
        for line in record.explain().splitlines():
            console.print(f"  [red]- {line}[/]")


def _finish(record: GateRecord, uri: str | None) -> None:
    show(record, uri)
    if not record.passed:
        raise typer.Exit(GATE_FAILED)


def _refresh_cards(settings: Settings, client: Any, spec: UseCaseSpec, mv: Any) -> None:
    from shipway.governance.registration import publish_cards

    publish_cards(settings, client, spec, mv)


@gate_app.command("use-case-approval")
@friendly
@governed
def gate_approval_cmd(
    usecase: UsecaseOpt = None,
    model: Annotated[str | None, typer.Option(help="Also link to <model>@<version>.")] = None,
) -> None:
    """The spec carries an approved objective (KPI, baseline, target), owner and approver."""
    from shipway.governance import checks

    if model:
        settings, spec, client, mv = _version(model, usecase)
    else:
        settings, spec = context(usecase)
        client, mv = _client(settings), None
    _finish(*checks.use_case_approval(settings, client, spec, mv))


@gate_app.command("data-readiness")
@friendly
@governed
def gate_data_cmd(usecase: UsecaseOpt = None) -> None:
    """Validate results, no declared PII in the training data, sensitive-group representation
    (the working tree's data; the pipeline checks each model's own splits)."""
    from shipway.governance import checks

    settings, spec = context(usecase)
    _finish(*checks.data_readiness(settings, _client(settings), spec))


@gate_app.command("model-validation")
@friendly
@governed
def gate_validation_cmd(model: Ref) -> None:
    """Verify and link the training pipeline's model-validation record of a version."""
    from shipway.governance import checks

    settings, spec, client, mv = _version(model)
    _finish(*checks.model_validation(settings, client, spec, mv))


@gate_app.command("production-readiness")
@friendly
@governed
def gate_production_cmd(
    model: Ref,
    port: Annotated[
        int | None, typer.Option(help="Port for the smoke server (default: free).")
    ] = None,
) -> None:
    """Bento builds and serves this version within the latency budget; monitoring
    reference, alert rules and a rollback target exist."""
    from shipway.core.net import free_port
    from shipway.governance import checks

    settings, spec, client, mv = _version(model)
    port = port or free_port()
    with console.status(f"building and smoke-testing {mv.name} v{mv.version}"):
        record, uri = checks.production_readiness(settings, client, spec, mv, port)
    _refresh_cards(settings, client, spec, mv)
    _finish(record, uri)


@gate_app.command("post-deployment-review")
@friendly
@governed
def gate_review_cmd(
    model: Annotated[str, typer.Argument(help="<model>@<version>.")] = "",
    usecase: UsecaseOpt = None,
) -> None:
    """Live performance vs validation, drift, SLOs, volume and the KPI vs its baseline.

    The monitor runs this by itself for the champion once it has served
    governance.review_after_days (once per champion tenure); this runs it now."""
    from shipway.governance import review

    if not model:
        settings, spec = context(usecase)
        model = f"{spec.registered_model_name}@champion"
    settings, spec, client, mv = _version(model, usecase)
    record, uri = review.post_deployment_review(settings, client, spec, mv)
    _refresh_cards(settings, client, spec, mv)
    _finish(record, uri)


@app.command("approve")
@friendly
@governed
def approve_cmd(
    model: Ref,
    by: Annotated[str, typer.Option("--by", help="Name of the approver.")],
    comment: Annotated[str, typer.Option("--comment", help="What was approved and why.")],
) -> None:
    """Record a human approval of a model version (who, when, comment, evidence seen)."""
    from shipway.governance.approval import approve

    settings, spec, client, mv = _version(model)
    record, uri = approve(settings, client, spec, mv, by, comment)
    _refresh_cards(settings, client, spec, mv)
    show(record, uri)


@app.command("promote")
@friendly
@governed
def promote_cmd(
    model: Ref,
    by: Annotated[str | None, typer.Option("--by", help="Who promotes (default: OS user).")] = None,
) -> None:
    """Make a version champion: needs production readiness, a rollback target (unless it is
    the first champion), and a recorded approval where the spec's risk level requires one.
    Serialized with other promotions and rollbacks of the model; refusals are recorded too."""
    from shipway.governance.promotion import promote

    settings, spec, client, mv = _version(model)
    record, uri = promote(settings, client, spec, mv, by)
    _refresh_cards(settings, client, spec, mv)
    show(record, uri)
    console.print(f"[green]{mv.name} v{mv.version} is champion[/]")


@app.command("rollback")
@friendly
@governed
def rollback_cmd(
    usecase: UsecaseOpt = None,
    reason: Annotated[str, typer.Option(help="Why (kept in the record).")] = "",
    by: Annotated[str | None, typer.Option("--by", help="Who (default: OS user).")] = None,
) -> None:
    """Move champion back to the previous eligible champion (recorded as evidence)."""
    from shipway.governance.rollback import rollback

    settings, spec = context(usecase)
    record, uri = rollback(settings, _client(settings), spec, by, reason)
    show(record, uri)
    f = record.facts
    console.print(f"[green]champion {spec.name}: v{f['from_version']} -> v{f['to_version']}[/]")


@app.command("lineage")
@friendly
@governed
def lineage_cmd(
    request_id: Annotated[str, typer.Argument(help="request_id of a served prediction.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Trace one prediction to model version, run, features, data version, code and source."""
    from shipway.governance.lineage import trace

    settings, _ = context(None)
    t = trace(settings, _client(settings), request_id)
    if as_json:
        console.print_json(json.dumps(t.to_dict(), default=str))
    else:
        table = Table("link", "ok", "resolved to", "how", title=f"lineage of {request_id}")
        for link in t.links:
            value = (
                json.dumps(link.value, default=str) if isinstance(link.value, dict) else link.value
            )
            table.add_row(
                link.name, "yes" if link.ok else "[red]NO[/]", str(value)[:70], link.detail
            )
        console.print(table)
        _print_why(t)
    if not t.ok:
        raise typer.Exit(GATE_FAILED)


def _print_why(t: Any) -> None:
    """The explanation logged with the prediction: base value, the largest contributions."""
    e = t.explanation
    if e is None:
        console.print("explanation: none logged (only POST /explain stores one)")
        return
    table = Table(
        "feature",
        "contribution",
        title=f"why: {e['method']} on the {e['scale']} scale, base value {e['base_value']:.6g} "
        f"+ contributions = output {e['output']:.6g}",
    )
    for name, value in t.why():
        table.add_row(name, f"{value:+.6g}")
    rest = len(e["contributions"]) - len(t.why())
    if rest > 0:
        table.add_row(f"({rest} more)", "")
    console.print(table)


@app.command("audit")
@friendly
@governed
def audit_cmd(
    target: Annotated[str, typer.Argument(help="<model>@<version>, or 'verify'.")],
    folder: Annotated[Path | None, typer.Argument(help="With 'verify': the bundle folder.")] = None,
    out: Annotated[Path | None, typer.Option("--out", help="Folder for the bundle.")] = None,
) -> None:
    """`audit <model>@<version> --out DIR` writes the evidence bundle with a manifest of
    sha256 hashes and a compliance matrix (EU AI Act Annex IV, NIST AI RMF, ISO/IEC 42001,
    SR 11-7); `audit verify DIR` checks one offline (exit 3 if tampered)."""
    from shipway.governance import audit

    if target == "verify":
        if folder is None:
            raise UserError("usage: shipway audit verify DIR")
        problems = audit.verify_bundle(folder)
        for p in problems:
            console.print(f"[red]- {p}[/]")
        if problems:
            console.print(f"[bold red]bundle {folder} FAILED verification[/]")
            raise typer.Exit(GATE_FAILED)
        console.print(
            f"[green]bundle {folder} verified[/]: every file matches its manifest hash and "
            "every requirement of the compliance matrix cites intact evidence"
        )
        return
    if out is None:
        raise UserError("--out DIR is required to write an evidence bundle")
    settings, spec, client, mv = _version(target)
    try:
        manifest = audit.export(settings, client, spec, mv, out)
    except FileExistsError as exc:
        raise UserError(str(exc)) from exc
    console.print(
        f"[green]wrote[/] {len(manifest['files'])} files to {out} "
        f"(manifest hash {manifest['manifest_hash']})"
    )
    _print_matrix(out)


def _print_matrix(bundle: Path) -> None:
    """One line per framework: how many requirements the bundle's evidence satisfies."""
    from shipway.governance.compliance import MATRIX

    for fw in json.loads((bundle / MATRIX).read_text())["frameworks"]:
        s = fw["summary"]
        console.print(
            f"  {fw['title']}: {s['satisfied']} satisfied, {s['partial']} partial, "
            f"{s['missing']} missing (see {MATRIX})"
        )


@app.command("cards")
@friendly
@governed
def cards_cmd(
    model: Ref,
    out: Annotated[Path | None, typer.Option("--out", help="Also write the cards here.")] = None,
) -> None:
    """Regenerate the model and data cards from the recorded facts (and attach them)."""
    from shipway.governance import cards, importance
    from shipway.governance.facts import collect

    settings, spec, client, mv = _version(model)
    facts = importance.attach(client, spec, collect(settings, client, spec, mv), mv)
    uris = cards.publish(client, spec, facts)
    if out is not None:
        for p in cards.write(spec, facts, out):
            console.print(f"wrote {p}")
    for name, uri in uris.items():
        console.print(f"{name}: {uri}")


@app.command("retention")
@friendly
@governed
def retention_cmd(
    usecase: UsecaseOpt = None,
    apply: Annotated[
        bool, typer.Option("--apply/--dry-run", help="Delete (default: only report).")
    ] = False,
) -> None:
    """Enforce the spec's retention periods on the prediction log, feedback and runs."""
    from shipway.governance.retention import enforce

    settings, spec = context(usecase)
    res, uri = enforce(settings, _client(settings), spec, apply=apply)
    verb = "deleted" if apply else "would delete"
    console.print(
        f"{spec.name}: {verb} {res.predictions} predictions, "
        f"{res.feedback + res.feedback_of_expired_predictions} feedback rows, and the "
        f"artifacts of {len(res.runs_purged)} run(s); kept {len(res.runs_kept)} old run(s)"
    )
    for r in res.runs_kept:
        console.print(f"  kept run {r['run_id']}: {r['reason']}")
    console.print(f"recorded at {uri}" if uri else "dry run: nothing deleted (use --apply)")


@app.command("erase")
@friendly
@governed
def erase_cmd(
    entity: Annotated[str, typer.Option("--entity", help="key=value of the entity.")],
    usecase: UsecaseOpt = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Only count.")] = False,
) -> None:
    """Erase one entity's predictions and feedback (recorded with a hash of the key)."""
    from shipway.governance.retention import erase

    key, sep, value = entity.partition("=")
    if not sep or not key or not value:
        raise UserError(f"--entity must be key=value, got {entity!r}")
    settings, spec = context(usecase)
    record, uri = erase(settings, _client(settings), spec, key, value, dry_run)
    m = record.facts["matched"]
    verb = "would erase" if dry_run else "erased"
    console.print(f"{verb} {m['predictions']} predictions and {m['feedback']} feedback rows")
    _finish(record, uri)


@app.command("trail")
@friendly
@governed
def trail_cmd(
    usecase: UsecaseOpt = None,
    model: Annotated[str | None, typer.Option(help="A version's trail (cluster).")] = None,
) -> None:
    """List the audit trail and verify its hash chain (exit 3 if it was tampered with)."""
    from shipway.governance.trail import trail_for

    settings, spec = context(usecase)
    run_id = _version(model, usecase)[3].run_id if model else None
    t = trail_for(settings, spec.name, run_id=run_id)
    table = Table("#", "gate", "passed", "subject", "recorded", title=f"audit trail {spec.name}")
    for e in t.entries():
        subj = ", ".join(f"{k}={v}" for k, v in e.subject.items() if k != "run_id")
        table.add_row(str(e.seq), e.gate, str(e.passed), subj, e.recorded_at)
    console.print(table)
    problems = t.verify()
    for p in problems:
        console.print(f"[red]- {p}[/]")
    if problems:
        raise typer.Exit(GATE_FAILED)
    console.print("[green]trail verified[/]: every record and link of the chain is intact")
