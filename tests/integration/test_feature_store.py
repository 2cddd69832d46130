"""A real Feast store on the real hotel data: point-in-time correctness, online = offline."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from feature_repo.store import historical, online, online_entity
from shipway.core.settings import Settings
from shipway.core.spec import UseCaseSpec

pytestmark = pytest.mark.integration


def _expected(
    events: pd.DataFrame, key: str, value: str, t: pd.Timestamp, days: int, entity: str
) -> tuple[float, int]:
    """Direct computation: the events of ``entity`` in [day(t) - days, day(t))."""
    day = t.floor("D")
    m = (
        (events[entity] == value)
        & (events["event_timestamp"] < day)
        & (events["event_timestamp"] >= day - pd.Timedelta(days=days))
    )
    rows = events.loc[m, key]
    return float(rows.mean()) if len(rows) else float("nan"), len(rows)


def test_training_rows_never_see_their_own_day_or_later(
    feast_store, hotel: UseCaseSpec, events: pd.DataFrame
) -> None:
    # concrete real rows: the busiest agent's bookings on its busiest day, plus others
    busiest = events["agent"].value_counts().index[0]
    per_day = events[events["agent"] == busiest].groupby("event_timestamp").size()
    busy_day = per_day.idxmax()
    assert per_day.max() > 1, "need a day with several bookings of one agent"
    sample = pd.concat(
        [
            events[(events["agent"] == busiest) & (events["event_timestamp"] == busy_day)],
            events.sample(60, random_state=7),
        ]
    )
    out = historical(feast_store, hotel, sample.drop(columns=[hotel.target.column]))
    assert len(out) == len(sample)
    for (_, row), (_, src) in zip(out.iterrows(), sample.iterrows(), strict=True):
        t = src["event_timestamp"]
        mean, n = _expected(events, "avg_price_per_room", row["agent"], t, 90, "agent")
        assert row["agent_bookings_90d"] == n
        if n:
            assert row["agent_adr_mean_90d"] == pytest.approx(mean)
        else:
            assert row["agent_adr_mean_90d"] == pytest.approx(104.9)  # declared default
        cmean, cn = _expected(events, "avg_price_per_room", row["country"], t, 90, "country")
        assert row["country_bookings_90d"] == cn
        if cn:
            assert row["country_adr_mean_90d"] == pytest.approx(cmean)
    # request (booking-time) fields come back unchanged through the request source
    for col in hotel.request_field_names:
        assert (out[col].astype(str).to_numpy() == sample[col].astype(str).to_numpy()).all(), col


def test_busy_day_bookings_share_features_that_exclude_that_day(
    feast_store, hotel: UseCaseSpec, events: pd.DataFrame
) -> None:
    busiest = events["agent"].value_counts().index[0]
    day = events[events["agent"] == busiest].groupby("event_timestamp").size().idxmax()
    rows = events[(events["agent"] == busiest) & (events["event_timestamp"] == day)]
    out = historical(feast_store, hotel, rows.drop(columns=[hotel.target.column]))
    assert out["agent_bookings_90d"].nunique() == 1
    before = events[
        (events["agent"] == busiest)
        & (events["event_timestamp"] < day)
        & (events["event_timestamp"] >= day - pd.Timedelta(days=90))
    ]
    assert out["agent_bookings_90d"].iloc[0] == len(before)
    # changing the prices of that day and later would not change the features
    assert out["agent_adr_mean_90d"].iloc[0] == pytest.approx(before["avg_price_per_room"].mean())


def test_online_equals_historical_for_same_entity_and_time(
    feast_store, hotel: UseCaseSpec, events: pd.DataFrame, hotel_data
) -> None:
    last = pd.read_parquet(hotel_data / "features" / "agent.parquet")["event_timestamp"].max()
    agents = events["agent"].value_counts().index[:5].tolist()
    countries = events["country"].value_counts().index[:5].tolist()
    base = events.iloc[-1]
    entity_df = pd.DataFrame(
        [
            {
                **{c: base[c] for c in hotel.request_field_names},
                "agent": a,
                "country": c,
                "event_timestamp": last,
            }
            for a, c in zip(agents, countries, strict=True)
        ]
    )
    offline = historical(feast_store, hotel, entity_df)
    rows = [
        {k: (v.item() if hasattr(v, "item") else v) for k, v in r.items()}
        for r in entity_df.drop(columns=["event_timestamp"]).to_dict("records")
    ]
    onl = online(feast_store, hotel, rows)
    for name in hotel.stored_feature_names:
        assert onl[name].tolist() == pytest.approx(offline[name].tolist()), name
    # and per entity lookup agrees too
    v = online_entity(feast_store, hotel, "agent", agents[0])
    assert v["agent_bookings_365d"] == offline["agent_bookings_365d"].iloc[0]


def test_unknown_entity_gets_no_stored_value(feast_store, hotel: UseCaseSpec) -> None:
    v = online_entity(feast_store, hotel, "agent", "no_such_agent_xyz")
    assert all(x is None for x in v.values())


def test_smoke_probe_says_when_the_feature_service_is_not_applied(
    feast_store, settings: Settings, hotel: UseCaseSpec, tmp_path: Path
) -> None:
    """Production readiness fails at once, naming the fix, instead of serving a Bento that
    can never become ready (it would wait out the smoke timeout)."""
    from shipway.governance.probes import _feature_service_missing, smoke

    assert _feature_service_missing(settings, hotel) == ""
    empty = Settings(root=settings.root, state_dir=tmp_path / "state")
    why = _feature_service_missing(empty, hotel)
    assert "feature service hotel_rates_v1" in why and "shipway features apply" in why
    res = smoke(empty, hotel, None, None, "some-bento:tag", 0)
    assert res["ok"] is False and res["detail"] == why
