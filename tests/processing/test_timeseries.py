"""Hourly tensors: binning, last value wins, imputation, masks, windows, buckets."""

from __future__ import annotations

import gc
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from mindkd.io.array_store import ArrayStoreDataset
from mindkd.mimic.variables import CHANNEL, NUM_VARIABLES, VARIABLES
from mindkd.processing.ingest import Lookback
from mindkd.processing.timeseries import TimeSeriesError, build_hourly_store

T0 = pd.Timestamp("2150-01-01 00:00:00")
C = NUM_VARIABLES
NORMALS = np.array([v.normal for v in VARIABLES], dtype=np.float32)
HR, DBP = CHANNEL["heart_rate"], CHANNEL["dbp"]


def _at(hours: float = 0, minutes: float = 0, seconds: float = 0) -> pd.Timestamp:
    return T0 + pd.Timedelta(hours=hours, minutes=minutes, seconds=seconds)


def _events(rows: list[tuple[int, pd.Timestamp, int, float]]) -> pa.Table:
    return pa.table(
        {
            "stay_id": pa.array([r[0] for r in rows], pa.int64()),
            "charttime": pa.array([r[1] for r in rows], pa.timestamp("s")),
            "channel": pa.array([r[2] for r in rows], pa.int8()),
            "value": pa.array([r[3] for r in rows], pa.float32()),
            "source": pa.array(["chartevents"] * len(rows), pa.string()),
        }
    )


def _stays(spans: dict[int, float]) -> pd.DataFrame:
    table = pd.DataFrame(
        {
            "stay_id": list(spans),
            "intime": [T0] * len(spans),
            "outtime": [T0 + pd.Timedelta(hours=h) for h in spans.values()],
        }
    )
    table["intime"] = table["intime"].astype("datetime64[s]")
    table["outtime"] = table["outtime"].astype("datetime64[s]")
    return table


EXAMPLE = [
    (1, _at(0, 0, -1), HR, 50.0),  # before intime: not used
    (1, _at(3, 50), HR, 110.0),  # hour 3, the later of two: wins
    (1, _at(2, 30), HR, 90.0),  # hour 2
    (1, _at(3, 10), HR, 100.0),  # hour 3, earlier
    (1, _at(0), DBP, 60.0),  # exactly intime: hour 0
    (1, _at(2, 59, 59), DBP, 65.0),  # last second of hour 2
    (1, _at(4), DBP, 99.0),  # exactly intime + 4 h: outside a 4 h window
]


def test_hand_computed_example() -> None:
    store = build_hourly_store([_events(EXAMPLE)], _stays({1: 10}), hours=4)
    values = np.asarray(store.arrays["values"])
    assert values.shape == (1, 4, 2 * C)
    assert values.dtype == np.float32
    expected_hr = np.array([[86, 0], [86, 0], [90, 1], [110, 1]], dtype=np.float32)
    expected_dbp = np.array([[60, 1], [60, 0], [65, 1], [65, 0]], dtype=np.float32)
    np.testing.assert_array_equal(values[0][:, [HR, C + HR]], expected_hr)
    np.testing.assert_array_equal(values[0][:, [DBP, C + DBP]], expected_dbp)
    others = [c for c in range(C) if c not in (HR, DBP)]
    np.testing.assert_array_equal(values[0][:, others], np.tile(NORMALS[others], (4, 1)))
    np.testing.assert_array_equal(values[0][:, [C + c for c in others]], 0)
    assert store.index.to_dict("list") == {"stay_id": [1], "row": [0], "length": [4]}
    meta = store.metadata
    assert (meta["events_in"], meta["events_used"]) == (7, 5)
    assert (meta["events_before_intime"], meta["events_after_window"]) == (1, 1)
    assert meta["cells_observed"] == 4


WEIGHT, HEIGHT = CHANNEL["weight"], CHANNEL["height"]


