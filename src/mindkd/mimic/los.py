"""Length-of-stay classes: the buckets of mimic3-benchmarks, applied to the ICU stay that remains.

The ``los`` task reads the first ``hours`` of a stay (the in-hospital mortality cohort: stays of at
least ``hours``) and predicts the class of the ICU length of stay that *remains* after them,
``outtime − (intime + hours)``, in the ten buckets of mimic3-benchmarks (Harutyunyan et al., 2019,
``mimic3benchmark/readers`` and ``mimic3models/metrics.py``): less than 1 day, one class per day up
to 8 days, 8 to 14 days, 14 days and more. A 2026 EHR + CXR benchmark on MIMIC-IV (CareBench) is
said to use a 7-class LoS; its class edges are not public in any source reachable here, so the
published mimic3-benchmarks buckets are used and named as such.

mimic3-benchmarks predicts the remaining stay at every hour; here one prediction is made at the
cutoff, so a stay is one sample (no per-hour repetition). Its buckets are half-open day ranges
``[lower, upper)``; a stay that ends exactly on a boundary belongs to the upper class.
"""

from __future__ import annotations

import itertools
import math

import numpy as np

HOURS_PER_DAY = 24.0
#: Lower edges in days of the ten classes; the last is open-ended.
BUCKET_EDGES_DAYS: tuple[float, ...] = (0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 14.0)
#: Label column of each class: ``los_<lower>_<upper>d``; the last ``los_14d_plus``.
LOS_COLUMNS: tuple[str, ...] = (
    *(f"los_{int(low)}_{int(high)}d" for low, high in itertools.pairwise(BUCKET_EDGES_DAYS)),
    f"los_{int(BUCKET_EDGES_DAYS[-1])}d_plus",
)
NUM_CLASSES = len(LOS_COLUMNS)


def bucket_bounds_hours() -> list[tuple[float, float]]:
    """``[lower, upper)`` of every class in hours of remaining stay (the last upper is inf)."""
    edges = [e * HOURS_PER_DAY for e in BUCKET_EDGES_DAYS] + [math.inf]
    return list(itertools.pairwise(edges))


def los_class(remaining_hours: np.ndarray) -> np.ndarray:
    """The class index (0..9) of each remaining stay in hours; -1 where it is NaN or negative."""
    hours = np.asarray(remaining_hours, dtype=np.float64)
    edges = np.asarray(BUCKET_EDGES_DAYS[1:]) * HOURS_PER_DAY
    classes = np.searchsorted(edges, hours, side="right").astype(np.int64)
    return np.where(np.isfinite(hours) & (hours >= 0), classes, -1)
