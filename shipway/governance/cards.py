"""Model card and data card of a model version, written only from recorded facts.

Every statement on a card comes from the spec the version was trained with, its MLflow
run (metrics per split), or a hash-verified gate record (data readiness, model
validation, approvals), so a card can be regenerated at any time and says the same
thing. Markdown is the source; HTML is rendered from it (markdown-it, already installed
with rich), so the two never drift apart.

The model card is also emitted in two standard shapes, built from the same facts: the
Model Card Toolkit JSON schema (``model_card.json``, schema v0.0.2, vendored under
``schemas/``), which model registries and review tools read, and a Hugging Face-style
``README.md`` whose YAML front matter (``model-index``) carries the test metrics.
"""

from __future__ import annotations

import html
import json
import tempfile
from pathlib import Path
from typing import Any

import yaml

from shipway.core.spec import UseCaseSpec
from shipway.governance import (
    DATA_READINESS,
    GATES,
    MODEL_VALIDATION,
    PRODUCTION_READINESS,
    USE_CASE_APPROVAL,
    cost,
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
    lines += ["", *explanation_lines(facts)]
    lines += ["", "## Gates", ""]
    lines += _table(
        ["gate", "status", "record"],
        [[g, _status(facts, g), facts.uris.get(g, "")] for g in GATES],
    )
    lines += ["", *cost.card_section(facts.records.get(PRODUCTION_READINESS))]
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


def explanation_lines(facts: VersionFacts) -> list[str]:
    """The card's "Explanations" section: global importance (mean absolute contribution
    per spec feature on the version's reference sample) and its stability against the
    previous registered version (``shipway.governance.importance``)."""
    e = facts.explanations
    lines = ["## Explanations", ""]
    if not e:
        return [*lines, "Not computed for this rendering."]
    if "error" in e:
        return [*lines, str(e["error"])]
    stab = e.get("stability") or {}
    prev = stab.get("previous_version")
    before = stab.get("previous_importance") or {}
    prev_rank = {f: i + 1 for i, f in enumerate(before)}
    lines += [
        f"Every answer can be explained (`POST /explain`, method `{e['method']}`, on the "
        f"{e['scale']} scale); the explanation is stored with the logged prediction. Global "
        f"importance: mean absolute contribution per feature on {e['rows']} validation rows "
        "of the monitoring reference.",
        "",
    ]
    lines += _table(
        ["rank", "feature", "mean abs contribution", f"rank in v{prev}" if prev else "previous"],
        [
            [i + 1, f, v, prev_rank.get(f, "-")]
            for i, (f, v) in enumerate((e.get("importance") or {}).items())
        ],
    )
    rho = stab.get("spearman")
    stability = (
        f"Spearman rank correlation of global importance with v{prev}: {rho:.3f}."
        if rho is not None
        else f"Stability across versions: {stab.get('reason', 'n/a')}."
    )
    return [*lines, "", stability]


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


MCT_SCHEMA_VERSION = "0.0.2"
MCT_SCHEMA = Path(__file__).parent / "schemas" / "model_card.schema.json"
"""The Model Card Toolkit schema the JSON card follows (Apache-2.0, see schemas/NOTICE)."""


def _splits(facts: VersionFacts) -> dict[str, Any]:
    rec = facts.records.get(DATA_READINESS) or {}
    return dict((rec.get("facts") or {}).get("splits") or {})


def _slices(facts: VersionFacts) -> dict[str, Any]:
    rec = facts.records.get(MODEL_VALIDATION) or {}
    return dict((rec.get("facts") or {}).get("slices") or {})


def model_card_toolkit(spec: UseCaseSpec, facts: VersionFacts) -> dict[str, Any]:
    """The model card in the Model Card Toolkit JSON schema (v0.0.2): the same facts as
    the Markdown card, in the shape MCT-aware tools read. Values are strings where the
    schema says so (metric values included)."""
    kv = lambda k, v: {"key": str(k), "value": str(v)}  # noqa: E731
    metrics = [
        {"type": m, "value": f"{v:.6g}", "slice": split}
        for split in SPLITS
        for m, v in sorted(facts.metrics.get(split, {}).items())
    ]
    metric = spec.acceptance.metric
    metrics += [
        {"type": metric, "value": f"{float(v[metric]):.6g}", "slice": f"test: {attr}={g}"}
        for attr, groups in _slices(facts).items()
        for g, v in sorted(groups.items())
        if metric in v
    ]
    metrics += cost.mct_metrics(facts.records.get(PRODUCTION_READINESS))
    splits = _splits(facts)
    data = [
        {
            "name": f"{facts.name} {s}",
            "description": f"{s} split: {v.get('rows')} rows"
            + (f" from {v['start']} to {v['end']}" if v.get("start") else "")
            + f"; data version {facts.tags.get('data_version', '-')}",
            "sensitive": {"sensitive_data": list(spec.pii_columns)},
        }
        for s, v in splits.items()
    ]
    obj = spec.objective
    return {
        "schema_version": MCT_SCHEMA_VERSION,
        "model_details": {
            "name": facts.name,
            "overview": spec.title,
            "documentation": spec.description.strip() or spec.title,
            "owners": [{"name": spec.owner.name, "contact": spec.owner.email}],
            "version": {
                "name": facts.version,
                "date": facts.created_at[:10],
                "diff": f"git {facts.tags.get('git_commit', '-')}, data "
                f"{facts.tags.get('data_version', '-')}",
            },
            "path": f"models:/{facts.name}/{facts.version}",
        },
        "model_parameters": {
            "model_architecture": facts.params.get("algorithm", spec.model.algorithm),
            "data": data,
            "input_format": f"{len(spec.model_feature_names)} features through feature service "
            f"{facts.tags.get('feature_service', spec.feature_service_name)}",
            "input_format_map": [kv(c.name, c.dtype.value) for c in spec.request_fields],
            "output_format": f"{spec.target.task.value} of {spec.target.column}",
        },
        "quantitative_analysis": {"performance_metrics": metrics},
        "considerations": {
            "users": [{"description": f"{spec.owner.team or spec.owner.name} (owner)"}],
            "use_cases": [
                {
                    "description": f"{spec.description.strip() or spec.title} Objective: "
                    f"{obj.kpi} from {obj.baseline:g} to {obj.target:g} {obj.unit}".strip()
                }
            ],
            "limitations": [{"description": x} for x in limitations(spec, facts)],
            "ethical_considerations": [
                {
                    "name": f"unequal quality across {attr} groups",
                    "mitigation_strategy": "the model-validation gate bounds the ratio of "
                    f"{metric} between the worst and best group at {spec.acceptance.max_slice_ratio:g}",
                }
                for attr in spec.sensitive_attributes
            ],
        },
    }


def hf_front_matter(spec: UseCaseSpec, facts: VersionFacts) -> dict[str, Any]:
    """Hugging Face model-card metadata: tags, library and a ``model-index`` with the
    held-out (test) metrics, so hub-style tooling reads the results without parsing."""
    task = (
        "tabular-regression"
        if spec.target.task.value == "regression"
        else ("tabular-classification")
    )
    algorithm = facts.params.get("algorithm", spec.model.algorithm)
    test = facts.metrics.get("test", {})
    return {
        "library_name": "lightgbm" if algorithm == "lightgbm" else "sklearn",
        "tags": ["shipway", task, f"risk-{spec.risk_level.value}"],
        "model-index": [
            {
                "name": f"{facts.name}-v{facts.version}",
                "results": [
                    {
                        "task": {"type": task, "name": task.replace("-", " ").title()},
                        "dataset": {
                            "type": spec.name,
                            "name": f"{spec.name} (data version "
                            f"{facts.tags.get('data_version', '-')})",
                            "split": "test",
                        },
                        "metrics": [
                            {"type": m, "value": float(v), "name": f"test {m}"}
                            for m, v in sorted(test.items())
                        ],
                    }
                ],
            }
        ],
    }


def hf_readme(spec: UseCaseSpec, facts: VersionFacts) -> str:
    """README.md with YAML front matter, then the Markdown model card."""
    meta = yaml.safe_dump(hf_front_matter(spec, facts), sort_keys=False, allow_unicode=True)
    return f"---\n{meta}---\n\n{model_card(spec, facts)}"


def render(spec: UseCaseSpec, facts: VersionFacts) -> dict[str, str]:
    """``file name -> content``: both cards (Markdown, HTML), the model card as Model Card
    Toolkit JSON, and the Hugging Face-style README.md."""
    out: dict[str, str] = {}
    for name, md in (
        ("model_card", model_card(spec, facts)),
        ("data_card", data_card(spec, facts)),
    ):
        out[f"{name}.md"] = md
        out[f"{name}.html"] = to_html(md, f"{name.replace('_', ' ')} {facts.name} v{facts.version}")
    out["model_card.json"] = (
        json.dumps(model_card_toolkit(spec, facts), indent=2, sort_keys=True) + "\n"
    )
    out["README.md"] = hf_readme(spec, facts)
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
