"""Statements compiled once and run through the DBAPI cursor store and read exactly what
SQLAlchemy's ``Connection.execute`` stores and reads (shipway/core/driversql.py)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import psycopg

from shipway.core.driversql import Statement

meta = sa.MetaData()
events = sa.Table(
    "events",
    meta,
    sa.Column("id", sa.String(16), primary_key=True),
    sa.Column("ts", sa.DateTime(timezone=True), nullable=False),
    sa.Column("n", sa.Integer, nullable=True),
)
WHEN = datetime(2026, 12, 6, 3, 4, 5, 678901, tzinfo=UTC)


def test_driver_writes_and_reads_what_sqlalchemy_writes_and_reads(tmp_path: Path) -> None:
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'e.db'}")
    meta.create_all(engine)
    insert = Statement.compile(events.insert(), engine.dialect, column_keys=["id", "ts", "n"])
    select = Statement.compile(
        sa.select(events.c.ts, sa.func.coalesce(events.c.n, 0)).where(
            events.c.id == sa.bindparam("key")
        ),
        engine.dialect,
    )
    with engine.begin() as conn:
        conn.execute(events.insert(), {"id": "orm", "ts": WHEN, "n": None})
        cur = conn.connection.cursor()
        insert.execute(cur, {"id": "driver", "ts": WHEN, "n": None})
        # the literal 0 is the statement's own parameter, filled in when not given
        assert select.first(cur, {"key": "driver"}) == (WHEN.replace(tzinfo=None), 0)
        assert select.first(cur, {"key": "nobody"}) is None
        stored = conn.exec_driver_sql("SELECT id, ts FROM events ORDER BY id").all()
    assert stored[0][1] == stored[1][1]  # the same datetime text on disk
    with engine.connect() as conn:
        read = conn.execute(sa.select(events.c.ts).where(events.c.id == "driver")).scalar_one()
    assert read == WHEN.replace(tzinfo=None)


def test_named_paramstyles_get_the_rendered_names_only() -> None:
    """psycopg renders named parameters; anonymous literals keep their rendered name."""
    stmt = Statement.compile(
        sa.select(sa.func.coalesce(sa.func.max(events.c.n), 0)).where(
            events.c.id == sa.bindparam("key")
        ),
        psycopg.dialect(),
    )
    assert not stmt.positional
    assert all(f"%({n})s" in stmt.sql for n in stmt.names)
    params = stmt.params({"key": "a"})
    assert params["key"] == "a" and sorted(params.values(), key=str) == [0, "a"]
