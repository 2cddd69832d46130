"""PostgreSQL helpers for the tests that give each component its own database."""

from __future__ import annotations

from shipway.core.predictionlog import url_for


def sa_url(url: str, db: str | None = None) -> str:
    """``url`` (libpq form) as SQLAlchemy's psycopg 3 URL (the prediction log's own
    :func:`~shipway.core.predictionlog.url_for`), on database ``db`` if given."""
    url = url_for(url)
    return url.rsplit("/", 1)[0] + f"/{db}" if db else url


def create_database(url: str, name: str) -> None:
    """``CREATE DATABASE name`` on the server of ``url`` (outside a transaction)."""
    import sqlalchemy as sa

    eng = sa.create_engine(sa_url(url), isolation_level="AUTOCOMMIT")
    with eng.connect() as c:
        c.exec_driver_sql(f'CREATE DATABASE "{name}"')
    eng.dispose()
