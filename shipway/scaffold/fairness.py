"""Protected attributes found by name, and groups big enough to measure fairness on.

The gate compares groups on the test window, so a group must be big *there*: with a few
dozen rows, or a handful of the rarer label, a group's ROC AUC or true-positive rate is
mostly noise, and the slice and equalized-odds bounds fail on chance alone. So the
proposal sizes groups from the data: numeric attributes are binned into as many quantile
groups (four at most) as the test window can measure, and values of a categorical one
too small to measure are merged into ``other``.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from shipway.scaffold.columns import Profile, is_integral, tokens

SENSITIVE_WORDS = frozenset(
    {
        "age",
        "sex",
        "gender",
        "race",
        "racial",
        "ethnic",
        "ethnicity",
        "afam",
        "black",
        "hispanic",
        "minority",
        "marital",
        "married",
        "single",
        "religion",
        "religious",
        "nationality",
        "citizenship",
        "foreign",
        "immigrant",
        "disability",
        "disabled",
        "pregnancy",
        "pregnant",
        "orientation",
        "female",
        "male",
        "senior",
    }
)
"""Name tokens that mark a protected attribute (fairness slices, risk level high)."""
MIN_GROUP_ROWS = 30
"""Rows a group needs in a window before its metrics are computed (the gate's
``shipway.core.metrics.MIN_GROUP_ROWS``)."""
MEASURED_TEST_ROWS = 50
"""Test-window rows a group should hold for its metrics to mean something."""
MEASURED_TEST_MINORITY = 15
"""Test-window rows of the rarer label a classifier's group should hold (true- and
false-positive rates of a handful of rows differ by chance)."""
MAX_BINS = 4
FAIRNESS_BOUND = 0.2
"""The demographic-parity and equalized-odds bound proposed where the data can measure it."""
MAX_FLAG_VALUES = 10
"""A numeric attribute with at most this many values is a set of groups, not a quantity."""
OTHER = "other"


@dataclass
class Sensitive:
    """The proposal's protected attributes and the columns derived to slice them."""

    attributes: list[str] = field(default_factory=list)
    bins: list[dict[str, Any]] = field(default_factory=list)
    groups: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def derived_from(self) -> list[str]:
        """Columns that a bin or a grouping was derived from."""
        return [b["column"] for b in self.bins] + [g["column"] for g in self.groups]


def rows_to_measure(test_share: float, minority_share: float | None) -> int:
    """Rows (in the whole data) a group needs to hold MEASURED_TEST_ROWS rows, and for a
    classifier MEASURED_TEST_MINORITY of the rarer label, in the test window."""
    need = MEASURED_TEST_ROWS / test_share
    if minority_share:
        need = max(need, MEASURED_TEST_MINORITY / (test_share * minority_share))
    return math.ceil(need)


def bins(s: pd.Series, name: str, column: str, k: int = MAX_BINS) -> dict[str, Any] | None:
    """``k`` quantile bins of a numeric sensitive column (equal-size groups)."""
    integral = is_integral(s)
    qs = s.dropna().quantile([i / k for i in range(1, k)]).to_numpy(dtype=float)
    edges = sorted({round(float(q)) if integral else round(float(q), 2) for q in qs})
    edges = [e for e in edges if float(s.min()) < e <= float(s.max())]
    if not edges:
        return None

    def fmt(v: float) -> str:
        return f"{v:g}".replace(".", "_").replace("-", "minus_")

    labels = [f"under_{fmt(edges[0])}"]
    for a, b in itertools.pairwise(edges):
        upper = fmt(b - 1) if integral else f"under_{fmt(b)}"
        labels.append(f"{fmt(a)}_to_{upper}")
    labels.append(f"{fmt(edges[-1])}_plus")
    return {"name": name, "column": column, "edges": edges, "labels": labels}


