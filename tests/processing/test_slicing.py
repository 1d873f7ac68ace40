"""Reading a bucket in bounded pieces: key-range slices for pass 2, file-order pieces for the rest."""

from __future__ import annotations

from collections.abc import Iterator
from itertools import pairwise
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from mindkd.io.event_parts import EventParts, EventPartsDataset, MemoryEventParts
from mindkd.processing.ingest import RAW_EVENT_SCHEMA, EventStream
from mindkd.processing.slicing import (
    count_keys,
    cut_ranges,
    read_pieces,
    sorted_slices,
    split_rows,
)

T0 = pd.Timestamp("2180-01-01 10:00:00")


def bucket(rows: list[tuple[int, pd.Timestamp, float]]) -> pa.Table:
    """Raw rows of one bucket: (stay_id, charttime, valuenum); the value numbers the row."""
    n = len(rows)
    return pa.Table.from_arrays(
        [
            pa.array([r[0] for r in rows], pa.int64()),
            pa.array([r[1] for r in rows], pa.timestamp("s")),
            pa.array([220045] * n, pa.int64()),
            pa.array([str(r[2]) for r in rows], pa.string()),
            pa.array([r[2] for r in rows], pa.float64()),
            pa.array([None] * n, pa.string()),
            pa.array(["chart"] * n, pa.string()),
        ],
        schema=RAW_EVENT_SCHEMA,
    )


def parts_of(table: pa.Table) -> MemoryEventParts:
    return MemoryEventParts(EventStream(iter([(0, table)]), RAW_EVENT_SCHEMA, 1, {}))


def at(hours: float = 0, seconds: float = 0) -> pd.Timestamp:
    return T0 + pd.Timedelta(hours=hours, seconds=seconds)


# Stay 7 is the big one. In bucket (file) order its rows are interleaved with stay 3's; row i
# has value i, so a slice's values tell where each of its rows came from.
ROWS = [
    (7, at(2), 0.0),
    (3, at(1), 1.0),
    (7, at(0), 2.0),
    (7, at(2), 3.0),  # same second as row 0: always in row 0's slice, after it
    (7, at(1, 5), 4.0),
    (3, at(0), 5.0),
    (7, at(0), 6.0),  # same second as row 2
    (7, at(1), 7.0),
    (7, at(2, 1), 8.0),
]


def values(table: pa.Table) -> list[float]:
    return table.column("valuenum").to_pylist()


def test_cut_ranges_is_greedy_and_isolates_a_heavy_key() -> None:
    assert cut_ranges(np.array([3, 3, 3, 9, 1, 1]), 6).tolist() == [0, 2, 3, 4]
    assert cut_ranges(np.array([1, 1, 1]), 10).tolist() == [0]
    assert cut_ranges(np.array([7]), 2).tolist() == [0]
    assert cut_ranges(np.zeros(0, np.int64), 5).tolist() == [0]


def test_count_keys_by_stay_and_hour_across_batches() -> None:
    table = bucket(ROWS)
    stays, hours, counts = count_keys(iter([table.slice(0, 4), table.slice(4)]), 3600)
    t0 = T0.value // 10**9 // 3600
    assert stays.tolist() == [3, 3, 7, 7, 7]
    assert (hours - t0).tolist() == [0, 1, 0, 1, 2]
    assert counts.tolist() == [1, 1, 2, 2, 3]


def test_a_bucket_that_fits_is_one_slice_read_whole(tmp_path: Path) -> None:
    parts = parts_of(bucket(ROWS))
    (only,) = list(sorted_slices(parts, 0, max_rows=len(ROWS), scratch_dir=str(tmp_path)))
    assert values(only) == values(bucket(ROWS))  # as stored, not sorted
    assert list(tmp_path.iterdir()) == []


def test_slices_follow_stay_and_charttime_and_keep_bucket_order(tmp_path: Path) -> None:
    parts = parts_of(bucket(ROWS))
    slices = list(sorted_slices(parts, 0, max_rows=3, scratch_dir=str(tmp_path)))
    # rows per (stay, hour): (3, 0) 1, (3, 1) 1 | (7, 0) 2 | (7, 1) 2 | (7, 2) 3, cut greedily
    # at 3 rows; within a slice the rows stay in bucket order (row i has value i)
    assert [values(s) for s in slices] == [[1.0, 5.0], [2.0, 6.0], [4.0, 7.0], [0.0, 3.0, 8.0]]
    assert all(s.schema == RAW_EVENT_SCHEMA for s in slices)
    by_key = ["stay_id", "charttime"]
    keys = [sorted(zip(*s.select(by_key).to_pydict().values(), strict=True)) for s in slices]
    for earlier, later in pairwise(keys):  # disjoint, increasing key ranges
        assert earlier[-1] < later[0]
    # so a stable sort of the slices is the stable sort of the bucket: what pass 2 relies on
    whole = pa.concat_tables(slices).to_pandas().sort_values(by_key, kind="stable")
    expected = bucket(ROWS).to_pandas().sort_values(by_key, kind="stable")
    pd.testing.assert_frame_equal(whole.reset_index(drop=True), expected.reset_index(drop=True))
    assert list(tmp_path.iterdir()) == []  # the spill is gone