def test_lookback_values_are_observed_in_hour_0() -> None:
    rows = [
        (1, _at(-3), WEIGHT, 70.0),  # 3 h before intime: looked back
        (1, _at(0, -5), WEIGHT, 72.0),  # 5 min before: the later of the two wins hour 0
        (1, _at(-30), HEIGHT, 150.0),  # 30 h before: outside a 24 h look-back, not used
        (1, _at(-1), HR, 77.0),  # not a slow variable: not used
        (2, _at(0, -10), WEIGHT, 90.0),  # looked back ...
        (2, _at(0, 20), WEIGHT, 91.0),  # ... but a value charted in hour 0 itself wins
        (2, _at(2), HEIGHT, 180.0),
    ]
    store = build_hourly_store(
        _events(rows), _stays({1: 10, 2: 10}), hours=3, lookback=Lookback(24)
    )
    values = np.asarray(store.arrays["values"])
    np.testing.assert_array_equal(values[0][:, [WEIGHT, C + WEIGHT]], [[72, 1], [72, 0], [72, 0]])
    np.testing.assert_array_equal(values[0][:, [HEIGHT, C + HEIGHT]], [[170, 0]] * 3)
    np.testing.assert_array_equal(values[0][:, [HR, C + HR]], [[86, 0]] * 3)
    np.testing.assert_array_equal(values[1][:, [WEIGHT, C + WEIGHT]], [[91, 1], [91, 0], [91, 0]])
    np.testing.assert_array_equal(
        values[1][:, [HEIGHT, C + HEIGHT]], [[170, 0], [170, 0], [180, 1]]
    )
    meta = store.metadata
    assert meta["events_looked_back"] == 3
    assert meta["events_before_intime"] == 2
    assert meta["lookback"] == {"hours": 24, "variables": ["height", "weight"]}
    off = build_hourly_store(_events(rows), _stays({1: 10, 2: 10}), hours=3)
    assert off.metadata["events_looked_back"] == 0
    assert off.metadata["events_before_intime"] == 5
    assert np.asarray(off.arrays["values"])[0, 0, C + WEIGHT] == 0


@pytest.mark.parametrize("slice_rows", [1, 2, 1000])
def test_same_second_tie_takes_the_largest_value(slice_rows: int) -> None:
    # read one row at a time, the tie is settled across pieces: the largest, not the last read
    rows = [(1, _at(0, 5), HR, 80.0), (1, _at(0, 5), HR, 95.0), (1, _at(0, 5), HR, 70.0)]
    rows += [(1, _at(1, 9), HR, 60.0), (1, _at(1, 2), HR, 99.0)]  # hour 1: the later, 60
    store = build_hourly_store(_events(rows), _stays({1: 3}), hours=2, slice_rows=slice_rows)
    assert store.arrays["values"][0, :, HR].tolist() == [95.0, 60.0]
    assert store.metadata["cells_observed"] == 2


