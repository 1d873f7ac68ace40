"""Small helpers shared by the demo modules: ids, times, arrow columns."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

#: A prime just below 9e6: ``(a * k + b) mod P`` permutes 0..P-1, giving unique, unordered ids.
_ID_PRIME = 8_999_993
HOUR = 3600
DAY = 86_400
YEAR = 365 * DAY


def scrambled_ids(index: np.ndarray, base: int, multiplier: int, offset: int) -> np.ndarray:
    """Unique 8-digit ids ``base + perm(index)`` for running indices ``index`` (< 9e6)."""
    index = np.asarray(index, dtype=np.int64)
    if index.size and int(index.max()) >= _ID_PRIME:
        raise ValueError(f"too many ids for the 8-digit scheme (index {int(index.max())})")
    return base + (index * multiplier + offset) % _ID_PRIME


def epoch_seconds(date: str) -> int:
    """Seconds since 1970 of an ISO date (works for the years 2100-2200)."""
    return int(np.datetime64(date, "s").astype(np.int64))


def year_of(seconds: np.ndarray) -> np.ndarray:
    """Calendar year of epoch seconds."""
    return (
        np.asarray(seconds, dtype="datetime64[s]").astype("datetime64[Y]").astype(np.int64) + 1970
    )


def ceil_minute(seconds: np.ndarray) -> np.ndarray:
    """Round epoch seconds up to a whole minute (charting times are minute-resolved)."""
    seconds = np.asarray(seconds, dtype=np.int64)
    return -((-seconds) // 60) * 60


def ts_array(seconds: np.ndarray, mask: np.ndarray | None = None) -> pa.Array:
    """A ``timestamp[s]`` arrow array from epoch seconds (``mask`` True = null)."""
    arr = pa.array(np.asarray(seconds, dtype=np.int64), type=pa.int64(), mask=mask)
    return arr.cast(pa.timestamp("s"))


def int_array(values: np.ndarray, mask: np.ndarray | None = None) -> pa.Array:
    """An ``int64`` arrow array (``mask`` True = null)."""
    return pa.array(np.asarray(values, dtype=np.int64), type=pa.int64(), mask=mask)


def float_array(values: np.ndarray) -> pa.Array:
    """A ``float64`` arrow array; NaN becomes null (an empty CSV field)."""
    values = np.asarray(values, dtype=np.float64)
    return pa.array(values, type=pa.float64(), mask=np.isnan(values))


def text_array(vocab: pa.Array, codes: np.ndarray) -> pa.Array:
    """Strings ``vocab[codes]`` with code -1 as null."""
    codes = np.asarray(codes, dtype=np.int32)
    indices = pa.array(codes, type=pa.int32(), mask=codes < 0)
    return vocab.take(indices)


def segment_arange(counts: np.ndarray) -> np.ndarray:
    """``concat([arange(c) for c in counts])`` without a Python loop."""
    counts = np.asarray(counts, dtype=np.int64)
    total = int(counts.sum())
    starts = np.repeat(np.cumsum(counts) - counts, counts)
    return np.arange(total, dtype=np.int64) - starts


def at_least_one(rate: float, n: int) -> int:
    """How many of ``n`` candidates get a defect: ``round(rate * n)``, at least 1 when n > 0."""
    return min(n, max(1, round(rate * n))) if n > 0 else 0


def decimal_strings(values: np.ndarray) -> pa.Array:
    """Floats as text with at least one decimal (``1.0``, ``-1.0``, ``83015.25``), NaN as null.

    The MIMIC-CXR-JPG CSV files were written by pandas, which keeps the ``.0``.
    """
    text = pc.cast(float_array(values), pa.string())
    integral = pc.invert(pc.match_substring_regex(text, r"[.eE]"))
    dotted = pc.binary_join_element_wise(text, pa.scalar(".0"), "")
    return pc.if_else(integral, dotted, text)
