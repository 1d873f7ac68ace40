"""Pass 2 of the ehr stage: clean the ingested events bucket by bucket into typed channel values.

``clean_events(parts)`` reads the buckets written by pass 1 (``mindkd.processing.ingest``) one at a
time (a stay lives in exactly one bucket, so every per-stay rule is complete within a bucket) and
returns a lazy ``EventStream`` of ``CLEAN_EVENT_SCHEMA`` rows, bucket after bucket, sorted by
``stay_id, charttime, channel, value``. A bucket larger than ``slice_rows`` (one stay with
millions of events) is cleaned in ``(stay_id, charttime)`` slices (``mindkd.processing.slicing``):
every rule below compares only rows of one stay at one charttime, so the slices give exactly the
whole-bucket result, in a memory bounded by the slice. ``clean_bucket`` is the per-bucket (or
per-slice) work, all vectorised:

1. map each row's (source, itemid) to its channel (``VARIABLES`` index) and unit rule;
2. remove exact duplicate rows (same stay_id, charttime, itemid, value, valuenum, valueuom, source);
3. read the number: ``valuenum``; GCS items fall back to the text (``GCS_TEXT_SCORES``: eye "None"
   scores 1, verbal "No Response-ETT" scores 1); capillary refill maps "Normal <3 ..." to 0 and
   "Abnormal >3 ..." to 1 (any other text: ``unknown_text``); text in a numeric item with an empty
   valuenum is ``non_numeric``; no number and no text is ``missing_value``;
4. convert units: °F -> °C, lbs -> kg, inches -> cm, FiO2 % -> fraction when > 1, SpO2 fraction
   -> % when <= 1; a °C item's values in ``FAHRENHEIT_IN_CELSIUS`` (79-113) are °F charted under
   the wrong item and are converted too (counted again as ``fahrenheit_in_celsius``);
5. drop values outside ``[drop_low, drop_high]`` (``out_of_range``) and clip the rest to
   ``[clip_low, clip_high]`` (``clipped``), under the range profile ``ranges`` (``mindkd`` by
   default, or ``mimic3_benchmarks``: ``mindkd.mimic.variables.range_profile``);
6. derive GCS total where eye, motor and verbal are all charted for a stay at the same charttime
   (their sum; a component charted twice at that time contributes its highest value).

Every input row is either in the output or counted once under ``dropped`` (by reason and variable),
so ``rows_in == rows_kept + sum(dropped)`` and ``rows_out == rows_kept + derived``.
"""

from __future__ import annotations

import logging
import os
from collections import deque
from collections.abc import Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from tqdm.auto import tqdm

from mindkd.mimic.variables import (
    CHANNEL,
    CHART_ITEMS,
    DEFAULT_RANGE_PROFILE,
    FAHRENHEIT_IN_CELSIUS,
    GCS_COMPONENTS,
    GCS_TEXT_SCORES,
    LAB_ITEMS,
    NUM_VARIABLES,
    VARIABLE_NAMES,
    UnitRule,
    range_profile,
)
from mindkd.processing.ingest import BucketedEvents, EventStream
from mindkd.processing.slicing import DEFAULT_SLICE_ROWS, bucket_rows, sorted_slices

logger = logging.getLogger(__name__)

#: Rows of pass 2: one cleaned value of one channel at one time of one stay.
CLEAN_EVENT_SCHEMA = pa.schema(
    [
        pa.field("stay_id", pa.int64()),
        pa.field("charttime", pa.timestamp("s")),
        pa.field("channel", pa.int8()),
        pa.field("value", pa.float32()),
        pa.field("source", pa.string()),
    ]
)