def test_a_heavy_hour_is_cut_again_by_second(tmp_path: Path) -> None:
    # 6 rows of stay 7 in one hour, 3 at one second: the hour alone exceeds max_rows = 2
    rows = [(7, at(0, s), float(i)) for i, s in enumerate([9, 1, 9, 5, 9, 1])]
    slices = list(sorted_slices(parts_of(bucket(rows)), 0, max_rows=2, scratch_dir=str(tmp_path)))
    assert [values(s) for s in slices] == [[1.0, 5.0], [3.0], [0.0, 2.0, 4.0]]
    # the one slice larger than max_rows is a single (stay, second): the limit of the bound
    assert [s.num_rows for s in slices] == [2, 1, 3]


def test_slices_stream_from_a_saved_store(tmp_path: Path) -> None:
    table = bucket(ROWS)

    def chunks() -> Iterator[tuple[int, pa.Table]]:
        for start in range(0, table.num_rows, 2):  # many row groups, as pass 1 writes them
            yield 0, table.slice(start, 2)

    store = EventPartsDataset(str(tmp_path / "raw"), buffer_bytes=1)
    store.save(EventStream(chunks(), RAW_EVENT_SCHEMA, 1, {}))
    parts = store.load()
    assert isinstance(parts, EventParts) and parts.bucket_rows(0) == len(ROWS)
    pieces = list(read_pieces(parts, 0, max_rows=4, columns=["stay_id", "valuenum"]))
    assert [p.num_rows for p in pieces] == [4, 4, 1]
    assert pieces[0].column_names == ["stay_id", "valuenum"]
    slices = list(sorted_slices(parts, 0, max_rows=3, scratch_dir=str(tmp_path / "scratch")))
    assert [values(s) for s in slices] == [[1.0, 5.0], [2.0, 6.0], [4.0, 7.0], [0.0, 3.0, 8.0]]


def test_pieces_of_tables_and_frames_and_bad_sizes() -> None:
    frame = bucket(ROWS).to_pandas()
    assert [len(p) for p in split_rows(frame, 4)] == [4, 4, 1]
    assert [p.num_rows for p in read_pieces(parts_of(bucket(ROWS)), 0, 5)] == [5, 4]
    with pytest.raises(ValueError, match="slice_rows must be >= 1"):
        list(read_pieces(parts_of(bucket(ROWS)), 0, 0))


# --- the whole chain with a big stay: the counts add up, sliced or not -------------------------


