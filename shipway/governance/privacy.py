"""Privacy and representation checks of the data a model is actually trained on.

The features stage drops declared PII columns (``feature_repo.aggregates.events_table``),
but the gate does not trust that: it inspects the real training frames, so a later
transformation, a renamed column or a PII column used as a model input is caught. A
spec with ``pii_policy: hash`` may keep a PII column only as salted SHA-256 digests
(``pseudonymise``), which the check recognises by shape.
"""

from __future__ import annotations

import hashlib
import re
from typing import Any

import pandas as pd

from shipway.core.evidence import Criterion
from shipway.core.metrics import MIN_GROUP_ROWS
from shipway.core.spec import UseCaseSpec

DIGEST_RE = re.compile(r"^[0-9a-f]{64}$")


def pseudonymise(frame: pd.DataFrame, columns: list[str], salt: str) -> pd.DataFrame:
    """Replace each value of ``columns`` by sha256(salt + value) in hex; nulls stay null.

    The salt keeps digests from being looked up in a table of hashed common values;
    the same salt gives the same digest, so a hashed key still joins.
    """
    out = frame.copy()
    for col in columns:
        if col in out.columns:
            out[col] = out[col].map(
                lambda v: None if pd.isna(v) else hashlib.sha256(f"{salt}{v}".encode()).hexdigest()
            )
    return out


def _raw_values(series: pd.Series) -> int:
    """How many non-null values are not digests (i.e. raw PII)."""
    vals = series.dropna().astype(str)
    return int((~vals.str.fullmatch(DIGEST_RE)).sum())


def pii_criteria(spec: UseCaseSpec, frames: dict[str, pd.DataFrame]) -> list[Criterion]:
    """One criterion per declared PII column: absent from every frame, or hashed."""
    if not spec.pii_columns:
        return [Criterion("pii_in_training_data", True, "none declared", detail="no pii_columns")]
    out = []
    for col in spec.pii_columns:
        present = {name: f[col] for name, f in frames.items() if col in f.columns}
        if not present:
            out.append(
                Criterion(f"pii_{col}", True, "absent", detail=f"not in {', '.join(frames)}")
            )
            continue
        where = ", ".join(present)
        if spec.pii_policy == "hash":
            raw = sum(_raw_values(s) for s in present.values())
            out.append(
                Criterion(
                    f"pii_{col}",
                    raw == 0,
                    raw,
                    0,
                    "<=",
                    f"raw (unhashed) values of declared PII column {col!r} in {where}"
                    if raw
                    else f"present only as SHA-256 digests in {where}",
                )
            )
        else:
            n = sum(int(s.notna().sum()) for s in present.values())
            out.append(
                Criterion(
                    f"pii_{col}",
                    False,
                    "present",
                    "absent",
                    detail=f"declared PII column {col!r} is in the training data ({where}, "
                    f"{n} non-null values); pii_policy is drop",
                )
            )
    return out


def group_counts(frame: pd.DataFrame, attr: str) -> dict[str, int]:
    if attr not in frame.columns:
        return {}
    # nulls are no group (the column's not_null rule covers them), as in the validate stage
    vc = frame[attr].dropna().astype(str).value_counts()
    return {str(k): int(v) for k, v in vc.sort_index().items()}


def representation(
    spec: UseCaseSpec, frames: dict[str, pd.DataFrame], fit_on: str = "train"
) -> tuple[list[Criterion], dict[str, Any]]:
    """Every sensitive group is present in the data the model is fitted on, with enough rows.

    The validate stage already holds the whole dataset to ``readiness.min_rows_per_group``;
    a time split can still starve a group. A group with fewer rows in the fitting split
    than the slice metrics need (``shipway.core.metrics.MIN_GROUP_ROWS``), or one that
    appears in evaluation but never in fitting, is a group the model did not learn.
    """

    crit: list[Criterion] = []
    facts: dict[str, Any] = {}
    need = MIN_GROUP_ROWS
    fit = frames.get(fit_on)
    for attr in spec.sensitive_attributes:
        per_split = {name: group_counts(f, attr) for name, f in frames.items()}
        facts[attr] = per_split
        if fit is None:
            continue
        counts = per_split[fit_on]
        smallest = min(counts.items(), key=lambda kv: kv[1]) if counts else ("<none>", 0)
        crit.append(
            Criterion(
                f"group_rows_{attr}",
                smallest[1] >= need,
                smallest[1],
                need,
                ">=",
                f"smallest group {attr}={smallest[0]} in the {fit_on} split",
            )
        )
        unseen = sorted(
            {g for name, c in per_split.items() if name != fit_on for g in c} - set(counts)
        )
        crit.append(
            Criterion(
                f"groups_seen_in_training_{attr}",
                not unseen,
                len(unseen),
                0,
                "<=",
                f"groups never seen in {fit_on}: {unseen}" if unseen else "",
            )
        )
    return crit, facts
