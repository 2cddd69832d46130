"""The reference side of drift, computed once per model version and cached on disk.

Why: every window compares against the same reference, and the reference-side work
(sorting each numeric column into its distinct values and counts, counting each
category, the standard deviation) is as costly as the window's own. So it is done once
per model version, on first use, and stored beside the downloaded reference under
``<state>/monitoring/<usecase>/references/v<version>/``; a window then only sorts and
counts its own rows. The cache is keyed by the reference file's SHA-256 and the columns
and their kinds, so a changed reference, version or spec rebuilds it instead of reusing
a stale profile.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from monitoring.sketch import CategorySketch, ColumnSketch, NumberSketch
from shipway.core.spec import UseCaseSpec

log = logging.getLogger(__name__)

MAX_DISCRETE_VALUES = 5
"""Numeric columns with at most this many distinct reference values are compared as
categories: a Wasserstein distance normed by the std of a 0/1 flag is unstable."""
PREDICTION = "prediction"

FORMAT = 1
"""Bumped when the stored layout changes: older profiles are rebuilt, never misread."""


def file_digest(path: Path) -> str:
    """SHA-256 of a file (the reference parquet): what the cached profile belongs to."""
    with path.open("rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def column_kinds(spec: UseCaseSpec, reference: pd.DataFrame, columns: list[str]) -> dict[str, str]:
    """``categorical`` or ``numerical`` per column, from the spec and the reference."""
    kinds = {}
    for c in columns:
        discrete = reference[c].nunique(dropna=True) <= MAX_DISCRETE_VALUES
        is_cat = c in spec.categorical_features or (c != PREDICTION and discrete)
        kinds[c] = "categorical" if is_cat else "numerical"
    return kinds


@dataclass(frozen=True)
class ReferenceProfile:
    """Per column, an empty sketch holding the reference's summary (see ``sketch``)."""

    key: str
    kinds: dict[str, str]
    sketches: dict[str, ColumnSketch]

    @classmethod
    def build(
        cls, spec: UseCaseSpec, reference: pd.DataFrame, names: list[str], key: str = ""
    ) -> ReferenceProfile:
        """Summarize the ``names`` columns of ``reference`` (and its ``prediction``), each by
        its kind; columns without any reference value are left out (nothing to compare)."""
        cols = [c for c in names if reference[c].notna().any()]
        if PREDICTION in reference.columns and PREDICTION not in cols:
            cols.append(PREDICTION)
        kinds = column_kinds(spec, reference, cols)
        sketches: dict[str, ColumnSketch] = {
            c: (
                CategorySketch.of_reference(reference[c])
                if k == "categorical"
                else NumberSketch.of_reference(reference[c])
            )
            for c, k in kinds.items()
        }
        return cls(key, kinds, sketches)

    def fresh(self) -> dict[str, ColumnSketch]:
        """Empty window sketches on this reference (the reference arrays are shared)."""
        return {c: sk.empty_like() for c, sk in self.sketches.items()}

    def save(self, directory: Path) -> None:
        """Numeric summaries as ``profile.npz``, categories and the key as ``profile.json``
        (written last, so a profile without its key is never trusted)."""
        directory.mkdir(parents=True, exist_ok=True)
        arrays: dict[str, np.ndarray] = {}
        columns: dict[str, dict[str, object]] = {}
        for i, (c, sk) in enumerate(self.sketches.items()):
            if isinstance(sk, NumberSketch):
                arrays[f"s{i}"], arrays[f"n{i}"] = sk.support, sk.reference_counts
                columns[c] = {"kind": "numerical", "i": i, "std": sk.reference_std}
            else:
                columns[c] = {
                    "kind": "categorical",
                    "values": sk.categories.tolist(),
                    "counts": sk.reference_counts.tolist(),
                }
        text = json.dumps({"key": self.key, "format": FORMAT, "columns": columns})
        meta = directory / "profile.json"
        meta.unlink(missing_ok=True)  # the old key must never vouch for new arrays
        with (directory / "profile.npz").open("wb") as f:
            np.savez(f, **arrays)  # type: ignore[arg-type]  # numpy's stub types **kwds as bool
        tmp = meta.with_suffix(".tmp")
        tmp.write_text(text)
        tmp.replace(meta)

    @classmethod
    def load(cls, directory: Path, key: str) -> ReferenceProfile | None:
        """The stored profile if its key and format match, else None."""
        meta_path = directory / "profile.json"
        if not meta_path.is_file():
            return None
        meta = json.loads(meta_path.read_text())
        if meta.get("key") != key or meta.get("format") != FORMAT:
            return None
        sketches: dict[str, ColumnSketch] = {}
        with np.load(directory / "profile.npz", allow_pickle=False) as arrays:
            for c, m in meta["columns"].items():
                if m["kind"] == "numerical":
                    i = m["i"]
                    sketches[c] = NumberSketch.of_summary(
                        arrays[f"s{i}"], arrays[f"n{i}"], float(m["std"])
                    )
                else:
                    counts = np.asarray(m["counts"], np.int64)
                    sketches[c] = CategorySketch(
                        pd.Index(m["values"]), counts, np.zeros(len(counts) + 1, np.int64)
                    )
        kinds = {c: m["kind"] for c, m in meta["columns"].items()}
        return cls(key, kinds, sketches)


def profile_key(digest: str, spec: UseCaseSpec, names: list[str]) -> str:
    """What a cached profile must match: the reference's bytes, the columns compared and
    the spec's categorical features (which decide the kinds)."""
    parts = [FORMAT, digest, names, sorted(spec.categorical_features)]
    return hashlib.sha256(json.dumps(parts).encode()).hexdigest()


def cached_profile(
    directory: Path, digest: str, spec: UseCaseSpec, reference: pd.DataFrame, names: list[str]
) -> ReferenceProfile:
    """The profile stored in ``directory`` for this reference and columns, built and
    stored on first use (or when the reference, the columns or the spec changed)."""
    key = profile_key(digest, spec, names)
    found = ReferenceProfile.load(directory, key)
    if found is not None:
        return found
    profile = ReferenceProfile.build(spec, reference, names, key)
    try:
        profile.save(directory)
    except (OSError, TypeError) as exc:  # unwritable state dir, categories JSON cannot hold
        log.warning("reference profile not cached in %s: %s", directory, exc)
    return profile