#: Why pass 2 drops a row, in the order the checks run.
CLEAN_REASONS: tuple[str, ...] = (
    "unknown_item",
    "duplicate",
    "missing_value",
    "non_numeric",
    "unknown_text",
    "out_of_range",
)
_KEEP = len(CLEAN_REASONS)
_REASON = {r: i for i, r in enumerate(CLEAN_REASONS)}
#: Counters are (reason or event) x (variable, plus one column for rows of no variable).
_UNKNOWN_COLUMN = "(no variable)"
_COLUMNS = (*VARIABLE_NAMES, _UNKNOWN_COLUMN)
_EVENTS = ("kept", "clipped", "converted", "fahrenheit_in_celsius", "text_scored", "derived", "out")

_RULES: tuple[UnitRule, ...] = tuple(UnitRule)
_RULE = {r: i for i, r in enumerate(_RULES)}
_TEXT_RULES = (UnitRule.GCS_TEXT, UnitRule.CAPILLARY_REFILL_TEXT)
_CHANNEL_BITS = (NUM_VARIABLES - 1).bit_length()
_GCS_TOTAL = CHANNEL["gcs_total"]
_GCS_PARTS = tuple(CHANNEL[c] for c in GCS_COMPONENTS)


class RangeArrays:
    """The ranges of one profile as per-channel arrays (``drop_low`` ... ``drop_high``)."""

    def __init__(self, profile: str = DEFAULT_RANGE_PROFILE) -> None:
        ranges = range_profile(profile)
        self.profile = profile
        self.drop_low = np.array([r.drop_low for r in ranges], dtype=np.float64)
        self.clip_low = np.array([r.clip_low for r in ranges], dtype=np.float64)
        self.clip_high = np.array([r.clip_high for r in ranges], dtype=np.float64)
        self.drop_high = np.array([r.drop_high for r in ranges], dtype=np.float64)


_GCS_KEYS = pa.array(list(GCS_TEXT_SCORES))
_GCS_SCORES = np.array(list(GCS_TEXT_SCORES.values()), dtype=np.float64)
#: Capillary refill texts, matched on their lower-cased, trimmed beginning.
CAPILLARY_REFILL_TEXT: Mapping[str, float] = {"normal <3": 0.0, "abnormal >3": 1.0}


