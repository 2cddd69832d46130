"""When each row happened, and the time split a new use case trains, is judged and is
monitored on.

The split leaves the newest rows out of training altogether: ``shipway demo`` and the
monitor replay the rows after ``split.end`` as live traffic. A spec without ``end`` would
replay rows the model trained on, and live quality would look better than the held-out
score, so a real degradation would read as an improvement.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from typing import Any

import numpy as np
import pandas as pd

from shipway.data.ingest import snapshot_times
from shipway.scaffold.columns import Profile
from shipway.scaffold.errors import ScaffoldError

SNAPSHOT_SPREAD_DAYS = 730
"""Without a date column, rows are spread evenly over this many days, in file order."""
SPLIT_SHARES = (0.55, 0.70, 0.85)
"""Shares of the rows (in time order) before validation, test and the live window start:
55% train, 15% validation, 15% test, and the newest 15% kept for live replay."""
MIN_TRAIN_ROWS = 30
MIN_WINDOW_ROWS = 10
"""Fewest rows a held-out or live window may hold; fewer measures nothing."""
WINDOWS = ("train", "validation", "test", "live")
ORDERED_TARGET_RHO = 0.3
ORDERED_FEATURE_RHO = 0.5
"""Rank correlations with file order above which the rows look sorted by the target, or
by another column (a town's index, a year counting down)."""


@dataclass
class EventTime:
    """The event time of every row: a column of the data, or derived from file order."""

    column: str | None
    fmt: str | None
    times: pd.Series
    derive: dict[str, Any] = field(default_factory=dict)
    note: str = ""

    @property
    def spec(self) -> dict[str, Any]:
        """The spec's ``event_timestamp`` section."""
        return {"column": self.column, "format": self.fmt} if self.column else {"column": None}


def event_time(
    df: pd.DataFrame, profiles: dict[str, Profile], target: str, row_key: str, today: date
) -> EventTime:
    """A date column without nulls (the one with most distinct days), else snapshot times
    spread over the two years before ``today`` in file order, the assumption stated."""
    dated = [p for p in profiles.values() if p.kind == "datetime" and p.nulls == 0]
    dated = [p for p in dated if p.name != target]
    if dated:
        ts = max(dated, key=lambda p: p.unique)
        times = pd.to_datetime(df[ts.name], format=ts.fmt, utc=True)
        return EventTime(
            ts.name, ts.fmt, times, note=f"event time: column {ts.name!r} ({ts.fmt or 'ISO 8601'})"
        )
    times = pd.Series(snapshot_times(len(df), today, SNAPSHOT_SPREAD_DAYS), index=df.index)
    return EventTime(
        None,
        None,
        pd.to_datetime(times, utc=True),
        derive={
            "row_key": row_key,
            "snapshot_time": today,
            "snapshot_spread_days": SNAPSHOT_SPREAD_DAYS,
        },
        note=f"no date column: ASSUMED rows arrive in file order, evenly over the "
        f"{SNAPSHOT_SPREAD_DAYS} days before {today} (derive.snapshot_time); row key "
        f"{row_key!r}. Replace with a real event time if the data has one.",
    )


def _days(times: pd.Series) -> pd.Series:
    """Calendar days (naive, UTC) of ``times``, in time order."""
    days = pd.to_datetime(times, utc=True).dt.tz_localize(None).dt.normalize()
    return days.sort_values().reset_index(drop=True)


def propose_split(times: pd.Series) -> dict[str, date]:
    """``validation_start``, ``test_start`` and ``end`` at the row shares of SPLIT_SHARES.

    A window starts on the day of the row at its share, moved to a later day when an
    earlier window would otherwise be empty; ``end`` is the day before the live window,
    which needs a test window of at least two days (the spec's ``end > test_start``).
    """
    days = _days(times)
    n = len(days)
    first, last = days.iloc[0], days.iloc[-1]
    one = pd.Timedelta(days=1)

    def start(share: float, not_before: pd.Timestamp) -> pd.Timestamp:
        at = days.iloc[min(int(share * n), n - 1)]
        if at >= not_before:
            return at
        later = days[days >= not_before]
        if later.empty:
            raise ScaffoldError(
                f"the event times hold too few distinct days ({days.nunique()}, "
                f"{first:%Y-%m-%d} .. {last:%Y-%m-%d}) for train, validation, test and a "
                "later live window"
            )
        return later.iloc[0]

    v0 = start(SPLIT_SHARES[0], first + one)
    t0 = start(SPLIT_SHARES[1], v0 + one)
    live = start(SPLIT_SHARES[2], t0 + 2 * one)
    return {"validation_start": v0.date(), "test_start": t0.date(), "end": (live - one).date()}


def windows(times: pd.Series, split: dict[str, date]) -> pd.Series:
    """The window (train, validation, test, live) of every row, aligned with ``times``."""
    days = pd.to_datetime(times, utc=True).dt.tz_localize(None).dt.normalize()
    v0, t0, end = (pd.Timestamp(split[k]) for k in ("validation_start", "test_start", "end"))
    out = pd.Series("train", index=times.index)
    out[days >= v0] = "validation"
    out[days >= t0] = "test"
    out[days > end] = "live"
    return out


def check_windows(window: pd.Series, labels: pd.Series | None) -> dict[str, int]:
    """Rows per window; every window holds enough rows and, for a classifier, both labels.

    A classifier's held-out window with one label has no ROC AUC: the gate could never
    pass. That happens when the file is sorted by the target and rows are assumed to
    arrive in file order, so the message says what to change.
    """
    counts = {w: int((window == w).sum()) for w in WINDOWS}
    thin = [
        f"{w} {counts[w]}"
        for w in WINDOWS
        if counts[w] < (MIN_TRAIN_ROWS if w == "train" else MIN_WINDOW_ROWS)
    ]
    if thin:
        raise ScaffoldError(
            f"too few rows for a time split ({', '.join(thin)} rows; at least "
            f"{MIN_TRAIN_ROWS} to train and {MIN_WINDOW_ROWS} per held-out window)"
        )
    if labels is not None:
        for w in WINDOWS:
            seen = labels[window == w].astype(str).unique()
            if len(seen) < 2:
                raise ScaffoldError(
                    f"the {w} window holds only the label {seen[0]!r}: the rows look sorted "
                    "by the target. Give the data an event-time column, or shuffle the file's "
                    "rows if they have no order in time"
                )
    return counts


def file_order_warning(
    df: pd.DataFrame, profiles: dict[str, Profile], target: pd.Series
) -> str | None:
    """A warning when rows assumed to arrive in file order look sorted by something: by
    the target, or strongly by another column (keys and row numbers aside). Then the
    time split trains and tests on different kinds of rows, or on the future, unless the
    file is in time order, and only the user can tell which."""
    position = pd.Series(np.arange(len(df)), dtype=float, index=df.index)

    def rho(v: pd.Series) -> float:
        return float(position.corr(v.astype(float), method="spearman")) if v.nunique() > 1 else 0.0

    found = (str(target.name), rho(target)) if target.nunique() > 1 else ("", 0.0)
    if abs(found[1]) < ORDERED_TARGET_RHO:
        others = [
            (p.name, rho(df[p.name]))
            for p in profiles.values()
            if p.numeric and not p.id_like and p.name != target.name
        ]
        found = max(others, key=lambda o: abs(o[1]), default=("", 0.0))
        if abs(found[1]) < ORDERED_FEATURE_RHO:
            return None
    return (
        f"WARNING: the rows look ordered by {found[0]} (rank correlation with file order "
        f"{found[1]:+.2f}): unless the file is in time order, the time split trains and tests "
        "on different kinds of rows. Give the data an event-time column, or shuffle its rows"
    )
