"""SQLAlchemy Core statements compiled once, executed through the DBAPI cursor.

The prediction log's hot writes run in its group commit, under the log's write lock that
every worker queues for (issue 15). ``Connection.execute`` spends far more Python on a
small statement (cache key, compiled-cache lookup, execution context, result object)
than the database spends running it, and under the lock that time is paid serially by
all workers. So the statements stay written in SQLAlchemy (one definition of the tables
and of each dialect's SQL), are compiled once per dialect, and run on the transaction's
own DBAPI cursor. Parameters go through the dialect's own bind processors and selected
values through its result processors (SQLite's datetime text both ways), so what is
stored and read back is exactly what ``Connection.execute`` would store and read.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, cast

from sqlalchemy.engine import Dialect
from sqlalchemy.sql import ClauseElement
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.selectable import Select
from sqlalchemy.types import TypeEngine

Processor = Callable[[Any], Any] | None


@dataclass
class Statement:
    """One compiled statement: its SQL text, parameter names and value conversions."""

    sql: str
    names: tuple[str, ...]
    """Bind parameter names, in the SQL's order for a positional paramstyle."""
    positional: bool
    processors: Mapping[str, Processor]
    defaults: Mapping[str, Any]
    """Values of the statement's own literals (``coalesce(..., 0)``), unless given."""
    dialect: Dialect
    selected: tuple[TypeEngine[Any], ...] = ()
    """The types of a SELECT's columns."""
    _results: tuple[Processor, ...] | None = field(default=None, repr=False)

    @classmethod
    def compile(
        cls, stmt: ClauseElement, dialect: Dialect, column_keys: Sequence[str] | None = None
    ) -> Statement:
        """``stmt`` for ``dialect``; an INSERT's ``column_keys`` name the columns it sets."""
        compiled = cast(
            SQLCompiler,
            stmt.compile(dialect=dialect, column_keys=list(column_keys) if column_keys else None),
        )
        rendered = {name: bind for bind, name in compiled.bind_names.items()}
        names = tuple(compiled.positiontup or rendered)
        binds = {n: rendered[n] for n in names}
        return cls(
            sql=compiled.string,
            names=names,
            positional=compiled.positiontup is not None,
            processors={
                n: b.type.dialect_impl(dialect).bind_processor(dialect) for n, b in binds.items()
            },
            defaults={n: b.effective_value for n, b in binds.items() if not b.required},
            dialect=dialect,
            selected=(
                tuple(c.type for c in stmt.selected_columns) if isinstance(stmt, Select) else ()
            ),
        )

    def params(self, values: Mapping[str, Any]) -> Any:
        """The driver's parameters for ``values`` (a tuple or a dict, as the driver takes)."""
        converted = {}
        for name in self.names:
            value = values[name] if name in values else self.defaults[name]
            proc = self.processors[name]
            converted[name] = proc(value) if proc is not None and value is not None else value
        return tuple(converted[n] for n in self.names) if self.positional else converted

    def execute(self, cursor: Any, values: Mapping[str, Any]) -> None:
        cursor.execute(self.sql, self.params(values))

    def first(self, cursor: Any, values: Mapping[str, Any]) -> tuple[Any, ...] | None:
        """The first row of a SELECT, each value converted as SQLAlchemy would."""
        cursor.execute(self.sql, self.params(values))
        row = cursor.fetchone()
        if row is None:
            return None
        if self._results is None:  # as SQLAlchemy does: by the driver's type of each column
            self._results = tuple(
                t.dialect_impl(self.dialect).result_processor(self.dialect, d[1])
                for t, d in zip(self.selected, cursor.description, strict=True)
            )
        return tuple(
            proc(v) if proc is not None else v for proc, v in zip(self._results, row, strict=True)
        )
