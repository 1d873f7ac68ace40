"""Pass 1 of the ehr stage: stream chartevents and labevents, keep the variables' rows, route them.

``ingest_events`` reads both event tables batch by batch (a ``MimicEventReader``, or any iterable of
arrow batches with the ``stream_columns`` of ``mindkd.mimic.schemas``) and, vectorised per batch:

1. keeps rows whose ``itemid`` is one of the variables' chart (resp. lab) items (``pc.is_in``);
2. drops rows missing ``subject_id`` or ``charttime`` (and, for chartevents, ``stay_id``);
3. attributes each row to an ICU stay by subject and time (``intime <= charttime <= outtime``)
   with a sorted stays table and ``np.searchsorted``: a lab row gets the stay it falls in, or is
   dropped as ``outside_stay``; a chart row is kept when its own ``stay_id`` contains it, else it
   is dropped as ``stay_mismatch`` (it falls in another stay of the subject) or ``outside_stay``
   (in none) — except a slow variable (height, weight: ``Lookback``) charted for its own stay
   in the look-back window before ``intime`` and in the same admission (not before
   ``admittime``), which is kept and counted as ``looked_back``;
4. routes kept rows into buckets by ``stay_id % n_buckets``, so a stay lives in exactly one
   bucket and pass 2 (``mindkd.processing.events``) can work bucket by bucket: each input batch
   becomes one chunk, its rows grouped by a ``bucket`` column.

It returns a lazy ``EventStream``: nothing is read until a consumer (``EventPartsDataset.save``)
iterates it, and its ``stats`` fill as it is consumed. Every row is counted once, by the first check
it fails; see ``ingest_events`` for the stats keys.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from tqdm.auto import tqdm

from mindkd.mimic.variables import (
    CHANNEL,
    CHART_ITEMS,
    LAB_ITEMS,
    SLOW_VARIABLES,
    VARIABLE_NAMES,
    UnitRule,
)

logger = logging.getLogger(__name__)

DEFAULT_BUCKETS = 32
#: Compressed input bytes per bucket beyond which more buckets are used (pass 2 memory stays flat).
DEFAULT_BUCKET_BYTES = 8 << 20
MAX_BUCKETS = 1024
_RELEASE_EVERY = 32

#: Rows of pass 1: the raw columns pass 2 needs, one row per kept event.
RAW_EVENT_SCHEMA = pa.schema(
    [
        pa.field("stay_id", pa.int64()),
        pa.field("charttime", pa.timestamp("s")),
        pa.field("itemid", pa.int64()),
        pa.field("value", pa.string()),
        pa.field("valuenum", pa.float64()),
        pa.field("valueuom", pa.string()),
        pa.field("source", pa.string()),
    ]
)

SOURCES: tuple[str, str] = ("chart", "lab")
#: Why pass 1 drops a row of a variable's item, in the order the checks run.
INGEST_REASONS: tuple[str, ...] = (
    "missing_subject_id",
    "missing_charttime",
    "missing_stay_id",
    "outside_stay",
    "stay_mismatch",
)
_KEEP = len(INGEST_REASONS)
_LOOKED_BACK = _KEEP + 1  # kept: a slow variable charted in the look-back window before intime


@dataclass(frozen=True)
class Lookback:
    """Values of slow variables charted up to ``hours`` before ``intime`` belong to the stay.

    Height and weight are often charted minutes before ``intime`` (on the real MIMIC-IV demo, 138
    of 142 height rows): as a clinician carries them forward, a row of one of ``variables`` with
    the stay's own ``stay_id``, in ``[max(intime - hours, admittime), intime)``, is kept by pass
    1 and read as observed in hour 0 by the hourly tensors. ``hours = 0`` turns it off.
    """

    hours: float = 24.0
    variables: tuple[str, ...] = SLOW_VARIABLES

    def __post_init__(self) -> None:
        if self.hours < 0:
            raise ValueError(f"ehr.lookback_hours must be >= 0, got {self.hours}")
        unknown = sorted(set(self.variables) - set(VARIABLE_NAMES))
        if unknown:
            raise ValueError(
                f"ehr.lookback_variables: unknown variable(s) {unknown}; known: {VARIABLE_NAMES}"
            )

    @property
    def seconds(self) -> int:
        return round(self.hours * 3600)

    @property
    def channels(self) -> np.ndarray:
        """Channel indices of ``variables`` (empty when the look-back is off)."""
        if not self.seconds:
            return np.zeros(0, dtype=np.int64)
        return np.array(sorted(CHANNEL[v] for v in self.variables), dtype=np.int64)


NO_LOOKBACK = Lookback(hours=0.0)


#: A chunk of a stream: one bucket's rows, or rows of many buckets with a ``bucket`` column
#: (grouped by bucket). ``mindkd.io.event_parts`` reads both.
Chunk = tuple[int, pa.Table] | pa.Table
BUCKET_COLUMN = "bucket"


class EventStream:
    """A single-use, lazy stream of chunks (see ``Chunk``) with ``schema``, ``n_buckets``, ``stats``.

    ``schema`` is that of the rows, without the bucket column. A bucket may come in many chunks.
    ``stats`` is a plain dict that the producer updates as chunks are consumed; it is final
    (``stats["complete"] is True``) once the stream is exhausted. Iterating a second time raises:
    the stream is gone once consumed. With ``whole_buckets`` a bucket's chunks come one after
    another, never interleaved with another bucket's (a consumer may close a bucket's file as soon
    as the next bucket starts).
    """

    def __init__(
        self,
        chunks: Iterator[Chunk],
        schema: pa.Schema,
        n_buckets: int,
        stats: dict[str, Any],
        whole_buckets: bool = False,
    ) -> None:
        self._chunks = chunks
        self.whole_buckets = whole_buckets
        self.schema = schema
        self.n_buckets = n_buckets
        self.stats = stats
        self._consumed = False

    def __iter__(self) -> Iterator[Chunk]:
        if self._consumed:
            raise RuntimeError(
                "This EventStream was already consumed; save it through EventPartsDataset and "
                "load the parts to read it again."
            )
        self._consumed = True
        return self._chunks

    def __repr__(self) -> str:
        return f"EventStream(n_buckets={self.n_buckets}, consumed={self._consumed})"


class BucketedEvents(Protocol):
    """What pass 2 reads: whole buckets by number (``mindkd.io.event_parts.EventParts``).

    Where the store also has ``bucket_rows(bucket)`` and ``iter_batches(bucket, columns,
    batch_rows)``, a bucket too large for one slice is streamed (``mindkd.processing.slicing``);
    without them it is read whole and cut in memory.
    """

    n_buckets: int
    stats: Mapping[str, Any]

    def read(self, bucket: int) -> pa.Table: ...


def _times_to_seconds(values: pd.Series) -> np.ndarray:
    return values.to_numpy(dtype="datetime64[s]").astype(np.int64)


class StayIndex:
    """ICU stays sorted by (subject, intime), for vectorised attribution of events to stays.

    With ``admissions`` (``hadm_id, admittime``) and a ``lookback``, each stay also knows the
    start of its look-back window, ``max(intime - lookback.hours, admittime)``.
    """

    def __init__(
        self,
        icustays: pd.DataFrame,
        admissions: pd.DataFrame | None = None,
        lookback: Lookback = NO_LOOKBACK,
    ) -> None:
        needed = ["subject_id", "stay_id", "intime", "outtime"]
        frame = icustays[needed + (["hadm_id"] if admissions is not None else [])]
        valid = frame[needed].notna().all(axis=1).to_numpy()
        frame = frame[valid]
        subject = frame["subject_id"].to_numpy(dtype=np.int64)
        stay = frame["stay_id"].to_numpy(dtype=np.int64)
        intime = _times_to_seconds(frame["intime"])
        outtime = _times_to_seconds(frame["outtime"])
        lookback_from = intime - lookback.seconds
        if admissions is not None and lookback.seconds:
            admit = frame["hadm_id"].map(
                admissions.drop_duplicates("hadm_id").set_index("hadm_id")["admittime"]
            )
            known = admit.notna().to_numpy()
            admit_s = np.where(known, _times_to_seconds(admit.fillna(frame["intime"])), 0)
            lookback_from = np.where(known, np.maximum(lookback_from, admit_s), lookback_from)
        ordered = outtime >= intime
        self.n_invalid = int((~valid).sum() + (~ordered).sum())
        order = np.lexsort((intime[ordered], subject[ordered]))
        self.subject = subject[ordered][order]
        self.stay_id = stay[ordered][order]
        self.intime = intime[ordered][order]
        self.outtime = outtime[ordered][order]
        self.lookback_from = np.minimum(lookback_from[ordered][order], self.intime)
        self._subjects = np.unique(self.subject)
        rank = np.searchsorted(self._subjects, self.subject)
        self._t0 = int(self.intime.min()) if len(self.intime) else 0
        self._span = (int(self.outtime.max()) - self._t0 + 2) if len(self.outtime) else 2
        if len(self._subjects) * self._span >= 2**62:
            raise ValueError("icustays spans too many subjects x seconds to index")
        self._keys = rank * self._span + (self.intime - self._t0)
        self._by_stay = np.argsort(self.stay_id, kind="stable")
        self._stays_sorted = self.stay_id[self._by_stay]

    def __len__(self) -> int:
        return len(self.stay_id)

    def _within(
        self, pos: np.ndarray, found: np.ndarray, subject: np.ndarray, t: np.ndarray
    ) -> np.ndarray:
        pos = np.where(found, pos, 0)
        return (
            found
            & (self.subject[pos] == subject)
            & (self.intime[pos] <= t)
            & (t <= self.outtime[pos])
        )

    def attribute(self, subject: np.ndarray, t: np.ndarray) -> np.ndarray:
        """Position (in this index) of the stay of ``subject`` holding time ``t``, else -1."""
        if not len(self):
            return np.full(len(subject), -1, dtype=np.int64)
        rank = np.minimum(_search_runs(self._subjects, subject), len(self._subjects) - 1)
        found = self._subjects[rank] == subject
        offset = np.clip(t - self._t0, 0, self._span - 1)
        pos = np.searchsorted(self._keys, rank * self._span + offset, side="right") - 1
        inside = self._within(pos, found & (pos >= 0), subject, t)
        return np.where(inside, pos, -1)

    def _own(self, stay_id: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Position of each ``stay_id`` in this index, and whether it exists."""
        at = np.minimum(_search_runs(self._stays_sorted, stay_id), len(self) - 1)
        return self._by_stay[at], self._stays_sorted[at] == stay_id

    def contains(self, stay_id: np.ndarray, subject: np.ndarray, t: np.ndarray) -> np.ndarray:
        """Whether stay ``stay_id`` exists, belongs to ``subject`` and holds time ``t``."""
        if not len(self):
            return np.zeros(len(stay_id), dtype=bool)
        pos, found = self._own(stay_id)
        return self._within(pos, found, subject, t)

    def in_lookback(self, stay_id: np.ndarray, subject: np.ndarray, t: np.ndarray) -> np.ndarray:
        """Whether ``t`` lies in the look-back window ``[lookback_from, intime)`` of its own stay."""
        if not len(self):
            return np.zeros(len(stay_id), dtype=bool)
        pos, found = self._own(stay_id)
        pos = np.where(found, pos, 0)
        return (
            found
            & (self.subject[pos] == subject)
            & (self.lookback_from[pos] <= t)
            & (t < self.intime[pos])
        )


