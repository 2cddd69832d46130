"""Which ground-truth labels a use case's target accepts, and how they are stored.

One rule for the service, which refuses a label that does not fit (``/feedback``), and
for the monitor, which leaves out labels stored before that rule existed. Stored labels
are floats: the value for regression, 1/0 for the positive/other class, the encoding
the training code uses (``shipway.core.modelframe.target_vector``).
"""

from __future__ import annotations

import numpy as np

from shipway.core.spec import Target, Task


def negative_label(target: Target) -> str:
    """The label ``/predict`` answers below the decision threshold."""
    return f"not_{target.positive_class}"


def label_codes(target: Target) -> dict[str, int]:
    """Class labels a binary target's feedback may use, with their codes (positive = 1).

    The positive class, the other label as ``/predict`` answers it (``not_<positive>``)
    and the spec's ``negative_class`` (the other label as in the data) when declared.
    The numbers 0 and 1 are accepted besides these, as the training code encodes them.
    """
    codes = {str(target.positive_class): 1}
    if target.negative_class is not None:
        codes[target.negative_class] = 0
    codes.setdefault(negative_label(target), 0)
    return codes


def valid_actuals(target: Target, actual: np.ndarray) -> np.ndarray:
    """Which stored labels the target admits: 0/1 for a class, finite and within the
    declared range for a value. Labels stored before feedback was validated may not be,
    and a single 7 or 1e308 would make a live metric meaningless."""
    y = np.asarray(actual, dtype=np.float64)
    if target.task is Task.binary_classification:
        return np.isin(y, (0.0, 1.0))
    ok = np.isfinite(y)
    if target.min is not None:
        ok &= y >= target.min
    if target.max is not None:
        ok &= y <= target.max
    return ok
