"""Read one bucket of events in pieces of bounded size, so memory never follows the largest stay.

Pass 1 routes every event of a stay to one bucket (``stay_id % n_buckets``), so one stay with
millions of events (real MIMIC-IV stays of months, or a corrupt export) makes its bucket that
large, whatever the number of buckets. Every reader of a bucket therefore takes it in pieces of at
most ``max_rows`` rows (``ehr.slice_rows``); a bucket no larger than that is read whole, as before,
at no extra cost.

- ``read_pieces``: the rows of a bucket in file order, ``max_rows`` at a time, for work whose
  per-piece results merge exactly (the hourly tensors' last value per cell; the stays with an
  event in a window).
- ``sorted_slices``: the rows of a bucket in consecutive ``(stay_id, charttime)`` ranges of at
  most ``max_rows`` rows, in key order. All rows of one stay at one charttime fall in the same
  slice, and a slice keeps its rows in their order in the bucket. Pass 2's rules (exact
  duplicates, GCS total from the parts charted at the same time, the output order
  ``stay_id, charttime, channel, value``) only ever compare rows of one stay and one charttime.
  Cleaning the slices one by one and concatenating the results in order therefore gives exactly
  the whole-bucket result.

How ``sorted_slices`` cuts a large bucket: one scan of ``stay_id, charttime`` counts the rows of
each (stay, hour); the sorted counts are cut greedily into ranges of at most ``max_rows`` rows; a
second scan spills the bucket once into one parquet file per range (``write_event_parts``, in a
scratch folder deleted afterwards). A range that is still too large is a single (stay, hour) and
is cut again by (stay, second). Memory is one scan batch, the writer's buffer, the counts (one per
(stay, hour) charted, so bounded by time, not by rows) and one slice. The one case left
unbounded is a single stay with more than ``max_rows`` rows charted at the same second: that
second is cleaned as one slice.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from mindkd.io.event_parts import EventParts, write_event_parts
from mindkd.io.scratch import scratch_folder

logger = logging.getLogger(__name__)

#: Rows of one bucket held at once by pass 2, the cohort scan and the hourly tensors.
DEFAULT_SLICE_ROWS = 1_000_000
#: Rows per batch of the scans that count and spill a large bucket.
SCAN_ROWS = 1 << 17
KEY_COLUMNS = ["stay_id", "charttime"]
_HOUR = 3_600

EventTable = pa.Table | pd.DataFrame
#: ``columns -> batches``: one more scan of the same rows, in the same order.
Scan = Callable[[list[str] | None], Iterator[pa.Table]]


def bucket_rows(parts: Any, bucket: int) -> int:
    """Rows of ``bucket``, from the store's metadata when it knows them (no data read)."""
    known = getattr(parts, "bucket_rows", None)
    if known is not None:
        return int(known(bucket))
    return _read(parts, bucket, None).num_rows


def _read(parts: Any, bucket: int, columns: Sequence[str] | None) -> EventTable:
    if columns is None:
        return parts.read(bucket)
    try:
        return parts.read(bucket, columns=list(columns))
    except TypeError:  # a reader without column selection
        return parts.read(bucket)


def split_rows(table: EventTable, max_rows: int) -> Iterator[EventTable]:
    """``table`` in consecutive row ranges of at most ``max_rows`` rows (zero-copy views)."""
    n = len(table)
    if n <= max_rows:
        yield table
        return
    for start in range(0, n, max_rows):
        if isinstance(table, pd.DataFrame):
            yield table.iloc[start : start + max_rows]
        else:
            yield table.slice(start, max_rows)


def read_pieces(
    parts: Any, bucket: int, max_rows: int, columns: Sequence[str] | None = None
) -> Iterator[EventTable]:
    """The rows of ``bucket`` in file order, at most ``max_rows`` at a time.

    A bucket that fits is read whole (one ``read``); a larger one is streamed from the store
    (``iter_batches``) where the store can, else read and split.
    """
    _check_max_rows(max_rows)
    streams = getattr(parts, "iter_batches", None)
    if streams is not None and bucket_rows(parts, bucket) > max_rows:
        selected = None if columns is None else list(columns)
        yield from streams(bucket, columns=selected, batch_rows=max_rows)
        return
    yield from split_rows(_read(parts, bucket, columns), max_rows)


def sorted_slices(
    parts: Any, bucket: int, max_rows: int, scratch_dir: str | None = None
) -> Iterator[pa.Table]:
    """The rows of ``bucket`` in ``(stay_id, charttime)`` ranges of at most ``max_rows`` rows.

    See the module docstring: one slice (the bucket, read whole) when it fits; else ranges in
    key order, rows of one stay and charttime always together, each slice in bucket order.
    """
    _check_max_rows(max_rows)
    rows = bucket_rows(parts, bucket)
    if rows <= max_rows:
        yield _read(parts, bucket, None)
        return
    logger.info("Bucket %s holds %s rows: cleaned in slices of at most %s", bucket, rows, max_rows)
    scan_rows = min(max_rows, SCAN_ROWS)

    def scan(columns: list[str] | None) -> Iterator[pa.Table]:
        return read_pieces(parts, bucket, scan_rows, columns)  # type: ignore[return-value]

    with scratch_folder("ehr_slices_", scratch_dir) as folder:  # a killed run's: removed next time
        yield from _spilled_slices(scan, _schema(parts), max_rows, folder, _HOUR)


