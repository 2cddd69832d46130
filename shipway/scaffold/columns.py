"""What one column of a new data set is: its spec name, kind, keys and validation rules.

The lowest module of ``shipway init``: it looks at values only, never at the task, so the
proposal, the time split and the fairness groups all read the same profile.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

ID_RE = re.compile(r"(^|_)(id|key|uuid|number|no)$")
"""Names of keys (``customer_id``, ``account_no``): never features, maybe the entity."""
INDEX_NAMES = frozenset({"rownames", "row_names", "index", "idx", "row", "rownum", "row_num"})
"""Names that row numbers get when a table is written with its index (R's ``rownames``,
pandas' ``index``; pandas reads an unnamed first column as ``Unnamed: 0``)."""
DATE_FORMATS = ("%Y-%m-%d", "%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M:%S", "%Y/%m/%d", "%d/%m/%Y")
MAX_CATEGORIES = 100
"""More distinct strings than this is free text, not a category."""
MIN_ROWS_PER_CATEGORY = 5
"""A string column whose values repeat fewer times than this on average is free text (or
a key): a category the model can learn from has rows for each of its values."""


def snake(name: str) -> str:
    """``MonthlyIncome`` / ``Monthly Income`` / ``monthly-income`` -> ``monthly_income``."""
    s = re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", str(name))
    s = re.sub(r"([A-Z]+)([A-Z][a-z])", r"\1_\2", s)
    s = re.sub(r"[^0-9A-Za-z]+", "_", s).strip("_").lower()
    return s if s[:1].isalpha() else f"c_{s}"


def spec_names(columns: list[str]) -> dict[str, str]:
    """Source column -> a unique snake_case name the spec accepts."""
    out: dict[str, str] = {}
    used: set[str] = set()
    for col in columns:
        base = snake(col)
        name, i = base, 2
        while name in used:
            name, i = f"{base}_{i}", i + 1
        used.add(name)
        out[col] = name
    return out


def tokens(name: str) -> set[str]:
    """The words of a snake_case name."""
    return set(name.split("_"))


@dataclass
class Profile:
    """What one (already renamed) column looks like."""

    name: str
    kind: str  # datetime | bool | int | float | category | text
    nulls: int
    unique: int
    fmt: str | None = None
    id_like: bool = False
    """A key (by name, or free text unique per row): never a feature."""
    index_like: bool = False
    """A row number (``rownames``, 1..n): never a feature; at most the row key."""

    @property
    def numeric(self) -> bool:
        return self.kind in ("int", "float")


def datetime_format(s: pd.Series) -> tuple[bool, str | None]:
    """Whether a column holds dates/times, and its strptime format if one fits every value."""
    if pd.api.types.is_datetime64_any_dtype(s):
        return True, None
    if not (pd.api.types.is_object_dtype(s) or pd.api.types.is_string_dtype(s)):
        return False, None
    vals = s.dropna().astype(str)
    if vals.empty or not vals.str.contains(r"\d{1,4}[-/:.]\d{1,2}", regex=True).all():
        return False, None
    for fmt in DATE_FORMATS:
        if pd.to_datetime(vals, format=fmt, errors="coerce").notna().all():
            return True, fmt
    parsed = pd.to_datetime(vals, format="ISO8601", errors="coerce")
    return bool(parsed.notna().mean() >= 0.99), None


def is_integral(s: pd.Series) -> bool:
    """Every non-null value is a finite whole number."""
    v = pd.to_numeric(s.dropna(), errors="coerce")
    return bool(len(v) and np.all(np.isfinite(v)) and np.all(v == np.round(v)))


def _row_number(name: str, s: pd.Series, kind: str) -> bool:
    """A row number: named like an index, or whole numbers counting up (or down) by a
    constant step. It identifies the row's position in a file, so as a feature it would
    only teach the model the file's order."""
    if s.isna().any() or s.nunique() != len(s) or len(s) < 3:
        return False
    if name in INDEX_NAMES or name.startswith("unnamed"):
        return True
    if kind != "int":
        return False
    steps = np.diff(pd.to_numeric(s).to_numpy(dtype=float))
    return bool(steps[0] != 0 and np.all(steps == steps[0]))


def profile(df: pd.DataFrame) -> dict[str, Profile]:
    """Kind, nulls, cardinality and key-likeness of every (already renamed) column."""
    out: dict[str, Profile] = {}
    n = len(df)
    for col in df.columns:
        s = df[col]
        nulls, unique = int(s.isna().sum()), int(s.nunique(dropna=True))
        is_dt, fmt = datetime_format(s)
        if is_dt:
            kind = "datetime"
        elif pd.api.types.is_bool_dtype(s):
            kind = "bool"
        elif pd.api.types.is_numeric_dtype(s):
            # integers with gaps are read as floats and stay floats (nullable ints are not
            # a type every store agrees on)
            kind = "int" if is_integral(s) and nulls == 0 else "float"
        else:
            repeats = unique <= 10 or unique * MIN_ROWS_PER_CATEGORY <= n - nulls
            kind = "category" if unique <= MAX_CATEGORIES and repeats else "text"
        index_like = kind != "datetime" and _row_number(str(col), s, kind)
        unique_per_row = n > 0 and unique == n and nulls == 0
        id_like = (
            index_like
            or (kind in ("int", "text", "category") and bool(ID_RE.search(str(col))))
            or (kind == "text" and unique_per_row)
        )
        out[col] = Profile(str(col), kind, nulls, unique, fmt, id_like, index_like)
    return out


def nice_range(s: pd.Series, integral: bool) -> tuple[float, float]:
    """Allowed range for serving and readiness: the data's range widened by half its span
    (from 0 when the data is non-negative), so normal growth is not rejected as invalid."""
    lo, hi = float(s.min()), float(s.max())
    if lo >= 0.0 and hi <= 1.0 and not integral:
        return 0.0, 1.0
    span = max(hi - lo, abs(hi), 1.0)
    low = 0 if lo >= 0 else math.floor(lo - span / 2)
    return low, math.ceil(hi + span / 2)


def example(s: pd.Series, integral: bool) -> Any:
    """A typical value for the API documentation: the median number or the commonest label."""
    v = s.dropna()
    if v.empty:
        return None
    if pd.api.types.is_bool_dtype(v):
        return bool(v.mode().iloc[0])
    if pd.api.types.is_numeric_dtype(v):
        med = float(v.median())
        return round(med) if integral else round(med, 4)
    return str(v.mode().iloc[0])


def field_rule(s: pd.Series, p: Profile) -> dict[str, Any]:
    """A request field with the readiness rules read from the data: type, range (widened),
    categories (today's values), nullability and an example."""
    f: dict[str, Any] = {"name": p.name}
    if p.numeric:
        integral = p.kind == "int"
        lo, hi = nice_range(s.dropna(), integral)
        f.update(dtype=p.kind, min=lo, max=hi)
    elif p.kind == "bool":
        f["dtype"] = "bool"
    else:
        f.update(dtype="str", allowed=sorted(s.dropna().astype(str).unique().tolist()))
    if p.nulls:
        f["nullable"] = True
    ex = example(s, p.kind == "int")
    if ex is not None:
        f["example"] = ex
    return f