def test_a_bucket_read_in_pieces_gives_the_same_tensors() -> None:
    rng = np.random.default_rng(3)
    stays = _stays({s: float(rng.integers(1, 30)) for s in range(200, 230)})
    n = 4000
    slow = [WEIGHT, HEIGHT, HR, DBP]  # the look-back applies to the first two
    rows = list(
        zip(
            rng.integers(195, 230, n).tolist(),  # some stays of no cohort (195..199)
            [_at(seconds=float(s)) for s in rng.integers(-5 * 3600, 32 * 3600, n) // 600 * 600],
            rng.choice(slow, n).tolist(),  # 10-minute grid: many ties at one second
            np.where(rng.random(n) < 0.05, np.nan, rng.normal(size=n).round(1)).tolist(),
            strict=True,
        )
    )
    events, lookback = _events(rows), Lookback(2)
    whole = build_hourly_store(events, stays, max_hours=24, lookback=lookback)
    meta = whole.metadata
    assert meta["events_in"] == n == (
        meta["events_other_stays"] + meta["events_before_intime"] + meta["events_after_window"]
        + meta["events_missing_value"] + meta["events_used"]
    )  # fmt: skip
    assert min(meta[k] for k in meta if k.startswith("events_")) > 0  # every kind happens
    for slice_rows in (1, 13, 999):
        pieces = build_hourly_store(
            _Parts([events]), stays, max_hours=24, lookback=lookback, slice_rows=slice_rows
        )
        np.testing.assert_array_equal(
            np.asarray(pieces.arrays["values"]), np.asarray(whole.arrays["values"])
        )
        assert pieces.metadata == meta


def test_pheno_cap_lengths_padding_and_empty_stays() -> None:
    stays = _stays({10: 2.5, 11: 10, 12: 0.2, 13: 4, 14: 5})
    rows = [
        (10, _at(1, 15), HR, 100.0),
        (11, _at(7), HR, 120.0),  # hour 7 >= cap 6: not used
        (11, _at(0), HR, 70.0),
        (13, _at(4), DBP, 55.0),  # exactly outtime of a 4 h stay: hour 4 >= length 4
        (13, _at(3, 59), DBP, 50.0),
    ]
    store = build_hourly_store(_events(rows), stays, max_hours=6)
    values = np.asarray(store.arrays["values"])
    assert values.shape == (5, 6, 2 * C)
    assert store.index["length"].tolist() == [3, 6, 1, 4, 5]
    assert store.index["stay_id"].tolist() == [10, 11, 12, 13, 14]
    np.testing.assert_array_equal(values[0, :, HR], [86, 100, 100, 0, 0, 0])
    np.testing.assert_array_equal(values[0, :, C + HR], [0, 1, 0, 0, 0, 0])
    np.testing.assert_array_equal(values[1, :, HR], [70] * 6)
    np.testing.assert_array_equal(values[3, :, DBP], [59, 59, 59, 50, 0, 0])
    # stays 12 and 14 have no events: normals up to their length, masks 0, padding 0
    np.testing.assert_array_equal(values[2, 0, :C], NORMALS)
    np.testing.assert_array_equal(values[2, 1:], 0)
    np.testing.assert_array_equal(values[4, :5, :C], np.tile(NORMALS, (5, 1)))
    np.testing.assert_array_equal(values[4, :, C:], 0)
    np.testing.assert_array_equal(values[4, 5], 0)
    assert store.metadata["stays_without_events"] == 2
    assert store.metadata["events_after_window"] == 2


class _Parts:
    """The read side of EventParts: n_buckets and read(bucket, columns)."""

    def __init__(self, tables: list[pa.Table]) -> None:
        self.tables = tables
        self.n_buckets = len(tables)

    def read(self, bucket: int, columns: list[str] | None = None) -> pa.Table:
        table = self.tables[bucket]
        return table.select(columns) if columns else table


def test_buckets_chunks_and_pandas_input_agree() -> None:
    rng = np.random.default_rng(0)
    stays = _stays({s: float(rng.integers(1, 30)) for s in range(100, 140)})
    n = 3000
    rows = list(
        zip(
            rng.integers(100, 140, n).tolist(),
            [_at(seconds=float(s)) for s in rng.integers(-3600, 30 * 3600, n)],
            rng.integers(0, C, n).tolist(),
            rng.normal(size=n).round(3).tolist(),
            strict=True,
        )
    )
    whole = _events(rows)
    one = np.asarray(build_hourly_store(whole, stays, max_hours=24).arrays["values"])
    buckets = [whole.filter(pc.equal(pc.bit_wise_and(whole["stay_id"], 3), b)) for b in range(4)]
    split = build_hourly_store(_Parts(buckets), stays, max_hours=24, chunk_rows=3)
    np.testing.assert_array_equal(np.asarray(split.arrays["values"]), one)
    as_pandas = whole.to_pandas()
    as_pandas["charttime"] = as_pandas["charttime"].astype("datetime64[ns]")
    pandas_store = build_hourly_store(as_pandas, stays, max_hours=24)
    np.testing.assert_array_equal(np.asarray(pandas_store.arrays["values"]), one)
    assert isinstance(split.arrays["values"], np.memmap)
    assert split.rows([139, 100]).tolist() == [39, 0]


def test_stay_split_over_buckets_raises() -> None:
    first, second = _events(EXAMPLE[:2]), _events(EXAMPLE[2:])
    with pytest.raises(TimeSeriesError, match="bucketed by stay_id"):
        build_hourly_store([first, second], _stays({1: 10}), hours=4)


def test_bad_parameters_and_inputs() -> None:
    stays = _stays({1: 10})
    with pytest.raises(TimeSeriesError, match="exactly one of hours"):
        build_hourly_store([], stays, hours=4, max_hours=10)
    with pytest.raises(TimeSeriesError, match="duplicate stay_id"):
        build_hourly_store([], pd.concat([stays, stays]), hours=4)
    with pytest.raises(TimeSeriesError, match="channel"):
        build_hourly_store(_events([(1, T0, C, 1.0)]), stays, hours=4)
    with pytest.raises(TimeSeriesError, match=r"lack column\(s\) \['value'\]"):
        build_hourly_store(_events(EXAMPLE).drop(["value"]), stays, hours=4)


def test_scratch_file_saves_and_is_cleaned_up(tmp_path: Path) -> None:
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    store = build_hourly_store(
        [_events(EXAMPLE)], _stays({1: 10}), hours=4, scratch_dir=str(scratch)
    )
    assert not store.arrays["values"].flags.writeable
    assert len(list(scratch.iterdir())) == 1
    dataset = ArrayStoreDataset(filepath=str(tmp_path / "hourly"))
    dataset.save(store)
    loaded = dataset.load()
    np.testing.assert_array_equal(loaded.arrays["values"], store.arrays["values"])
    assert loaded.index["length"].tolist() == [4]
    del store
    gc.collect()
    assert list(scratch.iterdir()) == []
    with pytest.raises(TimeSeriesError):
        build_hourly_store(
            _events([(1, T0, C, 1.0)]), _stays({1: 10}), hours=4, scratch_dir=str(scratch)
        )
    assert list(scratch.iterdir()) == []
