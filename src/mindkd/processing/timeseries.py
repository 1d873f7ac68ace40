"""Hourly EHR tensors with observation masks, built bucket by bucket into a memory-mapped store.

Rules (../shared/MIMIC.md, "Time series"), for each stay:

- hour ``h`` covers ``[intime + h, intime + h + 1)``; events before ``intime`` or at/after the end
  of the stay's input window are not used (counted) — except slow variables (height, weight)
  charted in the look-back window before ``intime`` (``Lookback``, kept by ingestion): they are
  observed in hour 0, before any value charted in hour 0 itself (counted as ``events_looked_back``);
- within an hour and channel the last value wins: the latest ``charttime``; values charted at the
  same second resolve to the largest (a fixed, documented tie-break, matching the cleaned events'
  ``stay_id, charttime, channel, value`` order);
- before a channel's first observation its ``normal`` value is imputed; after it the last observed
  value is carried forward;
- one mask channel per variable: 1 where the channel was observed in that hour.

Two windows: ``hours=T`` (in-hospital mortality, T = 48) gives every stay ``length = T``;
``max_hours=M`` (phenotyping, the whole stay) gives ``length = min(ceil(stay hours), M)``, at
least 1, and pads the array to ``T = M``. Padding hours (``h >= length``) are 0 in values and masks;
models read ``length``.

``build_hourly_store`` returns an ``ArrayStore`` with ``values (N, T, 2C) float32``: the C raw-unit
values (imputed, carried forward) followed by the C masks, in ``VARIABLES`` order; its index is
``stay_id, row, length``. It reads one bucket of cleaned events at a time and writes into an
``np.memmap`` scratch file, so memory depends on the bucket size, never on N. A bucket larger than
``slice_rows`` (one stay with millions of events) is read in pieces of at most ``slice_rows`` rows
(``mindkd.processing.slicing.read_pieces``): each piece is reduced to the last value of each cell
it touches, and these merge exactly, so memory is bounded by the slice and by the cells (at most
window x channels per stay), never by the largest stay. Everything is vectorised per piece:
(row, hour, channel) cells are scattered into a dense block, the last value per cell is picked with
one sort, and forward filling is a running maximum of the last observed hour index along time.
There is no loop over events or stays.
"""

from __future__ import annotations

import logging
import os
import weakref
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from itertools import groupby
from operator import itemgetter
from typing import Any, Protocol

import numpy as np
import pandas as pd
import pyarrow as pa
from tqdm.auto import tqdm

from mindkd.io.array_store import ArrayStore
from mindkd.io.scratch import new_scratch_file
from mindkd.mimic.variables import NUM_VARIABLES, VARIABLE_NAMES, VARIABLES
from mindkd.processing.ingest import NO_LOOKBACK, Lookback
from mindkd.processing.slicing import DEFAULT_SLICE_ROWS, read_pieces, split_rows

logger = logging.getLogger(__name__)

EVENT_COLUMNS: tuple[str, ...] = ("stay_id", "charttime", "channel", "value")
SECONDS_PER_HOUR = 3600
NORMALS = np.array([v.normal for v in VARIABLES], dtype=np.float32)
DEFAULT_CHUNK_ROWS = 1024

EventTable = pa.Table | pd.DataFrame


class TimeSeriesError(ValueError):
    """Inputs of the hourly tensors are inconsistent (columns, duplicate stays, bad parameters)."""


class _ReadableBuckets(Protocol):
    n_buckets: int

    def read(self, bucket: int) -> EventTable: ...


def iter_event_buckets(
    parts: _ReadableBuckets | Iterable[Any] | EventTable,
    columns: tuple[str, ...] = EVENT_COLUMNS,
    max_rows: int = DEFAULT_SLICE_ROWS,
) -> Iterator[Iterator[EventTable]]:
    """The cleaned events of each bucket, in pieces of at most ``max_rows`` rows.

    Yields one iterator of pieces per bucket (consume it before taking the next bucket). Accepts
    an ``EventParts``/``MemoryEventParts`` (anything with ``n_buckets`` and ``read``; only
    ``columns`` are read where ``read`` takes ``columns``; a large bucket is streamed where the
    store has ``iter_batches``), a single table (one bucket), or an iterable of tables (one bucket
    each) or of ``(bucket, table)`` pairs (consecutive pairs of one bucket are one bucket).
    """
    for _, group in groupby(_event_pieces(parts, columns, max_rows), key=itemgetter(0)):
        yield (piece for _, piece in group)