def _search_runs(sorted_values: np.ndarray, queries: np.ndarray) -> np.ndarray:
    """``np.searchsorted`` that searches once per run of equal queries (events come grouped)."""
    if len(queries) < 2:
        return np.searchsorted(sorted_values, queries)
    starts = np.empty(len(queries), dtype=bool)
    starts[0] = True
    np.not_equal(queries[1:], queries[:-1], out=starts[1:])
    first = np.flatnonzero(starts)
    if len(first) * 4 > len(queries):
        return np.searchsorted(sorted_values, queries)
    found = np.searchsorted(sorted_values, queries[first])
    return np.repeat(found, np.diff(np.append(first, len(queries))))


def _to_numpy(column: pa.Array | pa.ChunkedArray) -> tuple[np.ndarray, np.ndarray]:
    """int64 values (0 where null) and validity of an integer or timestamp column."""
    if pa.types.is_timestamp(column.type):
        column = column.cast(pa.int64())
    if column.null_count:
        valid = column.is_valid().to_numpy(zero_copy_only=False)
        return column.fill_null(0).to_numpy(), valid
    return column.to_numpy(), np.ones(len(column), dtype=bool)


class _Counts:
    """Per-source counters: totals and (reason x variable) drops, as numpy arrays."""

    def __init__(self) -> None:
        n_vars = len(VARIABLE_NAMES)
        self.rows_read = dict.fromkeys(SOURCES, 0)
        self.other_items = dict.fromkeys(SOURCES, 0)
        self.missing_itemid = dict.fromkeys(SOURCES, 0)
        self.by_reason = {s: np.zeros((_LOOKED_BACK + 1, n_vars), dtype=np.int64) for s in SOURCES}
        self.per_bucket: np.ndarray | None = None

    def as_stats(
        self, stays: StayIndex, n_buckets: int, complete: bool, lookback: Lookback
    ) -> dict[str, Any]:
        sources: dict[str, Any] = {}
        by_variable: dict[str, Any] = {}
        for s in SOURCES:
            grid = self.by_reason[s]
            dropped = {"missing_itemid": self.missing_itemid[s]}
            dropped.update({r: int(grid[i].sum()) for i, r in enumerate(INGEST_REASONS)})
            sources[s] = {
                "rows_read": self.rows_read[s],
                "rows_other_items": self.other_items[s],
                "rows_variable_items": int(grid.sum()),
                "rows_kept": int(grid[_KEEP:].sum()),
                "rows_looked_back": int(grid[_LOOKED_BACK].sum()),
                "dropped": dropped,
            }
            by_variable[s] = {r: _named(grid[i]) for i, r in enumerate(INGEST_REASONS)}
            by_variable[s]["kept"] = _named(grid[_KEEP:].sum(axis=0))
            by_variable[s]["looked_back"] = _named(grid[_LOOKED_BACK])
        per_bucket = self.per_bucket if self.per_bucket is not None else np.zeros(n_buckets)
        return {
            "stage": "ingest",
            "complete": complete,
            "n_buckets": n_buckets,
            "lookback": {"hours": lookback.hours, "variables": list(lookback.variables)},
            "icustays": {"rows_used": len(stays), "rows_invalid": stays.n_invalid},
            "sources": sources,
            "by_variable": by_variable,
            "rows_per_bucket": [int(n) for n in per_bucket],
        }