def _export(root: Path) -> tuple[int, int]:
    """A MIMIC-IV folder: stay 30000001 charts 150 rows in 3 h (with duplicates, text, rows of
    other items, rows after outtime), stay 30000002 a few; labs for both. Returns the rows of
    the variables' items charted after outtime, and the exact duplicates among the others."""
    rng = np.random.default_rng(11)
    icu, hosp = root / "icu", root / "hosp"
    icu.mkdir(parents=True)
    hosp.mkdir()
    intime = pd.Timestamp("2180-01-01 00:00:00")
    pd.DataFrame(
        {
            "subject_id": [10000001, 10000002],
            "hadm_id": [20000001, 20000002],
            "stay_id": [30000001, 30000002],
            "first_careunit": ["MICU", "MICU"],
            "last_careunit": ["MICU", "MICU"],
            "intime": [intime, intime],
            "outtime": [intime + pd.Timedelta(hours=60)] * 2,
            "los": [2.5, 2.5],
        }
    ).to_csv(icu / "icustays.csv.gz", index=False)
    items = [220045, 220739, 223901, 223900, 223761, 220277, 227969]  # 227969: no variable
    n = 150
    item = rng.choice(items, n)
    number = rng.choice([1.0, 4.0, 5.0, 6.0, 80.0, 98.6, 500.0], n)
    seconds = rng.integers(0, 3 * 3600 // 60, n) * 60
    seconds[:5] += 61 * 3600  # after outtime: dropped by pass 1
    chart = pd.DataFrame(
        {
            "subject_id": 10000001,
            "hadm_id": 20000001,
            "stay_id": 30000001,
            "caregiver_id": 1,
            "charttime": intime + pd.to_timedelta(seconds, unit="s"),
            "storetime": "",
            "itemid": item,
            "value": np.where(rng.random(n) < 0.05, "see note", number.astype(str)),
            "valuenum": np.where(rng.random(n) < 0.05, np.nan, number),
            "valueuom": "",
            "warning": 0,
        }
    )
    inside = chart.iloc[5:]
    other = inside.head(4).assign(subject_id=10000002, hadm_id=20000002, stay_id=30000002)
    chart = pd.concat([chart, inside.sample(10, random_state=1), other])  # 10 exact duplicates
    chart.to_csv(icu / "chartevents.csv.gz", index=False)
    lab = pd.DataFrame(
        {
            "labevent_id": [1, 2, 3],
            "subject_id": [10000001, 10000001, 10000002],
            "hadm_id": [20000001, 20000001, 20000002],
            "specimen_id": [1, 2, 3],
            "itemid": [50931, 50817, 50931],
            "order_provider_id": "",
            "charttime": [intime + pd.Timedelta(minutes=m) for m in (30, 30, 90)],
            "storetime": "",
            "value": ["120", "0.97", "90"],
            "valuenum": [120.0, 0.97, 90.0],
            "valueuom": "",
            "ref_range_lower": "",
            "ref_range_upper": "",
            "flag": "",
            "priority": "",
            "comments": "",
        }
    )
    lab.to_csv(hosp / "labevents.csv.gz", index=False)
    ours = chart[
        (chart["itemid"] != 227969) & (chart["charttime"] < intime + pd.Timedelta(60, "h"))
    ]
    return int((item[:5] != 227969).sum()), int(ours.duplicated().sum())


def _chain(root: Path, out: Path, slice_rows: int) -> tuple[EventParts, object]:
    from mindkd.io.raw import MimicEventsDataset, MimicTableDataset
    from mindkd.processing.events import clean_events
    from mindkd.processing.ingest import ingest_events
    from mindkd.processing.timeseries import build_hourly_store

    icustays = MimicTableDataset(str(root / "icu/icustays.csv.gz"), "icustays").load()
    raw = EventPartsDataset(str(out / "raw"))
    raw.save(
        ingest_events(
            MimicEventsDataset(str(root / "icu/chartevents.csv.gz"), "chartevents").load(),
            MimicEventsDataset(str(root / "hosp/labevents.csv.gz"), "labevents").load(),
            icustays,
            n_buckets=2,
        )
    )
    clean = EventPartsDataset(str(out / "clean"))
    clean.save(clean_events(raw.load(), slice_rows=slice_rows, scratch_dir=str(out)))
    events = clean.load()
    tensors = build_hourly_store(events, icustays, hours=4, slice_rows=slice_rows)
    return events, tensors


def test_the_counts_add_up_through_the_chain_in_slices(tmp_path: Path) -> None:
    after_outtime, duplicates = _export(tmp_path / "mimic")
    events, tensors = _chain(tmp_path / "mimic", tmp_path / "sliced", slice_rows=7)
    stats, ingest = events.stats, events.stats["ingest"]
    assert stats["buckets_sliced"] == 1  # stay 30000001's bucket (30000001 % 2 = 1)
    for source in ingest["sources"].values():
        dropped = source["dropped"]
        assert source["rows_read"] == (
            source["rows_other_items"] + source["rows_variable_items"] + dropped["missing_itemid"]
        )
        assert source["rows_variable_items"] == source["rows_kept"] + sum(
            n for reason, n in dropped.items() if reason != "missing_itemid"
        )
    assert ingest["sources"]["chart"]["dropped"]["outside_stay"] == after_outtime > 0
    assert stats["rows_in"] == sum(s["rows_kept"] for s in ingest["sources"].values())
    assert stats["rows_in"] == stats["rows_kept"] + sum(stats["dropped"].values())
    assert stats["dropped"]["duplicate"] == duplicates > 0
    assert stats["rows_out"] == stats["rows_kept"] + sum(stats["derived"].values())
    assert stats["rows_out"] == sum(stats["rows_per_bucket"]) == events.num_rows()
    meta = tensors.metadata
    assert meta["events_in"] == stats["rows_out"]
    assert meta["events_in"] == (
        meta["events_other_stays"] + meta["events_before_intime"] + meta["events_after_window"]
        + meta["events_missing_value"] + meta["events_used"]
    )  # fmt: skip

    whole_events, whole_tensors = _chain(tmp_path / "mimic", tmp_path / "whole", 10**6)
    assert whole_events.to_table().equals(events.to_table())
    assert {**stats, "buckets_sliced": 0} == whole_events.stats
    np.testing.assert_array_equal(
        np.asarray(tensors.arrays["values"]), np.asarray(whole_tensors.arrays["values"])
    )
    assert whole_tensors.metadata == meta
