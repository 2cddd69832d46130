"""Mergeable summaries of one column of a monitoring window, on the reference's values.

Why: a window can be larger than memory, so the monitor reads it in chunks and keeps,
per column, a summary whose size depends on the *reference* only. Summaries of two
chunks add up to the summary of both (``merge``), so the result does not depend on how
the window was cut, and each distance is computed from the summaries alone.

- Categories (``CategorySketch``): counts of each reference value, plus one count for all
  values the reference never had. The Jensen-Shannon distance (Evidently's
  ``jensenshannon`` for categorical columns) is exactly the one on the full frequency
  table: a value absent from the reference contributes ``q * ln 2`` whichever value it
  is, so values unseen in the reference can share one bucket.
- Numbers (``NumberSketch``): bins on the reference's distinct values v_1 < ... < v_m.
  A value equal to some v_i is counted in that value's own bin (kept exactly); a value
  strictly between two of them (or outside the range) is counted in that gap, with the
  sum of the gap's values. The Wasserstein-1 distance (Evidently's ``wasserstein``,
  normed by the reference's standard deviation) is then computed with each gap's values
  at their mean. Between two reference values the reference's CDF is constant, so a gap
  in which the window's CDF stays on one side of it contributes a term linear in its
  values: exact from count and sum. Only a gap where the window's CDF crosses the
  reference's can differ, by at most half its width times its share of the window
  (``error_bound``). Values on the reference's support (integer counts, flags, repeated
  prices) are therefore exact, and continuous values are within a bound the sketch
  computes; tests/unit/test_monitor_sketch.py checks both against Evidently.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats
from scipy.spatial import distance

MIN_STD = 0.001
"""Evidently's floor for the reference's standard deviation in the normed Wasserstein."""


@dataclass
class NumberSketch:
    """Window counts on the reference's distinct values and in the gaps between them.

    Bin ``2i + 1`` holds values equal to ``support[i]``; bin ``2i`` the values strictly
    between ``support[i-1]`` and ``support[i]`` (bin 0: below the first, bin ``2m``: above
    the last). ``sums`` holds the sum of each bin's values (exact for the value bins).
    """

    support: np.ndarray
    reference_counts: np.ndarray
    reference_std: float
    counts: np.ndarray
    sums: np.ndarray
    missing: int = 0

    @classmethod
    def of_reference(cls, reference: pd.Series) -> NumberSketch:
        ref = reference.to_numpy(dtype=np.float64, na_value=np.nan)
        ref = ref[~np.isnan(ref)]
        support, ref_counts = np.unique(ref, return_counts=True)
        bins = 2 * len(support) + 1
        std = float(np.std(ref)) if len(ref) else 0.0
        return cls(support, ref_counts, std, np.zeros(bins, np.int64), np.zeros(bins))

    def empty_like(self) -> NumberSketch:
        """A sketch on the same reference with nothing counted (for one chunk)."""
        z = len(self.counts)
        return NumberSketch(
            self.support,
            self.reference_counts,
            self.reference_std,
            np.zeros(z, np.int64),
            np.zeros(z),
        )

    def add(self, values: pd.Series) -> None:
        """Count one chunk's values (missing ones separately)."""
        x = values.to_numpy(dtype=np.float64, na_value=np.nan)
        nan = np.isnan(x)
        self.missing += int(nan.sum())
        x = x[~nan]
        i = np.searchsorted(self.support, x, side="left")
        on_value = np.zeros(len(x), bool)
        inside = i < len(self.support)
        on_value[inside] = self.support[i[inside]] == x[inside]
        idx = 2 * i + on_value
        self.counts += np.bincount(idx, minlength=len(self.counts))
        self.sums += np.bincount(idx, weights=x, minlength=len(self.sums))

    def merge(self, other: NumberSketch) -> None:
        """Add another chunk's sketch of the same reference."""
        if not np.array_equal(self.support, other.support):
            raise ValueError("sketches of different references cannot be merged")
        self.counts += other.counts
        self.sums += other.sums
        self.missing += other.missing

    @property
    def rows(self) -> int:
        """Non-missing values counted."""
        return int(self.counts.sum())

    def _points(self) -> tuple[np.ndarray, np.ndarray]:
        """The window as weighted points: each value bin at its value, each gap at its mean."""
        filled = self.counts > 0
        where = np.divide(self.sums, self.counts, out=np.zeros_like(self.sums), where=filled)
        where[1::2] = self.support  # exact, and immune to rounding in the sums
        return where[filled], self.counts[filled].astype(np.float64)

    def norm(self) -> float:
        return max(self.reference_std, MIN_STD)

    def wasserstein(self) -> float:
        """Wasserstein-1 distance between reference and window over the reference's std."""
        values, weights = self._points()
        w = stats.wasserstein_distance(
            self.support, values, self.reference_counts.astype(np.float64), weights
        )
        return float(w) / self.norm()

    def error_bound(self) -> float:
        """Largest possible |``wasserstein()`` - the distance on the raw values| (normed)."""
        n = self.rows
        if n == 0 or len(self.support) < 2:
            return 0.0
        ref_cdf = np.cumsum(self.reference_counts) / self.reference_counts.sum()
        cur_cdf = np.cumsum(self.counts) / n
        gaps = np.arange(2, len(self.counts) - 1, 2)  # the inner gaps, between two values
        a = ref_cdf[gaps // 2 - 1]  # reference CDF inside the gap
        before, after = cur_cdf[gaps - 1], cur_cdf[gaps]  # window CDF entering / leaving
        crossing = (before < a) & (a < after)
        width = np.diff(self.support)
        share = self.counts[gaps] / n
        return float((share * width / 2)[crossing].sum()) / self.norm()


@dataclass
class CategorySketch:
    """Window counts of each reference category, plus one for every unseen value."""

    categories: pd.Index
    reference_counts: np.ndarray
    counts: np.ndarray
    missing: int = 0

    @classmethod
    def of_reference(cls, reference: pd.Series) -> CategorySketch:
        vc = reference.dropna().value_counts(sort=False)
        k = len(vc)
        return cls(pd.Index(vc.index), vc.to_numpy(np.int64), np.zeros(k + 1, np.int64))

    def empty_like(self) -> CategorySketch:
        return CategorySketch(
            self.categories, self.reference_counts, np.zeros(len(self.counts), np.int64)
        )

    def add(self, values: pd.Series) -> None:
        nan = values.isna().to_numpy()
        self.missing += int(nan.sum())
        codes = self.categories.get_indexer(values[~nan])
        codes[codes < 0] = len(self.categories)  # unseen in the reference: one bucket
        self.counts += np.bincount(codes, minlength=len(self.counts))

    def merge(self, other: CategorySketch) -> None:
        if not self.categories.equals(other.categories):
            raise ValueError("sketches of different references cannot be merged")
        self.counts += other.counts
        self.missing += other.missing

    @property
    def rows(self) -> int:
        return int(self.counts.sum())

    def jensenshannon(self) -> float:
        """Jensen-Shannon distance (natural log) between the frequency tables."""
        ref = np.append(self.reference_counts, 0).astype(np.float64)
        return float(distance.jensenshannon(ref, self.counts.astype(np.float64)))


ColumnSketch = NumberSketch | CategorySketch
