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
  sum of its distances to the gap's lower value. Between two reference values the
  reference's CDF is constant, so a gap in which the window's CDF stays on one side of it
  contributes a term linear in its values: exact from count and sum. Only a gap where the
  two CDFs cross needs its values in order; there are few such gaps, each with few
  values. So the Wasserstein-1 distance (Evidently's ``wasserstein``, normed by the
  reference's standard deviation) is *exact*: from the values the sketch keeps while
  the window fits in memory, or else from a second read of the window that collects
  only the crossing gaps' values (``refine``). Without either, the crossing gaps' values
  are placed at their mean: an estimate within ``error_bound``.
  tests/unit/test_monitor_sketch.py checks all of this against scipy and Evidently.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy.spatial import distance

MIN_STD = 0.001
"""Evidently's floor for the reference's standard deviation in the normed Wasserstein."""


@dataclass
class NumberSketch:
    """Window counts on the reference's distinct values and in the gaps between them.

    Bin ``2i + 1`` holds values equal to ``support[i]``; bin ``2i`` the values strictly
    between ``support[i-1]`` and ``support[i]`` (bin 0: below the first, bin ``2m``: above
    the last). ``offsets`` holds, per gap, the sum of its values minus the gap's anchor
    (its lower reference value; ``support[0]`` for bin 0): sums of small differences keep
    their precision where sums of large values would cancel.

    ``kept`` holds the chunks' sorted values while the window is kept in memory
    (``add(..., keep=True)``); ``refined`` the values of the crossing gaps once a second
    read of the window has collected them (``refine``). With either, ``wasserstein`` is
    exact; with neither it is the estimate within ``error_bound``.
    """

    support: np.ndarray
    reference_counts: np.ndarray
    reference_std: float
    counts: np.ndarray
    offsets: np.ndarray
    missing: int = 0
    kept: list[np.ndarray] | None = field(default=None, repr=False)
    refined: list[np.ndarray] | None = field(default=None, repr=False)
    _cross: np.ndarray | None = field(default=None, repr=False)

    @classmethod
    def of_reference(cls, reference: pd.Series) -> NumberSketch:
        ref = reference.to_numpy(dtype=np.float64, na_value=np.nan)
        ref = ref[~np.isnan(ref)]
        support, ref_counts = np.unique(ref, return_counts=True)
        std = float(np.std(ref)) if len(ref) else 0.0
        return cls.of_summary(support, ref_counts, std)

    @classmethod
    def of_summary(cls, support: np.ndarray, counts: np.ndarray, std: float) -> NumberSketch:
        """An empty sketch on a reference given by its sorted distinct values and counts."""
        bins = 2 * len(support) + 1
        return cls(support, counts, std, np.zeros(bins, np.int64), np.zeros(bins))

    def empty_like(self) -> NumberSketch:
        """A sketch on the same reference with nothing counted (for one chunk)."""
        return NumberSketch.of_summary(self.support, self.reference_counts, self.reference_std)

    def _sorted(self, values: pd.Series | np.ndarray) -> tuple[np.ndarray, int]:
        """The chunk's non-missing values as sorted float64, and how many were missing.

        Sorting first makes the binary searches below walk the support in order, which
        is several times faster than searching unsorted values; sorting before widening
        to float64 keeps a float32 model-frame column's faster sort."""
        x = pd.Series(values).to_numpy()
        if x.dtype.kind not in "fiu":  # nullable or object columns: as floats
            x = pd.Series(values).to_numpy(dtype=np.float64, na_value=np.nan)
        nan = np.isnan(x) if x.dtype.kind == "f" else np.zeros(len(x), bool)
        x = x[~nan] if nan.any() else x.copy()
        x.sort()  # in the column's own type (float32 sorts faster), then widened:
        return x.astype(np.float64, copy=False), int(nan.sum())  # widening keeps the order

    def add(self, values: pd.Series | np.ndarray, *, keep: bool = False) -> None:
        """Count one chunk's values (missing ones separately); ``keep`` its sorted values."""
        x, missing = self._sorted(values)
        self.missing += missing
        m = len(self.support)
        i = np.searchsorted(self.support, x, side="left")
        on_value = np.zeros(len(x), bool)
        inside = i < m
        on_value[inside] = self.support[i[inside]] == x[inside]
        idx = 2 * i + on_value
        anchor = self.support[np.maximum(i - 1, 0)] if m else np.zeros(len(x))
        self.counts += np.bincount(idx, minlength=len(self.counts))
        off = np.where(on_value, 0.0, x - anchor)
        self.offsets += np.bincount(idx, weights=off, minlength=len(self.offsets))
        if keep:
            self.kept = [*(self.kept or []), x]

    def drop_kept(self) -> None:
        """Forget the kept values (the window outgrew memory): exactness needs ``refine``."""
        self.kept = None

    def merge(self, other: NumberSketch) -> None:
        """Add another chunk's sketch of the same reference."""
        if not np.array_equal(self.support, other.support):
            raise ValueError("sketches of different references cannot be merged")
        self.counts += other.counts
        self.offsets += other.offsets
        self.missing += other.missing
        both = self.kept is not None and other.kept is not None
        self.kept = [*(self.kept or []), *(other.kept or [])] if both else None

    @property
    def rows(self) -> int:
        """Non-missing values counted."""
        return int(self.counts.sum())

    def _gaps(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Per inner gap (between ``support[j]`` and ``support[j+1]``): its bin, the
        reference CDF ``a`` and the window CDF ``b`` entering it (as integer numerators
        over N and n), its count, and whether the window's CDF crosses the reference's
        strictly inside it (``b < a < b + k/n``, decided on integers: no rounding)."""
        n, big_n = self.rows, int(self.reference_counts.sum())
        bins = np.arange(2, len(self.counts) - 1, 2)
        ref_cum = np.cumsum(self.reference_counts)[bins // 2 - 1]
        cur_cum = np.cumsum(self.counts)[bins - 1]
        k = self.counts[bins]
        a, lo, hi = ref_cum * n, cur_cum * big_n, (cur_cum + k) * big_n
        return bins, ref_cum, cur_cum, k, (lo < a) & (a < hi)

    def crossing(self) -> np.ndarray:
        """Bins of the gaps where the window's CDF crosses the reference's: the only
        gaps whose contribution depends on more than the count and sum of their values."""
        bins, *_, cross = self._gaps()
        return bins[cross]

    def needs_values(self) -> bool:
        """Whether the exact distance needs the crossing gaps' values it does not hold."""
        return self.kept is None and self.refined is None and len(self.crossing()) > 0

    def _take(self, x: np.ndarray, cross: np.ndarray) -> np.ndarray:
        """The values of sorted ``x`` strictly inside the gaps ``cross``."""
        lo = np.searchsorted(x, self.support[cross // 2 - 1], side="right")
        hi = np.searchsorted(x, self.support[cross // 2], side="left")
        return np.concatenate([x[s:e] for s, e in zip(lo, hi, strict=True) if e > s] or [x[:0]])

    def refine(self, values: pd.Series | np.ndarray) -> None:
        """Collect, from one chunk of a second read of the window, the values that fall
        in crossing gaps (few: the CDFs cross in a few gaps, each holding few values).
        The gaps are found once, at the first chunk: the counts do not change."""
        if self.refined is None or self._cross is None:
            self.refined, self._cross = [], self.crossing()
        x, _ = self._sorted(values)
        self.refined.append(self._take(x, self._cross))

    def _crossing_values(self, cross: np.ndarray) -> np.ndarray | None:
        """The sorted values of the crossing gaps, from what is kept or refined (None:
        neither). Raises ``ValueError`` when they are not the values counted."""
        if self.kept is not None:
            parts = [self._take(x, cross) for x in self.kept]
        elif self.refined is not None:
            parts = self.refined
        else:
            return None
        x = np.sort(np.concatenate(parts or [np.empty(0)]))
        if len(x) != int(self.counts[cross].sum()):
            raise ValueError("the window's second read differs from its first")
        return x

    def norm(self) -> float:
        return max(self.reference_std, MIN_STD)

    def _distance(self) -> tuple[float, float]:
        """The unnormed Wasserstein-1 distance and the bound on its error (0: exact).

        W1 = integral of |F - G|. Between two reference values F is a constant a; a gap
        whose window values keep G on one side of a contributes |(b - a) w + sum(upper -
        x) / n| (count and offsets suffice). A crossing gap needs its sorted values:
        pieces between them at levels b + r/n. Without them its values are placed at
        their mean, off by at most half the gap's width times its share of the window.
        """
        n, big_n, m = self.rows, float(self.reference_counts.sum()), len(self.support)
        if n == 0 or m == 0:
            return 0.0, 0.0
        below = -self.offsets[0] / n  # F = 0 below the first reference value
        above = self.offsets[-1] / n  # F = 1 above the last
        bins, ref_cum, cur_cum, k, cross = self._gaps()
        j = bins // 2  # the gap lies between support[j - 1] and support[j]
        width = self.support[j] - self.support[j - 1]
        a, b = ref_cum / big_n, cur_cum / n
        inner = np.abs((b - a) * width + (k * width - self.offsets[bins]) / n)
        if not cross.any():
            return float(below + above + inner.sum()), 0.0
        c = np.flatnonzero(cross)
        values = self._crossing_values(bins[c])
        if values is None:  # each crossing gap's values at their mean
            mean = self.offsets[bins[c]] / k[c]
            share = k[c] / n
            inner[c] = np.abs(a[c] - b[c]) * mean + np.abs(a[c] - b[c] - share) * (width[c] - mean)
            return float(below + above + inner.sum()), float((share * width[c] / 2).sum())
        gap = np.repeat(np.arange(len(c)), k[c])  # which crossing gap each value is in
        start = np.r_[0, np.cumsum(k[c])[:-1]]
        rank = np.arange(len(values)) - start[gap] + 1  # 1 .. k within its gap
        last = np.r_[gap[1:] != gap[:-1], True]
        upper = self.support[j[c]]
        nxt = np.where(last, upper[gap], np.r_[values[1:], 0.0])
        pieces = np.abs(a[c][gap] - b[c][gap] - rank / n) * (nxt - values)
        first = np.abs(a[c] - b[c]) * (values[start] - self.support[j[c] - 1])
        inner[c] = first + np.bincount(gap, weights=pieces, minlength=len(c))
        return float(below + above + inner.sum()), 0.0

    def distance(self) -> tuple[float, float]:
        """``wasserstein()`` and ``error_bound()`` in one computation."""
        w, bound = self._distance()
        return w / self.norm(), bound / self.norm()

    def wasserstein(self) -> float:
        """Wasserstein-1 distance between reference and window over the reference's std:
        exact with the crossing gaps' values (kept or refined), else the estimate."""
        return self._distance()[0] / self.norm()

    def error_bound(self) -> float:
        """Largest possible |``wasserstein()`` - the exact distance| (normed); 0 when exact."""
        return self._distance()[1] / self.norm()


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
        codes = self.categories.get_indexer(values)
        other = np.flatnonzero(codes < 0)  # missing or unseen: only these are checked
        if len(other):
            nan = pd.Series(values).iloc[other].isna().to_numpy()
            self.missing += int(nan.sum())
            codes[other] = len(self.categories)  # unseen in the reference: one bucket
            codes = np.delete(codes, other[nan])
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