def _event_pieces(
    parts: _ReadableBuckets | Iterable[Any] | EventTable,
    columns: tuple[str, ...],
    max_rows: int,
) -> Iterator[tuple[int, EventTable]]:
    """``(bucket, piece)`` pairs, a bucket's pieces one after another."""
    if isinstance(parts, pa.Table | pd.DataFrame):
        for piece in split_rows(parts, max_rows):
            yield 0, piece
        return
    if hasattr(parts, "n_buckets") and hasattr(parts, "read"):
        for bucket in range(parts.n_buckets):
            for piece in read_pieces(parts, bucket, max_rows, columns):
                yield bucket, piece
        return
    for position, item in enumerate(parts):
        bucket, table = item if isinstance(item, tuple) else (position, item)
        for piece in split_rows(table, max_rows):
            yield bucket, piece


def event_arrays(table: EventTable) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``stay_id`` (int64), ``charttime`` (int64 seconds), ``channel`` (int64), ``value`` (float32)."""
    missing = [c for c in EVENT_COLUMNS if c not in _column_names(table)]
    if missing:
        raise TimeSeriesError(
            f"cleaned events lack column(s) {missing} (have {_column_names(table)})"
        )
    stay = _numpy(table, "stay_id").astype(np.int64, copy=False)
    seconds = to_seconds(_numpy(table, "charttime"))
    channel = _numpy(table, "channel").astype(np.int64, copy=False)
    value = _numpy(table, "value").astype(np.float32, copy=False)
    return stay, seconds, channel, value


def _column_names(table: EventTable) -> list[str]:
    return list(table.column_names) if isinstance(table, pa.Table) else list(table.columns)


def _numpy(table: EventTable, name: str) -> np.ndarray:
    if isinstance(table, pa.Table):
        return table.column(name).to_numpy()
    return table[name].to_numpy()


def to_seconds(times: np.ndarray | pd.Series) -> np.ndarray:
    """Datetimes (any unit, or a pandas column) as int64 seconds since the epoch; NaT -> int64 min."""
    values = np.asarray(times)
    if not np.issubdtype(values.dtype, np.datetime64):
        values = pd.to_datetime(values).to_numpy()
    return values.astype("datetime64[s]").astype(np.int64)


@dataclass
class _StayTable:
    """Stays in row order with their window: intime (s), length (hours), row lookup by stay_id."""

    stay_ids: np.ndarray
    intime: np.ndarray
    length: np.ndarray
    lookup: pd.Index = field(repr=False)

    @classmethod
    def build(cls, stays: pd.DataFrame, hours: int | None, max_hours: int | None) -> _StayTable:
        needed = ["stay_id", "intime"] + (["outtime"] if hours is None else [])
        missing = [c for c in needed if c not in stays.columns]
        if missing:
            raise TimeSeriesError(f"stays lack column(s) {missing} (have {list(stays.columns)})")
        stay_ids = stays["stay_id"].to_numpy(dtype=np.int64)
        duplicated = pd.Index(stay_ids)[pd.Index(stay_ids).duplicated()]
        if len(duplicated):
            raise TimeSeriesError(
                f"stays has duplicate stay_id values, e.g. {duplicated[:5].tolist()}"
            )
        intime = to_seconds(stays["intime"])
        if stays["intime"].isna().any():
            raise TimeSeriesError("stays column 'intime' has missing values")
        if hours is not None:
            length = np.full(len(stays), hours, dtype=np.int64)
        else:
            if stays["outtime"].isna().any():
                raise TimeSeriesError("stays column 'outtime' has missing values")
            span = (to_seconds(stays["outtime"]) - intime) / SECONDS_PER_HOUR
            assert max_hours is not None
            length = np.clip(np.ceil(span), 1, max_hours).astype(np.int64)
        return cls(stay_ids, intime, length, pd.Index(stay_ids))


def _window(hours: int | None, max_hours: int | None) -> int:
    if (hours is None) == (max_hours is None):
        raise TimeSeriesError(
            "give exactly one of hours (fixed window, e.g. ihm 48) and max_hours "
            f"(whole stay, capped; e.g. pheno 240), got hours={hours}, max_hours={max_hours}"
        )
    window = hours if hours is not None else max_hours
    assert window is not None
    if int(window) < 1:
        raise TimeSeriesError(f"the window must be at least 1 hour, got {window}")
    return int(window)


@dataclass
class _Cells:
    """The observed cells of one bucket, one per (row, hour, channel), sorted by row."""

    row: np.ndarray
    hour: np.ndarray
    channel: np.ndarray
    value: np.ndarray


def bucket_cells(
    pieces: Iterable[EventTable],
    stays: _StayTable,
    counts: dict[str, int],
    lookback: Lookback = NO_LOOKBACK,
) -> _Cells:
    """The last value of each (row, hour, channel) cell of one bucket; updates ``counts``.

    The bucket may come in pieces (``iter_event_buckets``): each piece is reduced to the last
    value of each of its cells, and those merge exactly (a cell's latest second wins, then the
    largest value at that second), so the cells do not depend on where the bucket was cut.
    """
    window = int(stays.length.max()) if len(stays.length) else 1
    span = SECONDS_PER_HOUR + lookback.seconds
    key, value = np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32)
    for piece in pieces:
        piece_key, piece_value = _piece_cells(piece, stays, counts, lookback, window)
        if len(key):  # merge with the cells of the earlier pieces
            piece_key, piece_value = _last_per_cell(
                np.concatenate([key, piece_key]), np.concatenate([value, piece_value]), span
            )
        key, value = piece_key, piece_value
    counts["cells_observed"] += len(key)
    cell = key // span  # (row * window + hour) * C + channel, ascending
    return _Cells(
        row=cell // NUM_VARIABLES // window,
        hour=cell // NUM_VARIABLES % window,
        channel=cell % NUM_VARIABLES,
        value=value,
    )


def _piece_cells(
    table: EventTable,
    stays: _StayTable,
    counts: dict[str, int],
    lookback: Lookback,
    window: int,
) -> tuple[np.ndarray, np.ndarray]:
    """``(key, value)`` of the last value of each cell of one piece, ``key`` sorted.

    ``key = cell * span + offset``: the cell ``(row * window + hour) * C + channel``, then the
    second in the cell's hour (``offset``, from ``-lookback`` for looked-back values of hour 0).
    """
    stay, seconds, channel, value = event_arrays(table)
    counts["events_in"] += len(stay)
    row = stays.lookup.get_indexer(stay)
    known = row >= 0
    counts["events_other_stays"] += int((~known).sum())
    bad_channel = known & ((channel < 0) | (channel >= NUM_VARIABLES))
    if bad_channel.any():
        raise TimeSeriesError(
            f"column 'channel' must index VARIABLES (0..{NUM_VARIABLES - 1}), "
            f"got {np.unique(channel[bad_channel])[:10].tolist()}"
        )
    row, seconds, channel, value = row[known], seconds[known], channel[known], value[known]
    since_intime = seconds - stays.intime[row]
    hour = np.floor_divide(since_intime, SECONDS_PER_HOUR)
    early = (
        (hour < 0)
        & np.isin(channel, lookback.channels)
        & (since_intime >= -lookback.seconds)
        & ~np.isnan(value)
    )
    hour[early] = 0  # observed in hour 0, ordered before the hour's own values (offset < 0)
    counts["events_looked_back"] += int(early.sum())
    before = hour < 0
    after = hour >= stays.length[row]
    missing = np.isnan(value)
    counts["events_before_intime"] += int(before.sum())
    counts["events_after_window"] += int(after.sum())
    counts["events_missing_value"] += int((missing & ~before & ~after).sum())
    keep = ~(before | after | missing)
    row, hour, channel, value, seconds = (
        row[keep],
        hour[keep],
        channel[keep],
        value[keep],
        seconds[keep],
    )
    counts["events_used"] += len(row)
    cell = (row * window + hour) * NUM_VARIABLES + channel  # unique per (row, hour, channel)
    # seconds into the cell's hour: [0, 3600), or [-lookback, 0) for looked-back values of hour 0
    span = SECONDS_PER_HOUR + lookback.seconds
    offset = seconds - stays.intime[row] - hour * SECONDS_PER_HOUR + lookback.seconds
    return _last_per_cell(cell * span + offset, value, span)


def _last_per_cell(key: np.ndarray, value: np.ndarray, span: int) -> tuple[np.ndarray, np.ndarray]:
    """Per cell (``key // span``): its latest ``key``, with the largest value at that key."""
    if not len(key):
        return key, value
    order = np.argsort(key)
    key, value = key[order], value[order]
    # runs of one cell at one second: the largest value of the run (order-free, no stable sort)
    run_start = np.flatnonzero(np.r_[True, key[1:] != key[:-1]])
    run_value = np.maximum.reduceat(value, run_start)
    run_key = key[run_start]
    run_cell = run_key // span
    last_run = np.r_[run_cell[1:] != run_cell[:-1], True]
    return run_key[last_run], run_value[last_run]


def fill_block(cells: _Cells, rows: np.ndarray, length: np.ndarray, window: int) -> np.ndarray:
    """The dense ``(len(rows), window, 2C)`` float32 block of ``rows`` (sorted) from their cells.

    Values: the observed value, else the last observed value of that channel, else its normal;
    masks: 1 where observed. Hours at or past each row's ``length`` are 0 in both halves.
    """
    n, channels = len(rows), NUM_VARIABLES
    local = np.searchsorted(rows, cells.row)
    observed = np.zeros((n, window, channels), dtype=bool)
    observed[local, cells.hour, cells.channel] = True
    raw = np.zeros((n, window, channels), dtype=np.float32)
    raw[local, cells.hour, cells.channel] = cells.value
    # index of the last observed hour so far (-1: none yet), a running maximum along time
    last_seen = np.where(observed, np.arange(window, dtype=np.int32)[None, :, None], -1)
    np.maximum.accumulate(last_seen, axis=1, out=last_seen)
    filled = np.take_along_axis(raw, np.maximum(last_seen, 0), axis=1)
    filled = np.where(last_seen >= 0, filled, NORMALS[None, None, :])
    block = np.concatenate([filled, observed.astype(np.float32)], axis=2)  # (n, T, 2C)
    block[np.arange(window)[None, :] >= length[:, None]] = 0.0
    return block


def _empty_rows(rows: np.ndarray, length: np.ndarray, window: int) -> np.ndarray:
    """Blocks of stays without events: normals up to each length, masks 0, padding 0."""
    block = np.zeros((len(rows), window, 2 * NUM_VARIABLES), dtype=np.float32)
    block[:, :, :NUM_VARIABLES] = NORMALS
    block[np.arange(window)[None, :] >= length[:, None]] = 0.0
    return block


def open_scratch(shape: tuple[int, ...], scratch_dir: str | None, prefix: str) -> np.ndarray:
    """A writable float32 array backed by a new scratch file (in memory when it has no rows).

    Finish with ``seal_scratch`` (read-only, deleted once collected) or ``discard_scratch``. The
    file is named after this process; the scratch of ``prefix`` left by killed runs is removed first.
    """
    if shape[0] == 0:
        return np.zeros(shape, dtype=np.float32)
    descriptor, path = new_scratch_file(prefix, ".f32", scratch_dir)
    os.close(descriptor)
    try:
        return np.memmap(path, dtype=np.float32, mode="w+", shape=shape)
    except BaseException:
        _unlink(path)
        raise


def seal_scratch(array: np.ndarray) -> np.ndarray:
    """The filled scratch array reopened read-only; its file is deleted when it is collected.

    ``ArrayStoreDataset`` copies such a memmap file-wise when it saves the store.
    """
    if not isinstance(array, np.memmap):
        return array
    array.flush()
    path, shape = str(array.filename), array.shape
    sealed = np.memmap(path, dtype=np.float32, mode="r", shape=shape)
    weakref.finalize(sealed, _unlink, path)
    return sealed


def discard_scratch(array: np.ndarray) -> None:
    """Delete the scratch file of an array that will not be used (after an error)."""
    if isinstance(array, np.memmap) and array.filename:
        _unlink(str(array.filename))


def _unlink(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def build_hourly_store(
    event_parts: _ReadableBuckets | Iterable[Any] | EventTable,
    stays: pd.DataFrame,
    *,
    hours: int | None = None,
    max_hours: int | None = None,
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
    scratch_dir: str | None = None,
    progress: bool | None = None,
    lookback: Lookback = NO_LOOKBACK,
    slice_rows: int = DEFAULT_SLICE_ROWS,
) -> ArrayStore:
    """Hourly values + masks of ``stays`` (row order = ``stays`` order) from cleaned events.

    Args:
        event_parts: cleaned events by bucket (``EventParts``; see ``iter_event_buckets``).
            A stay's events must all be in one bucket (pass 1 routes by ``stay_id``).
        stays: ``stay_id, intime`` (and ``outtime`` with ``max_hours``), one row per stay.
        hours: fixed window (``ihm``: 48): ``T = hours``, every length ``hours``.
        max_hours: whole stay capped (``pheno``): ``T = max_hours``, length
            ``min(ceil(stay hours), max_hours)``, at least 1.
        chunk_rows: stays densified at a time (bounds memory per bucket).
        scratch_dir: folder of the scratch memmap (default: the system temp folder).
        progress: tqdm bar over buckets (None: only on a terminal).
        lookback: slow variables charted this long before ``intime`` are observed in hour 0
            (the same ``Lookback`` that ingestion kept them with).
        slice_rows: events read at a time (``ehr.slice_rows``); a larger bucket is read in
            pieces, with the same result.

    Returns an ``ArrayStore`` with ``values (N, T, 2C) float32`` and index
    ``stay_id, row, length``; ``metadata`` holds the window and the event/stay counts.
    """
    window = _window(hours, max_hours)
    table = _StayTable.build(stays, hours, max_hours)
    n, width = len(table.stay_ids), 2 * NUM_VARIABLES
    counts = dict.fromkeys(
        (
            "events_in",
            "events_other_stays",
            "events_looked_back",
            "events_before_intime",
            "events_after_window",
            "events_missing_value",
            "events_used",
            "cells_observed",
        ),
        0,
    )
    values = open_scratch((n, window, width), scratch_dir, "ehr_hourly_")
    try:
        untouched = _fill(
            values,
            iter_event_buckets(event_parts, max_rows=slice_rows),
            table,
            counts,
            progress=progress,
            chunk_rows=chunk_rows,
            lookback=lookback,
        )
    except BaseException:
        discard_scratch(values)
        raise
    values = seal_scratch(values)
    index = pd.DataFrame(
        {"stay_id": table.stay_ids, "row": np.arange(n, dtype=np.int64), "length": table.length}
    )
    metadata = {
        "window": "first_hours" if hours is not None else "stay_capped",
        "hours": window,
        "channels": list(VARIABLE_NAMES),
        "layout": "values (raw units, imputed) then masks",
        "stays": n,
        "stays_without_events": len(untouched),  # no usable event in their window
        "lookback": {"hours": lookback.hours, "variables": list(lookback.variables)},
        **counts,
    }
    _log_summary(metadata)
    return ArrayStore(arrays={"values": values}, index=index, key="stay_id", metadata=metadata)


def _fill(
    values: np.ndarray,
    buckets: Iterable[Iterable[EventTable]],
    table: _StayTable,
    counts: dict[str, int],
    *,
    progress: bool | None,
    chunk_rows: int,
    lookback: Lookback,
) -> np.ndarray:
    """Write every stay's rows into ``values``; return the rows of stays without events."""
    window = values.shape[1]
    touched = np.zeros(len(table.stay_ids), dtype=bool)
    for pieces in tqdm(buckets, desc="hourly tensors", unit="bucket", disable=_disabled(progress)):
        cells = bucket_cells(pieces, table, counts, lookback)
        rows = np.unique(cells.row)
        if touched[rows].any():
            raise TimeSeriesError(
                "a stay's events are spread over several buckets; cleaned events must be "
                "bucketed by stay_id"
            )
        touched[rows] = True
        _write_rows(
            values, cells, rows=rows, length=table.length, window=window, chunk_rows=chunk_rows
        )
    untouched = np.flatnonzero(~touched)
    for start in range(0, len(untouched), chunk_rows):
        rows = untouched[start : start + chunk_rows]
        values[rows] = _empty_rows(rows, table.length[rows], window)
    return untouched


def _write_rows(
    values: np.ndarray,
    cells: _Cells,
    *,
    rows: np.ndarray,
    length: np.ndarray,
    window: int,
    chunk_rows: int,
) -> None:
    """Densify ``rows`` (sorted) ``chunk_rows`` at a time and write them into ``values``."""
    bounds = np.searchsorted(cells.row, rows[::chunk_rows])
    bounds = np.append(bounds, len(cells.row))
    for i, start in enumerate(range(0, len(rows), chunk_rows)):
        chunk = rows[start : start + chunk_rows]
        lo, hi = bounds[i], bounds[i + 1]
        part = _Cells(cells.row[lo:hi], cells.hour[lo:hi], cells.channel[lo:hi], cells.value[lo:hi])
        values[chunk] = fill_block(part, chunk, length[chunk], window)


def _disabled(progress: bool | None) -> bool | None:
    return None if progress is None else not progress


def _log_summary(metadata: dict[str, Any]) -> None:
    logger.info(
        "Hourly tensors: %d stays x %d h (%s); %d of %d events used, %d before intime, "
        "%d after the window, %d of other stays; %d stays without events (normals only)",
        metadata["stays"],
        metadata["hours"],
        metadata["window"],
        metadata["events_used"],
        metadata["events_in"],
        metadata["events_before_intime"],
        metadata["events_after_window"],
        metadata["events_other_stays"],
        metadata["stays_without_events"],
    )