class _ItemLookup:
    """(source, itemid) -> (channel, rule) for the chart and the lab items."""

    def __init__(self) -> None:
        self.tables: dict[bool, tuple[pa.Array, np.ndarray, np.ndarray]] = {}
        for is_lab, items in ((False, CHART_ITEMS), (True, LAB_ITEMS)):
            ids = sorted(items)
            self.tables[is_lab] = (
                pa.array(ids, type=pa.int64()),
                np.array([items[i][0] for i in ids] + [-1], dtype=np.int8),
                np.array([_RULE[items[i][1]] for i in ids] + [-1], dtype=np.int8),
            )

    def __call__(self, itemid: pa.Array, is_lab: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        channel = np.full(len(itemid), -1, dtype=np.int8)
        rule = np.full(len(itemid), -1, dtype=np.int8)
        for lab, (ids, channels, rules) in self.tables.items():
            rows = is_lab if lab else ~is_lab
            if not rows.any():
                continue
            position = pc.index_in(itemid, value_set=ids).fill_null(-1).to_numpy()
            channel = np.where(rows, channels[position], channel)
            rule = np.where(rows, rules[position], rule)
        return channel, rule


_LOOKUP = _ItemLookup()


class CleanCounts:
    """Counters of one or many buckets: rows in, drops by reason, events by variable."""

    def __init__(self) -> None:
        width = len(_COLUMNS)
        self.rows_in = 0
        self.dropped = np.zeros((len(CLEAN_REASONS), width), dtype=np.int64)
        self.events = np.zeros((len(_EVENTS), width), dtype=np.int64)
        self.rows_per_bucket: list[int] = []
        self.buckets_sliced = 0

    def drop(self, reason: str, channel: np.ndarray) -> None:
        self.dropped[_REASON[reason]] += _per_column(channel)

    def add(self, event: str, channel: np.ndarray) -> None:
        self.events[_EVENTS.index(event)] += _per_column(channel)

    def merge(self, other: CleanCounts) -> None:
        self.rows_in += other.rows_in
        self.dropped += other.dropped
        self.events += other.events

    def _named(self, row: np.ndarray) -> dict[str, int]:
        return {_COLUMNS[i]: int(n) for i, n in enumerate(row) if n}

    def as_stats(self) -> dict[str, Any]:
        events = {e: self._named(self.events[i]) for i, e in enumerate(_EVENTS)}
        return {
            "rows_in": self.rows_in,
            "rows_kept": int(self.events[_EVENTS.index("kept")].sum()),
            "rows_out": int(self.events[_EVENTS.index("out")].sum()),
            "dropped": {r: int(self.dropped[i].sum()) for i, r in enumerate(CLEAN_REASONS)},
            "dropped_by_variable": {
                r: self._named(self.dropped[i]) for i, r in enumerate(CLEAN_REASONS)
            },
            "clipped": events["clipped"],
            "converted": events["converted"],
            "fahrenheit_in_celsius": events["fahrenheit_in_celsius"],
            "text_scored": events["text_scored"],
            "derived": events["derived"],
            "rows_out_by_variable": events["out"],
        }


def _per_column(channel: np.ndarray) -> np.ndarray:
    """Row counts per counter column; channel -1 (no variable) goes to the last column."""
    return np.bincount(np.where(channel < 0, NUM_VARIABLES, channel), minlength=len(_COLUMNS))


class _Packer:
    """Packs (stay_id, charttime, channel) into one int64 whose order is the lexicographic one."""

    def __init__(self, stay: np.ndarray, t: np.ndarray) -> None:
        self.stays: np.ndarray | None = None
        self.times: np.ndarray | None = None
        self.s0 = int(stay.min()) if len(stay) else 0
        self.t0 = int(t.min()) if len(t) else 0
        s_bits = (int(stay.max()) - self.s0).bit_length() if len(stay) else 0
        t_bits = (int(t.max()) - self.t0).bit_length() if len(t) else 0
        if s_bits + t_bits + _CHANNEL_BITS > 62:  # ids or times too spread: use their ranks
            self.stays, self.times = np.unique(stay), np.unique(t)
            self.s0 = self.t0 = 0
            s_bits = len(self.stays).bit_length()
            t_bits = len(self.times).bit_length()
        self.t_shift = _CHANNEL_BITS
        self.s_shift = _CHANNEL_BITS + t_bits

    def __call__(self, stay: np.ndarray, t: np.ndarray, channel: np.ndarray) -> np.ndarray:
        if self.stays is not None and self.times is not None:
            stay, t = np.searchsorted(self.stays, stay), np.searchsorted(self.times, t)
        return ((stay - self.s0) << self.s_shift) | ((t - self.t0) << self.t_shift) | channel


def _runs(sorted_key: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Positions of rows whose key equals a neighbour's, and a run id for each of them."""
    same = sorted_key[1:] == sorted_key[:-1]
    tied = np.flatnonzero(same)  # row tied+1 repeats row tied
    if not len(tied):
        return tied, tied
    positions = np.union1d(tied, tied + 1)
    # a run starts at a position whose predecessor is not tied to it
    starts = np.ones(len(positions), dtype=bool)
    starts[1:] = ~same[positions[1:] - 1]
    return positions, np.cumsum(starts)


def _codes(values: pa.ChunkedArray | pa.Array) -> np.ndarray:
    """Integer codes of text values: equal texts, equal codes; null -> -1."""
    encoded = pc.dictionary_encode(values)
    if isinstance(encoded, pa.ChunkedArray):
        encoded = encoded.unify_dictionaries().combine_chunks()
    return encoded.indices.fill_null(-1).to_numpy().astype(np.int64)


def _duplicates(
    table: pa.Table,
    *,
    order: np.ndarray,
    key: np.ndarray,
    itemid: np.ndarray,
    valuenum: np.ndarray,
    is_lab: np.ndarray,
) -> np.ndarray:
    """Rows (table positions) repeating an earlier row exactly; only runs of equal key compared."""
    positions, run = _runs(key[order])
    if not len(positions):
        return positions
    rows = order[positions]
    texts = table.select(["value", "valueuom"]).take(pa.array(rows))
    number = valuenum[rows]
    number = np.where(np.isnan(number), np.nan, number).view(np.int64)  # one bit pattern for NaN
    fields = (
        is_lab[rows].astype(np.int64),
        _codes(texts["valueuom"]),
        _codes(texts["value"]),
        number,
        itemid[rows],
        run,
    )
    ranked = np.lexsort(fields)
    stacked = np.stack([f[ranked] for f in fields])
    repeat = np.zeros(len(rows), dtype=bool)
    repeat[1:] = (stacked[:, 1:] == stacked[:, :-1]).all(axis=0)
    return rows[ranked][repeat]


def _normalised_text(table: pa.Table, rows: np.ndarray) -> pa.Array:
    text = table.column("value").take(pa.array(rows)).combine_chunks()
    return pc.utf8_lower(pc.utf8_trim_whitespace(text))


def _is_empty(text: pa.Array) -> np.ndarray:
    return pc.fill_null(pc.equal(text, ""), True).to_numpy(zero_copy_only=False)


def _score_text(
    table: pa.Table,
    rows: np.ndarray,
    rule: UnitRule,
    value: np.ndarray,
    reason: np.ndarray,
) -> np.ndarray:
    """Score the text of ``rows``; mark empty / unknown texts; return the rows scored."""
    text = _normalised_text(table, rows)
    if rule is UnitRule.GCS_TEXT:
        position = pc.index_in(text, value_set=_GCS_KEYS).fill_null(-1).to_numpy()
        score = np.where(position >= 0, _GCS_SCORES[position], np.nan)
    else:
        score = np.full(len(rows), np.nan)
        for prefix, points in CAPILLARY_REFILL_TEXT.items():
            hit = pc.fill_null(pc.starts_with(text, prefix), False).to_numpy(zero_copy_only=False)
            score[hit] = points
    scored = ~np.isnan(score)
    value[rows[scored]] = score[scored]
    empty = _is_empty(text)
    reason[rows[~scored & empty]] = _REASON["missing_value"]
    reason[rows[~scored & ~empty]] = _REASON["unknown_text"]
    return rows[scored]


def _read_values(
    table: pa.Table,
    *,
    valuenum: np.ndarray,
    rule: np.ndarray,
    channel: np.ndarray,
    reason: np.ndarray,
    counts: CleanCounts,
) -> np.ndarray:
    """The number of each row in its variable's unit (NaN where a row is dropped)."""
    value = valuenum.copy()
    pending = reason == _KEEP
    no_number = np.isnan(valuenum) & pending
    for text_rule in _TEXT_RULES:
        # GCS: the text only when valuenum is empty; capillary refill: always the text
        take = rule == _RULE[text_rule]
        rows = np.flatnonzero(take & (no_number if text_rule is UnitRule.GCS_TEXT else pending))
        if text_rule is UnitRule.CAPILLARY_REFILL_TEXT:
            value[rows] = np.nan
        if len(rows):
            scored = _score_text(table, rows, text_rule, value, reason)
            counts.add("text_scored", channel[scored])
    numeric = np.flatnonzero(no_number & ~np.isin(rule, [_RULE[r] for r in _TEXT_RULES]))
    if len(numeric):
        empty = _is_empty(table.column("value").take(pa.array(numeric)).combine_chunks())
        reason[numeric[empty]] = _REASON["missing_value"]
        reason[numeric[~empty]] = _REASON["non_numeric"]
    ok = reason == _KEEP
    f_low, f_high = FAHRENHEIT_IN_CELSIUS
    conversions = (
        (UnitRule.FAHRENHEIT_TO_CELSIUS, None, _fahrenheit_to_celsius),
        (
            UnitRule.CELSIUS_OR_FAHRENHEIT,
            lambda v: (v >= f_low) & (v <= f_high),
            _fahrenheit_to_celsius,
        ),
        (UnitRule.POUNDS_TO_KG, None, lambda v: v * 0.453592),
        (UnitRule.INCHES_TO_CM, None, lambda v: v * 2.54),
        (UnitRule.PERCENT_TO_FRACTION, lambda v: v > 1.0, lambda v: v / 100.0),
        (UnitRule.FRACTION_TO_PERCENT, lambda v: v <= 1.0, lambda v: v * 100.0),
    )
    for unit_rule, when, convert in conversions:
        rows = ok & (rule == _RULE[unit_rule])
        if when is not None:
            with np.errstate(invalid="ignore"):
                rows &= when(value)
        if rows.any():
            value[rows] = convert(value[rows])
            counts.add("converted", channel[rows])
            if unit_rule is UnitRule.CELSIUS_OR_FAHRENHEIT:
                counts.add("fahrenheit_in_celsius", channel[rows])
    return value


def _fahrenheit_to_celsius(v: np.ndarray) -> np.ndarray:
    return (v - 32.0) * 5.0 / 9.0


def _apply_ranges(
    value: np.ndarray,
    channel: np.ndarray,
    reason: np.ndarray,
    counts: CleanCounts,
    ranges: RangeArrays,
) -> None:
    """Drop values outside [drop_low, drop_high]; clip the rest to [clip_low, clip_high]."""
    keep = reason == _KEEP
    ch = np.maximum(channel, 0)
    with np.errstate(invalid="ignore"):
        inside = (value >= ranges.drop_low[ch]) & (value <= ranges.drop_high[ch])  # NaN: outside
    reason[keep & ~inside] = _REASON["out_of_range"]
    low, high = ranges.clip_low[ch], ranges.clip_high[ch]
    clipped = np.flatnonzero(keep & inside & ((value < low) | (value > high)))
    value[clipped] = np.clip(value[clipped], low[clipped], high[clipped])
    counts.add("clipped", channel[clipped])


def _derive_gcs_total(
    stay: np.ndarray, t: np.ndarray, channel: np.ndarray, value: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(stay, time, total) where all three GCS parts are present.

    The input is sorted by stay, time, channel and value.
    """
    parts = np.flatnonzero(np.isin(channel, _GCS_PARTS))
    empty = np.zeros(0, dtype=np.int64)
    if not len(parts):
        return empty, empty, np.zeros(0)
    s, tt, c, v = stay[parts], t[parts], channel[parts], value[parts]
    new = np.ones(len(parts), dtype=bool)
    new[1:] = (s[1:] != s[:-1]) | (tt[1:] != tt[:-1])
    group = np.cumsum(new) - 1
    scores = np.full((3, int(group[-1]) + 1), np.nan)
    for j, part in enumerate(_GCS_PARTS):
        rows = np.flatnonzero(c == part)
        ids = group[rows]
        last = np.ones(len(rows), dtype=bool)  # the highest value: values ascend within a time
        last[:-1] = ids[1:] != ids[:-1]
        scores[j, ids[last]] = v[rows[last]]
    complete = ~np.isnan(scores).any(axis=0)
    first = np.flatnonzero(new)[complete]
    return s[first], tt[first], scores[:, complete].sum(axis=0)


_DEFAULT_RANGES = RangeArrays()


def clean_bucket(
    table: pa.Table, ranges: RangeArrays = _DEFAULT_RANGES
) -> tuple[pa.Table, CleanCounts]:
    """Clean one bucket of pass-1 rows (``RAW_EVENT_SCHEMA``) into ``CLEAN_EVENT_SCHEMA`` rows."""
    counts = CleanCounts()
    counts.rows_in = n = table.num_rows
    if not n:
        return CLEAN_EVENT_SCHEMA.empty_table(), counts
    stay = table.column("stay_id").to_numpy()
    t = table.column("charttime").cast(pa.timestamp("s")).cast(pa.int64()).to_numpy()
    itemid_arrow = table.column("itemid")
    itemid = itemid_arrow.to_numpy()
    valuenum = table.column("valuenum").to_numpy().astype(np.float64)
    is_lab = pc.equal(table.column("source"), "lab").to_numpy(zero_copy_only=False)
    channel, rule = _LOOKUP(itemid_arrow, is_lab)

    reason = np.full(n, _KEEP, dtype=np.int8)
    reason[channel < 0] = _REASON["unknown_item"]
    packer = _Packer(stay, t)
    key = packer(stay, t, np.maximum(channel, 0))
    order = np.argsort(key, kind="stable")
    duplicates = _duplicates(
        table, order=order, key=key, itemid=itemid, valuenum=valuenum, is_lab=is_lab
    )
    reason[duplicates] = _REASON["duplicate"]
    reason[channel < 0] = _REASON["unknown_item"]
    value = _read_values(
        table, valuenum=valuenum, rule=rule, channel=channel, reason=reason, counts=counts
    )
    _apply_ranges(value, channel, reason, counts, ranges)
    for i, name in enumerate(CLEAN_REASONS):
        counts.drop(name, channel[reason == i])

    kept = order[reason[order] == _KEEP]
    counts.add("kept", channel[kept])
    positions, run = _runs(key[kept])  # equal stay, time and channel: order those by value
    if len(positions):
        kept[positions] = kept[positions][np.lexsort((value[kept[positions]], run))]
    out_stay, out_t, out_channel = stay[kept], t[kept], channel[kept]
    out_value, out_lab = value[kept], is_lab[kept]
    d_stay, d_t, d_total = _derive_gcs_total(out_stay, out_t, out_channel, out_value)
    if len(d_stay):
        d_channel = np.full(len(d_stay), _GCS_TOTAL, dtype=np.int64)
        counts.add("derived", d_channel)
        at = np.searchsorted(key[kept], packer(d_stay, d_t, d_channel), side="right")
        out_stay, out_t = np.insert(out_stay, at, d_stay), np.insert(out_t, at, d_t)
        out_channel = np.insert(out_channel, at, d_channel)
        out_value, out_lab = np.insert(out_value, at, d_total), np.insert(out_lab, at, False)
    counts.add("out", out_channel)
    return _output_table(out_stay, out_t, out_channel, out_value, out_lab), counts


_SOURCES = pa.array(["chart", "lab"])


def _output_table(
    stay: np.ndarray, t: np.ndarray, channel: np.ndarray, value: np.ndarray, is_lab: np.ndarray
) -> pa.Table:
    return pa.Table.from_arrays(
        [
            pa.array(stay, type=pa.int64()),
            pa.array(t, type=pa.int64()).cast(pa.timestamp("s")),
            pa.array(channel.astype(np.int8)),
            pa.array(value.astype(np.float32)),
            _SOURCES.take(pa.array(is_lab.astype(np.int8))),
        ],
        schema=CLEAN_EVENT_SCHEMA,
    )


def _clean_stats(
    counts: CleanCounts,
    n_buckets: int,
    upstream: Mapping[str, Any],
    complete: bool,
    ranges: RangeArrays,
) -> dict[str, Any]:
    return {
        "stage": "clean",
        "complete": complete,
        "n_buckets": n_buckets,
        "ranges": ranges.profile,
        **counts.as_stats(),
        "rows_per_bucket": list(counts.rows_per_bucket),
        "buckets_sliced": counts.buckets_sliced,
        "ingest": dict(upstream),
    }


def clean_events(
    parts: BucketedEvents,
    n_workers: int | None = None,
    ranges: str = DEFAULT_RANGE_PROFILE,
    *,
    slice_rows: int = DEFAULT_SLICE_ROWS,
    scratch_dir: str | None = None,
) -> EventStream:
    """Clean every bucket of ``parts`` (pass 1's output) into a lazy ``EventStream``.

    ``ranges`` names the range profile (``ehr.ranges``: ``mindkd`` or ``mimic3_benchmarks``).

    A bucket of at most ``slice_rows`` rows (``ehr.slice_rows``) is cleaned whole; a larger one
    (a stay with millions of events) in ``(stay_id, charttime)`` slices of at most ``slice_rows``
    rows (``mindkd.processing.slicing.sorted_slices``, spilled under ``scratch_dir``), which
    gives exactly the whole-bucket result. Pieces are cleaned ``n_workers`` at a time (threads:
    the work is in numpy / arrow, which release the GIL; default: up to 2, the cores of the
    reference machine) and yielded in order, so memory holds at most ``n_workers + 1`` pieces,
    however large the largest stay.

    Stats (``stream.stats``): ``rows_in``, ``rows_kept``, ``rows_out``, ``dropped.<reason>`` for
    each of ``CLEAN_REASONS`` and ``dropped_by_variable.<reason>.<variable>``; per variable
    ``clipped``, ``converted`` (unit conversions applied), ``fahrenheit_in_celsius`` (°F values
    of a °C item, converted; also in ``converted``), ``text_scored`` (values read from
    text), ``derived`` (``gcs_total``) and ``rows_out_by_variable``; ``rows_per_bucket``;
    ``buckets_sliced`` (buckets cleaned in slices); and ``ingest``, pass 1's stats, so one
    file tells the whole story.
    """
    workers = max(1, n_workers if n_workers is not None else min(2, os.cpu_count() or 1))
    bounds = RangeArrays(ranges)
    total = CleanCounts()
    total.rows_per_bucket = [0] * parts.n_buckets
    upstream = dict(parts.stats)
    stats: dict[str, Any] = _clean_stats(total, parts.n_buckets, upstream, False, bounds)

    def pieces() -> Iterator[tuple[int, int | pa.Table]]:
        """(bucket, its rows or a slice of them) in output order; a whole bucket is read by the
        worker that cleans it."""
        for bucket in range(parts.n_buckets):
            if bucket_rows(parts, bucket) <= slice_rows:
                yield bucket, bucket
                continue
            total.buckets_sliced += 1
            for piece in sorted_slices(parts, bucket, slice_rows, scratch_dir):
                yield bucket, piece

    def work(rows: int | pa.Table) -> tuple[pa.Table, CleanCounts]:
        return clean_bucket(parts.read(rows) if isinstance(rows, int) else rows, bounds)

    def chunks() -> Iterator[tuple[int, pa.Table]]:
        # give back what pass 1 left cached in arrow's allocator before holding whole buckets
        pa.default_memory_pool().release_unused()
        with ThreadPoolExecutor(max_workers=workers) as pool:
            pending: deque[tuple[int, Future[tuple[pa.Table, CleanCounts]]]] = deque()
            todo = pieces()
            bar = tqdm(total=parts.n_buckets, desc="clean events", unit="bucket", disable=None)
            with bar:
                while True:
                    while len(pending) < workers:
                        piece = next(todo, None)
                        if piece is None:
                            break
                        pending.append((piece[0], pool.submit(work, piece[1])))
                    if not pending:
                        break
                    bucket, future = pending.popleft()
                    table, counts = future.result()
                    total.merge(counts)
                    total.rows_per_bucket[bucket] += table.num_rows
                    stats.update(_clean_stats(total, parts.n_buckets, upstream, False, bounds))
                    bar.update(bucket + 1 - bar.n)
                    yield bucket, table
        stats.update(_clean_stats(total, parts.n_buckets, upstream, True, bounds))
        logger.info(
            "Cleaned events: %s rows in, %s out (%s derived); dropped %s",
            stats["rows_in"],
            stats["rows_out"],
            sum(stats["derived"].values()),
            {k: v for k, v in stats["dropped"].items() if v},
        )

    return EventStream(chunks(), CLEAN_EVENT_SCHEMA, parts.n_buckets, stats, whole_buckets=True)
