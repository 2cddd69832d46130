"""Model card and data card of a model version, written only from recorded facts.

Every statement on a card comes from the spec the version was trained with, its MLflow
run (metrics per split), or a hash-verified gate record (data readiness, model
validation, approvals), so a card can be regenerated at any time and says the same
thing. Markdown is the source; HTML is rendered from it (markdown-it, already installed
with rich), so the two never drift apart.
"""

from __future__ import annotations

import html
import json
import tempfile
from pathlib import Path
from typing import Any

from shipway.core.spec import UseCaseSpec
from shipway.governance import (
    DATA_READINESS,
    GATES,
    MODEL_VALIDATION,
    USE_CASE_APPROVAL,
)
from shipway.governance.facts import SPLITS, VersionFacts

CARD_FILES = ("model_card", "data_card")


def _table(header: list[str], rows: list[list[Any]]) -> list[str]:
    out = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    out += ["| " + " | ".join(_cell(v) for v in r) + " |" for r in rows]
    return out


def _cell(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v).replace("|", "\\|").replace("\n", " ")


def _status(facts: VersionFacts, gate: str) -> str:
    p = facts.passed(gate)
    return "not recorded" if p is None else "passed" if p else "FAILED"


def limitations(spec: UseCaseSpec, facts: VersionFacts) -> list[str]:
    """Known limits, derived from the records rather than written by hand."""
    out = []
    dr = facts.records.get(DATA_READINESS, {}).get("facts", {})
    train = dr.get("splits", {}).get("train", {})
    if train.get("start"):
        out.append(
            f"Trained on events from {train['start']} to {train['end']}; behaviour outside "
            "the seasons and segments seen there is extrapolation."
        )
    mv = facts.records.get(MODEL_VALIDATION, {})
    for attr, groups in (mv.get("facts", {}).get("slices") or {}).items():
        thin = [g for g, v in groups.items() if spec.acceptance.metric not in v]
        if thin:
            out.append(
                f"Too few test rows to evaluate {attr} group(s) {', '.join(sorted(thin))}: "
                "no quality claim is made for them."
            )
    for c in mv.get("criteria", []):
        if not c.get("passed"):
            out.append(f"Failed validation criterion {c['name']}: {c.get('detail', '')}")
    if spec.entity_features:
        out.append(
            "Entity aggregates come from the online store; an unknown entity is served the "
            "declared defaults, which are less informed than its history would be."
        )
    out.append(f"Risk level {spec.risk_level.value}; use only as described under intended use.")
    return out


def model_card(spec: UseCaseSpec, facts: VersionFacts) -> str:
    """The model card (Markdown)."""
    obj = spec.objective
    lines = [
        f"# Model card: {facts.name} v{facts.version}",
        "",
        f"*{spec.title}* — owner {spec.owner.name} <{spec.owner.email}>, risk level "
        f"**{spec.risk_level.value}**, registered {facts.created_at}, aliases: "
        f"{', '.join(facts.aliases) or 'none'}.",
        "",
        "## Intended use",
        "",
        spec.description.strip() or spec.title,
        "",
        f"Business objective: {obj.kpi} from a baseline of {obj.baseline:g} {obj.unit} to a "
        f"target of {obj.target:g} {obj.unit} ({obj.direction.replace('_', ' ')}). Approved: "
        f"{obj.approval.approved} by {obj.approval.approver or '-'} on "
        f"{obj.approval.approved_on or '-'}.",
        "",
        "## Model",
        "",
        f"- algorithm: {facts.params.get('algorithm', spec.model.algorithm)}, task "
        f"{spec.target.task.value}, target `{spec.target.column}`",
        f"- inputs: {len(spec.model_feature_names)} features through feature service "
        f"`{facts.tags.get('feature_service', spec.feature_service_name)}`",
        "",
        "## Metrics per split",
        "",
    ]
    names = sorted({m for split in facts.metrics.values() for m in split})
    lines += _table(
        ["split", *names],
        [
            [s, *(facts.metrics.get(s, {}).get(m, "") for m in names)]
            for s in SPLITS
            if s in facts.metrics
        ],
    )
    lines += ["", "## Slices (test split)", ""]
    slices = facts.records.get(MODEL_VALIDATION, {}).get("facts", {}).get("slices") or {}
    metric = spec.acceptance.metric
    rows = [
        [attr, g, int(v.get("rows", 0)), v.get(metric, "too few rows")]
        for attr, groups in slices.items()
        for g, v in sorted(groups.items())
    ]
    lines += _table(["attribute", "group", "rows", metric], rows) if rows else ["none recorded"]
    lines += ["", "## Gates", ""]
    lines += _table(
        ["gate", "status", "record"],
        [[g, _status(facts, g), facts.uris.get(g, "")] for g in GATES],
    )
    lines += ["", "## Approvals", ""]
    if facts.approvals:
        lines += _table(
            ["approver", "when", "comment", "record hash"],
            [
                [
                    a["facts"].get("approver"),
                    a["created_at"],
                    a["facts"].get("comment"),
                    a["content_hash"],
                ]
                for a in facts.approvals
            ],
        )
    else:
        lines.append("No human approval recorded for this version.")
    lines += ["", "## Limitations", ""]
    lines += [f"- {x}" for x in limitations(spec, facts)]
    lines += ["", "## Lineage", ""]
    lines += [f"- {k}: `{v}`" for k, v in facts.lineage.items()]
    return "\n".join(lines) + "\n"


