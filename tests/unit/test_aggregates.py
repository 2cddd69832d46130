"""Trailing aggregates only see events strictly before the day of the row (synthetic data)."""

from __future__ import annotations

import pandas as pd
import pytest

from feature_repo.aggregates import entity_table
from shipway.core.spec import Aggregate, EntityFeatures
from shipway.core.usecases import load_usecase


def _events() -> pd.DataFrame:
    ts = pd.to_datetime(["2020-01-01", "2020-01-01", "2020-01-03", "2020-01-10"], utc=True)
    return pd.DataFrame(
        {
            "agent": pd.array(["a", "a", "a", "b"], dtype="string"),
            "event_timestamp": ts,
            "avg_price_per_room": [10.0, 20.0, 60.0, 5.0],
        }
    )


def test_window_excludes_same_day_and_later_and_ages_out() -> None:
    spec = load_usecase("hotel_rates")
    ef = EntityFeatures(
        entity="agent",
        aggregates=[
            Aggregate(
                name="m", function="mean", column="avg_price_per_room", window_days=3, default=-1.0
            ),
            Aggregate(name="n", function="count", column="avg_price_per_room", window_days=3),
            Aggregate(
                name="s", function="std", column="avg_price_per_room", window_days=3, default=-1.0
            ),
        ],
    )
    t = entity_table(spec, _events(), ef).set_index(["agent", "event_timestamp"])
    day = lambda d: pd.Timestamp(d, tz="UTC")  # noqa: E731
    # on Jan 1 agent a has seen nothing: the two bookings that day are not visible
    assert t.loc[("a", day("2020-01-01")), "n"] == 0
    assert t.loc[("a", day("2020-01-01")), "m"] == -1.0
    # Jan 2..3 see the two Jan-1 bookings, not the Jan-3 one
    assert t.loc[("a", day("2020-01-03")), "n"] == 2
    assert t.loc[("a", day("2020-01-03")), "m"] == pytest.approx(15.0)
    assert t.loc[("a", day("2020-01-03")), "s"] == pytest.approx(5.0)
    # Jan 4 window [Jan 1, Jan 3] holds all three
    assert t.loc[("a", day("2020-01-04")), "m"] == pytest.approx(30.0)
    # Jan 5: Jan 1 aged out of the 3-day window
    assert t.loc[("a", day("2020-01-05")), "n"] == 1
    # b's rows start on its first day and reach the day after the last event
    assert t.loc["b"].index.min() == day("2020-01-10")
    assert t.index.get_level_values(1).max() == day("2020-01-11")