def _named(row: np.ndarray) -> dict[str, int]:
    return {VARIABLE_NAMES[v]: int(n) for v, n in enumerate(row) if n}


class _ItemTable:
    """The item ids of one source, sorted, with the channel of each."""

    def __init__(self, items: Mapping[int, tuple[int, UnitRule]]) -> None:
        ids = np.array(sorted(items), dtype=np.int64)
        self.value_set = pa.array(ids)
        self.channel = np.array([items[int(i)][0] for i in ids], dtype=np.int64)


_ITEMS = {"chart": _ItemTable(CHART_ITEMS), "lab": _ItemTable(LAB_ITEMS)}
_OUTPUT_COLUMNS = ("charttime", "itemid", "value", "valuenum", "valueuom")


def _attribute(
    batch: pa.RecordBatch,
    rows: pa.Array,
    source: str,
    stays: StayIndex,
    slow: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """Reason code (``_KEEP`` / ``_LOOKED_BACK`` when kept) and stay id of each selected row.

    ``slow`` marks the rows of look-back variables.
    """
    subject, subject_ok = _to_numpy(batch.column("subject_id").take(rows))
    t, t_ok = _to_numpy(batch.column("charttime").take(rows))
    code = np.full(len(rows), _KEEP, dtype=np.int64)
    code[~t_ok] = INGEST_REASONS.index("missing_charttime")
    code[~subject_ok] = INGEST_REASONS.index("missing_subject_id")
    if source == "chart":
        stay, stay_ok = _to_numpy(batch.column("stay_id").take(rows))
        code[(code == _KEEP) & ~stay_ok] = INGEST_REASONS.index("missing_stay_id")
        undecided = np.flatnonzero((code == _KEEP) & ~stays.contains(stay, subject, t))
        # not in its own stay: in another stay of the subject (mismatch) or in none (outside)
        elsewhere = stays.attribute(subject[undecided], t[undecided]) >= 0
        code[undecided[elsewhere]] = INGEST_REASONS.index("stay_mismatch")
        outside = undecided[~elsewhere]
        code[outside] = INGEST_REASONS.index("outside_stay")
        candidates = outside[slow[outside]]
        if len(candidates):
            before = stays.in_lookback(stay[candidates], subject[candidates], t[candidates])
            code[candidates[before]] = _LOOKED_BACK
        return code, stay
    attributed = stays.attribute(subject, t)
    code[(code == _KEEP) & (attributed < 0)] = INGEST_REASONS.index("outside_stay")
    return code, np.where(attributed >= 0, stays.stay_id[np.maximum(attributed, 0)], -1)


_BATCH_SCHEMA = pa.schema([pa.field(BUCKET_COLUMN, pa.int32()), *RAW_EVENT_SCHEMA])


def _route_batch(
    batch: pa.RecordBatch,
    source: str,
    stays: StayIndex,
    n_buckets: int,
    counts: _Counts,
    *,
    slow_channels: np.ndarray,
) -> pa.Table | None:
    """Filter, check and attribute one batch; its kept rows grouped by bucket, or None."""
    items = _ITEMS[source]
    itemid = batch.column("itemid")
    counts.rows_read[source] += batch.num_rows
    counts.missing_itemid[source] += itemid.null_count
    rows = pc.indices_nonzero(pc.is_in(itemid, value_set=items.value_set))
    counts.other_items[source] += batch.num_rows - itemid.null_count - len(rows)
    if not len(rows):
        return None
    channel = items.channel[pc.index_in(itemid.take(rows), value_set=items.value_set).to_numpy()]
    code, stay = _attribute(batch, rows, source, stays, np.isin(channel, slow_channels))
    grid = counts.by_reason[source]
    grid += np.bincount(code * grid.shape[1] + channel, minlength=grid.size).reshape(grid.shape)
    kept = np.flatnonzero(code >= _KEEP)
    if not len(kept):
        return None
    bucket = stay[kept] % n_buckets
    order = np.argsort(bucket, kind="stable")
    assert counts.per_bucket is not None
    counts.per_bucket += np.bincount(bucket, minlength=n_buckets)
    taken = batch.select(list(_OUTPUT_COLUMNS)).take(pa.array(rows.to_numpy()[kept][order]))
    return pa.Table.from_arrays(
        [
            pa.array(bucket[order].astype(np.int32)),
            pa.array(stay[kept][order]),
            *taken.columns,
            pa.array([source]).take(np.zeros(len(kept), dtype=np.int64)),
        ],
        schema=_BATCH_SCHEMA,
    )


def _progress(events: Iterable[Any], label: str) -> Iterator[Any]:
    """Yield from ``events`` with a tqdm bar, in compressed bytes when the reader knows them."""
    size = getattr(events, "size_bytes", None)
    if size is None:
        yield from tqdm(events, desc=label, unit="batch", disable=None)
        return
    with tqdm(total=size, desc=label, unit="B", unit_scale=True, disable=None) as bar:
        for batch in events:
            bar.update(events.bytes_read - bar.n)  # type: ignore[attr-defined]
            yield batch
        bar.update(size - bar.n)


def ingest_events(
    chartevents: Iterable[pa.RecordBatch | pa.Table],
    labevents: Iterable[pa.RecordBatch | pa.Table],
    icustays: pd.DataFrame,
    n_buckets: int = DEFAULT_BUCKETS,
    bucket_bytes: int | None = DEFAULT_BUCKET_BYTES,
    *,
    admissions: pd.DataFrame | None = None,
    lookback: Lookback = NO_LOOKBACK,
) -> EventStream:
    """Stream both event tables into a lazy ``EventStream`` of ``RAW_EVENT_SCHEMA`` rows by bucket.

    Args:
        chartevents: batches with subject_id, stay_id, charttime, itemid, value, valuenum, valueuom
            (a ``MimicEventReader`` of ``chartevents``).
        labevents: batches with the same columns but stay_id (a ``MimicEventReader`` of labevents).
        icustays: subject_id, stay_id, intime, outtime (``MimicTableDataset`` of ``icustays``).
        n_buckets: the least number of buckets; a stay goes to bucket ``stay_id % n``.
        bucket_bytes: pass 2 holds a whole bucket in memory (up to ``ehr.slice_rows`` rows; a
            larger one, made by a stay with millions of events, in slices), so when the readers
            know their compressed size (``size_bytes``), ``n`` grows to one bucket per
            ``bucket_bytes`` of input (at most ``MAX_BUCKETS``): buckets stay the same size
            whatever the input (real MIMIC-IV: ~600 buckets of ~0.1 M rows). None: exactly
            ``n_buckets``.
        admissions: ``hadm_id, admittime``: the look-back never reaches before the admission.
        lookback: which slow variables charted before ``intime`` are kept (``Lookback``).

    Stats (``stream.stats``, final once consumed): ``sources.<chart|lab>`` has ``rows_read``,
    ``rows_other_items`` (items of no variable, skipped), ``rows_variable_items``, ``rows_kept`` and
    ``rows_looked_back`` (kept by the look-back, also in ``rows_kept``), ``dropped.<reason>`` for
    ``missing_itemid`` and each of ``INGEST_REASONS``;
    ``by_variable.<source>.<reason|kept|looked_back>.<variable>`` splits them by variable;
    ``lookback``; ``rows_per_bucket``;
    ``icustays.rows_used`` / ``rows_invalid`` (stays missing ids or times, or ending before they
    start).
    """
    n_buckets = resolve_n_buckets((chartevents, labevents), n_buckets, bucket_bytes)
    stays = StayIndex(icustays, admissions, lookback)
    slow_channels = lookback.channels
    counts = _Counts()
    counts.per_bucket = np.zeros(n_buckets, dtype=np.int64)
    stats: dict[str, Any] = counts.as_stats(stays, n_buckets, False, lookback)

    def refresh(complete: bool = False) -> None:
        stats.clear()
        stats.update(counts.as_stats(stays, n_buckets, complete, lookback))

    def chunks() -> Iterator[Chunk]:
        sources: tuple[tuple[str, Iterable[Any]], ...] = (
            ("chart", chartevents),
            ("lab", labevents),
        )
        for source, events in sources:
            for i, batch in enumerate(_progress(events, f"ingest {source}events"), start=1):
                routed = _route_batch(
                    _as_batch(batch), source, stays, n_buckets, counts, slow_channels=slow_channels
                )
                refresh()
                if routed is not None:
                    yield routed
                if i % _RELEASE_EVERY == 0:  # keep arrow's allocator from hoarding freed pages
                    pa.default_memory_pool().release_unused()
        refresh(complete=True)
        _log_summary(stats)

    return EventStream(chunks(), RAW_EVENT_SCHEMA, n_buckets, stats)


def resolve_n_buckets(sources: Iterable[Any], n_buckets: int, bucket_bytes: int | None) -> int:
    """``n_buckets``, raised to one bucket per ``bucket_bytes`` of compressed input when known."""
    if n_buckets < 1:
        raise ValueError(f"n_buckets must be >= 1, got {n_buckets}")
    if bucket_bytes is None:
        return n_buckets
    size = sum(getattr(source, "size_bytes", 0) for source in sources)
    wanted = min(MAX_BUCKETS, -(-size // bucket_bytes))
    if wanted > n_buckets:
        logger.info("Using %s buckets for %s MB of compressed events", wanted, size >> 20)
    return max(n_buckets, wanted)


def _as_batch(data: pa.RecordBatch | pa.Table) -> pa.RecordBatch:
    if isinstance(data, pa.Table):
        return data.combine_chunks().to_batches()[0] if data.num_rows else _empty_batch(data)
    return data


def _empty_batch(table: pa.Table) -> pa.RecordBatch:
    return pa.RecordBatch.from_arrays(
        [pa.array([], type=f.type) for f in table.schema], schema=table.schema
    )


def _log_summary(stats: Mapping[str, Any]) -> None:
    for source, s in stats["sources"].items():
        logger.info(
            "Ingested %sevents: %s rows read, %s of the variables' items, %s kept (%s by the "
            "look-back before intime); dropped %s",
            source,
            s["rows_read"],
            s["rows_variable_items"],
            s["rows_kept"],
            s["rows_looked_back"],
            {k: v for k, v in s["dropped"].items() if v},
        )