def _schema(parts: Any) -> pa.Schema:
    schema = getattr(parts, "schema", None)
    return schema if schema is not None else _read(parts, 0, None).schema


def _spilled_slices(
    scan: Scan, schema: pa.Schema, max_rows: int, folder: Path, granularity: int
) -> Iterator[pa.Table]:
    """Count, cut and spill the rows of ``scan`` by (stay, time // granularity); yield the ranges."""
    stays, times, counts = count_keys(scan(KEY_COLUMNS), granularity)
    starts = cut_ranges(counts, max_rows)
    packer = _KeyPacker(stays, times)
    first_keys = packer(stays[starts], times[starts])
    spill = folder / f"by-{granularity}s"
    write_event_parts(
        _routed(scan(None), packer, first_keys, granularity), spill, schema, len(starts)
    )
    ranges = EventParts(spill)
    for index in range(ranges.n_buckets):
        if ranges.bucket_rows(index) > max_rows and granularity > 1:  # one heavy (stay, hour)

            def again(columns: list[str] | None, index: int = index) -> Iterator[pa.Table]:
                return ranges.iter_batches(index, columns=columns, batch_rows=SCAN_ROWS)

            yield from _spilled_slices(again, schema, max_rows, folder / f"r{index}", 1)
        else:
            yield ranges.read(index)


def count_keys(
    batches: Iterator[EventTable], granularity: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Rows per ``(stay_id, charttime // granularity)``: sorted distinct keys and their counts."""
    stays, times = np.zeros(0, np.int64), np.zeros(0, np.int64)
    counts = np.zeros(0, np.int64)
    for batch in batches:
        stay, seconds = _keys(batch)
        stays, times, counts = _sum_by_key(
            np.concatenate([stays, stay]),
            np.concatenate([times, np.floor_divide(seconds, granularity)]),
            np.concatenate([counts, np.ones(len(stay), np.int64)]),
        )
    return stays, times, counts


def _keys(batch: EventTable) -> tuple[np.ndarray, np.ndarray]:
    if isinstance(batch, pd.DataFrame):
        stay = batch["stay_id"].to_numpy(dtype=np.int64)
        t = batch["charttime"].to_numpy().astype("datetime64[s]").astype(np.int64)
        return stay, t
    stay = batch.column("stay_id").to_numpy().astype(np.int64, copy=False)
    t = batch.column("charttime").cast(pa.timestamp("s")).cast(pa.int64()).to_numpy()
    return stay, t


def _sum_by_key(
    stay: np.ndarray, time: np.ndarray, count: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    if not len(stay):
        return stay, time, count
    order = np.lexsort((time, stay))
    stay, time, count = stay[order], time[order], count[order]
    start = np.flatnonzero(np.r_[True, (stay[1:] != stay[:-1]) | (time[1:] != time[:-1])])
    return stay[start], time[start], np.add.reduceat(count, start)


def cut_ranges(counts: np.ndarray, max_rows: int) -> np.ndarray:
    """First key of each range when ``counts`` (in key order) are cut greedily into ranges of at
    most ``max_rows`` rows; a key with more rows than that is a range of its own.

    >>> cut_ranges(np.array([3, 3, 3, 9, 1, 1]), 6).tolist()
    [0, 2, 3, 4]
    """
    if not len(counts):
        return np.zeros(1, dtype=np.int64)
    ends = np.cumsum(counts)
    starts = [0]
    while True:  # one step per range, never per row
        begin = starts[-1]
        limit = (ends[begin - 1] if begin else 0) + max_rows
        stop = max(int(np.searchsorted(ends, limit, side="right")), begin + 1)
        if stop >= len(counts):
            return np.array(starts, dtype=np.int64)
        starts.append(stop)


class _KeyPacker:
    """``(stay_id, time)`` -> one int64 whose order is the lexicographic one (stays as ranks)."""

    def __init__(self, stays: np.ndarray, times: np.ndarray) -> None:
        self.stays = np.unique(stays)
        self.t0 = int(times.min()) if len(times) else 0
        self.span = (int(times.max()) - self.t0 + 1) if len(times) else 1
        if len(self.stays) * self.span >= 2**62:
            raise ValueError("a bucket spans too many stays x times to slice")

    def __call__(self, stay: np.ndarray, time: np.ndarray) -> np.ndarray:
        return np.searchsorted(self.stays, stay) * self.span + (time - self.t0)


def _routed(
    batches: Iterator[pa.Table], packer: _KeyPacker, first_keys: np.ndarray, granularity: int
) -> Iterator[pa.Table]:
    """Each batch with a ``bucket`` column (its range), grouped by range, rows kept in order."""
    for batch in batches:
        stay, seconds = _keys(batch)
        key = packer(stay, np.floor_divide(seconds, granularity))
        index = np.searchsorted(first_keys, key, side="right") - 1
        order = np.argsort(index, kind="stable")
        yield batch.take(pa.array(order)).add_column(
            0, "bucket", pa.array(index[order].astype(np.int32))
        )


def _check_max_rows(max_rows: int) -> None:
    if max_rows < 1:
        raise ValueError(f"ehr.slice_rows must be >= 1, got {max_rows}")