def _known(value: Any) -> str:
    """A recorded value, or ``-`` where the record holds none (a key present with ``None``
    is as unknown as a missing key; printing it would read "at None")."""
    return "-" if value is None or value == "" else str(value)


def readiness_line(facts: dict[str, Any]) -> str:
    """What the validate stage checked, from the data-readiness record's facts.

    Reports are deterministic DVC outputs, so newer ones carry the data's last event time
    (``data_through``) instead of a wall-clock ``checked_at``; older records still have
    the latter. Whichever is recorded is said, and neither is invented.
    """
    r = facts.get("readiness") or {}
    when = ""
    if r.get("data_through"):
        when = f" (data through {r['data_through']})"
    elif r.get("checked_at"):
        when = f" at {r['checked_at']}"
    return (
        f"{_known(r.get('rules'))} rules checked on {_known(r.get('rows'))} rows{when}; "
        f"report md5 `{_known(facts.get('report_md5'))}`."
    )


def data_card(spec: UseCaseSpec, facts: VersionFacts) -> str:
    """The data card (Markdown): what the version was trained on and how it was checked."""
    rec = facts.records.get(DATA_READINESS)
    f = rec.get("facts", {}) if rec else {}
    src = spec.source.model_dump()
    lines = [
        f"# Data card: {facts.name} v{facts.version}",
        "",
        f"- source: {', '.join(f'{k}={v}' for k, v in src.items() if v not in (None, '', {}))}",
        f"- data version (DVC md5 of the features): `{facts.tags.get('data_version', '-')}`",
        f"- data revision (git): `{facts.tags.get('data_rev', '-')}`",
        f"- data-readiness gate: {_status(facts, DATA_READINESS)}",
        f"- use-case approval gate: {_status(facts, USE_CASE_APPROVAL)}",
        "",
        "## Splits",
        "",
    ]
    splits = f.get("splits", {})
    lines += (
        _table(
            ["split", "rows", "from", "to"],
            [
                [s, splits[s].get("rows"), splits[s].get("start", ""), splits[s].get("end", "")]
                for s in [
                    *(n for n in SPLITS if n in splits),
                    *(n for n in splits if n not in SPLITS),
                ]
            ],
        )
        if splits
        else ["not recorded"]
    )
    lines += [
        "",
        "## Readiness (validate stage)",
        "",
        readiness_line(f),
        "",
        "## Privacy",
        "",
        f"Declared PII columns: {', '.join(spec.pii_columns) or 'none'} (policy "
        f"{spec.pii_policy}).",
    ]
    for c in (rec or {}).get("criteria", []):
        if c["name"].startswith("pii_"):
            lines.append(f"- {c['name']}: {'pass' if c['passed'] else 'FAIL'} — {c['detail']}")
    lines += ["", "## Sensitive groups (rows per split)", ""]
    rows = [
        [attr, split, g, n]
        for attr, per in (f.get("groups") or {}).items()
        for split, counts in per.items()
        for g, n in counts.items()
    ]
    lines += _table(["attribute", "split", "group", "rows"], rows) if rows else ["none declared"]
    return "\n".join(lines) + "\n"


def to_html(markdown: str, title: str) -> str:
    """A self-contained page from the card's Markdown."""
    from markdown_it import MarkdownIt

    body = MarkdownIt("commonmark").enable("table").render(markdown)
    return (
        f'<!doctype html><html><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
        "<style>body{font-family:sans-serif;margin:2em;max-width:60em}table{border-collapse:"
        "collapse}td,th{border:1px solid #ccc;padding:3px 8px}</style></head><body>"
        f"{body}</body></html>\n"
    )


def render(spec: UseCaseSpec, facts: VersionFacts) -> dict[str, str]:
    """``file name -> content`` of both cards, Markdown and HTML."""
    out: dict[str, str] = {}
    for name, md in (
        ("model_card", model_card(spec, facts)),
        ("data_card", data_card(spec, facts)),
    ):
        out[f"{name}.md"] = md
        out[f"{name}.html"] = to_html(md, f"{name.replace('_', ' ')} {facts.name} v{facts.version}")
    return out


def write(spec: UseCaseSpec, facts: VersionFacts, out_dir: Path) -> list[Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, text in render(spec, facts).items():
        (out_dir / name).write_text(text)
        paths.append(out_dir / name)
    return paths


def publish(client: Any, spec: UseCaseSpec, facts: VersionFacts) -> dict[str, str]:
    """Log the cards with the version's run (``cards/``) and tag the version with them.

    Cards are derived documents, not evidence: publishing again (after an approval, say)
    replaces them, while the records they were rendered from stay in the trail.
    """
    with tempfile.TemporaryDirectory(prefix="shipway-cards-") as tmp:
        write(spec, facts, Path(tmp))
        client.log_artifacts(facts.run_id, tmp, artifact_path="cards")
    uris = {n: f"runs:/{facts.run_id}/cards/{n}.md" for n in CARD_FILES}
    for n, uri in uris.items():
        client.set_model_version_tag(facts.name, facts.version, n, uri)
    return uris


def facts_json(facts: VersionFacts) -> str:
    """The facts a card was rendered from, for the audit bundle."""
    return json.dumps(facts.__dict__, indent=2, sort_keys=True, default=str) + "\n"