def merge_rare(s: pd.Series, name: str, column: str, need: int) -> dict[str, Any] | None:
    """Values with fewer than ``need`` rows merged into ``other`` (None when fewer than two
    values are that small, or when merging would leave a single group)."""
    counts = s.dropna().astype(str).value_counts()
    rare = sorted(counts[counts < need].index)
    if len(rare) < 2 or len(rare) == len(counts):  # renaming one value, or one group left
        return None
    return {"name": name, "column": column, "mapping": {v: OTHER for v in rare}}


def find_sensitive(
    df: pd.DataFrame, profiles: dict[str, Profile], skip: set[str], need: int
) -> Sensitive:
    """Protected attributes by name, each sliced on groups of at least ``need`` rows where
    the data allows (see :func:`rows_to_measure`)."""
    out = Sensitive()
    k = max(2, min(MAX_BINS, len(df) // max(need, 1)))
    for p in profiles.values():
        if p.name in skip or p.id_like or not tokens(p.name) & SENSITIVE_WORDS:
            continue
        if p.kind in ("text", "datetime"):
            continue
        derived = f"{p.name}_group"
        if p.numeric and (p.unique > MAX_FLAG_VALUES or p.nulls):
            b = bins(df[p.name], derived, p.name, k)
            if b is not None and derived not in df.columns:
                out.bins.append(b)
                out.attributes.append(derived)
            continue
        g = merge_rare(df[p.name], derived, p.name, need) if derived not in df.columns else None
        if g is not None:
            out.groups.append(g)
            out.attributes.append(derived)
        else:  # few values (a 0/1 flag, a category): the values are the groups
            out.attributes.append(p.name)
    names = ", ".join(out.attributes) or "none found"
    out.notes.append(f"sensitive attributes (by name): {names}")
    for b in out.bins:
        out.notes.append(
            f"{b['name']}: {b['column']} in {len(b['labels'])} equal-size groups (about "
            f"{len(df) // len(b['labels'])} rows each; {need} rows give a group "
            f"{MEASURED_TEST_ROWS} test rows)"
        )
    for g in out.groups:
        out.notes.append(
            f"{g['name']}: values of {g['column']} with under {need} rows merged into "
            f"{OTHER!r} ({', '.join(g['mapping'])}), so each group has test rows to measure"
        )
    return out


def _chance_difference(counts: list[float]) -> float:
    """What the difference between the two smallest groups' rates reaches by chance: two
    standard errors of a difference of proportions, at p = 0.5 (the widest)."""
    a, b = sorted(counts)[:2]
    return 2 * math.sqrt(0.25 / a + 0.25 / b)


def fairness_bounds(
    df: pd.DataFrame, attributes: list[str], test_share: float, minority_share: float
) -> tuple[float, float, str]:
    """(demographic parity, equalized odds) bounds and why: FAIRNESS_BOUND, or what the
    test window's smallest measured groups differ by chance where that is more.

    The gate compares positive rates (parity) over a group's rows and true/false positive
    rates (equalized odds) over its rows of each label; a bound under the noise of those
    rates fails on chance alone, which is no finding about the model. Rounded up to 0.05.
    """
    dp, eo, sizes = FAIRNESS_BOUND, FAIRNESS_BOUND, ""
    for attr in attributes:
        rows = [c * test_share for c in df[attr].value_counts() if c * test_share >= MIN_GROUP_ROWS]
        if len(rows) < 2:
            continue
        dp = max(dp, _chance_difference(rows))
        chance = _chance_difference([r * minority_share for r in rows])
        if chance > eo:  # the attribute whose small groups set the bound
            eo, least = chance, min(rows)
            sizes = f"{least:.0f} test rows, {least * minority_share:.0f} of the rarer label"
    dp, eo = (math.ceil(round(v, 6) * 20) / 20 for v in (dp, eo))
    if (dp, eo) == (FAIRNESS_BOUND, FAIRNESS_BOUND):
        return dp, eo, f"fairness bounds {FAIRNESS_BOUND:g}"
    return (
        dp,
        eo,
        f"fairness bounds: parity {dp:g}, equalized odds {eo:g}, where {FAIRNESS_BOUND:g} is "
        f"below what the smallest groups (about {sizes}) differ by chance; they tighten "
        "as data grows",
    )
