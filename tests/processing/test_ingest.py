"""Pass 1: item filter, stay attribution by time, bucket routing, and every drop counted."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from mindkd.io.event_parts import MemoryEventParts, bucket_slices
from mindkd.io.raw import MimicEventsDataset, MimicTableDataset
from mindkd.mimic.variables import CHART_ITEMS, LAB_ITEMS
from mindkd.processing.ingest import (
    NO_LOOKBACK,
    RAW_EVENT_SCHEMA,
    EventStream,
    Lookback,
    StayIndex,
    ingest_events,
)

ICUSTAYS = """subject_id,hadm_id,stay_id,first_careunit,last_careunit,intime,outtime,los
10000001,20000001,30000010,MICU,MICU,2180-01-01 00:00:00,2180-01-03 00:00:00,2
10000001,20000002,30000011,MICU,MICU,2180-01-10 00:00:00,2180-01-12 00:00:00,2
10000002,20000003,30000012,SICU,SICU,2180-01-01 00:00:00,2180-01-04 00:00:00,3
"""
CHART_HEADER = (
    "subject_id,hadm_id,stay_id,caregiver_id,charttime,storetime,itemid,value,valuenum,valueuom,"
    "warning"
)
CHART_ROWS = [
    # kept: inside its own stay, at both ends inclusive
    "10000001,20000001,30000010,1,2180-01-01 00:00:00,,220045,80,80,bpm,0",
    "10000001,20000001,30000010,1,2180-01-03 00:00:00,,220045,81,81,bpm,0",
    "10000001,20000002,30000011,1,2180-01-11 06:00:00,,223761,98.6,98.6,°F,0",
    "10000002,20000003,30000012,1,2180-01-02 00:00:00,,220739,None,,,0",
    # stay_mismatch: says stay 30000010 but falls in the subject's other stay
    "10000001,20000001,30000010,1,2180-01-11 00:00:00,,220045,82,82,bpm,0",
    # outside_stay: between the subject's two stays; and a stay of another subject
    "10000001,20000001,30000010,1,2180-01-05 00:00:00,,220045,83,83,bpm,0",
    "10000001,20000001,30000012,1,2180-01-03 12:00:00,,220045,84,84,bpm,0",
    # missing ids / time
    ",20000001,30000010,1,2180-01-01 01:00:00,,220045,85,85,bpm,0",
    "10000001,20000001,30000010,1,,,220045,86,86,bpm,0",
    "10000001,20000001,,1,2180-01-01 01:00:00,,220050,120,120,mmHg,0",
    "10000001,20000001,30000010,1,2180-01-01 01:00:00,,,87,87,bpm,0",
    # not one of the variables' items
    "10000001,20000001,30000010,1,2180-01-01 01:00:00,,227969,Turn,,,0",
]
LAB_HEADER = (
    "labevent_id,subject_id,hadm_id,specimen_id,itemid,order_provider_id,charttime,storetime,"
    "value,valuenum,valueuom,ref_range_lower,ref_range_upper,flag,priority,comments"
)
LAB_ROWS = [
    "1,10000001,20000001,1,50931,,2180-01-02 00:00:00,,110,110,mg/dL,,,,,",  # stay ...10
    "2,10000001,,2,50817,,2180-01-11 00:00:00,,0.97,0.97,%,,,,,",  # stay ...11
    "3,10000001,,3,50931,,2180-01-06 00:00:00,,95,95,mg/dL,,,,,",  # between the two stays
    "4,10000003,,4,50820,,2180-01-02 00:00:00,,7.4,7.4,units,,,,,",  # subject has no stay
    "5,,,5,50931,,2180-01-02 00:00:00,,100,100,mg/dL,,,,,",  # missing subject
    "6,10000002,,6,50931,,,,100,100,mg/dL,,,,,",  # missing time
    "7,10000002,,7,50912,,2180-01-02 00:00:00,,1.0,1.0,mg/dL,,,,,",  # creatinine: not ours
]


def write_gz(path: Path, lines: list[str]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with gzip.open(path, "wt", encoding="utf-8") as handle:
        handle.write("\n".join(lines) + "\n")
    return path


@pytest.fixture
def mimic(tmp_path: Path) -> Path:
    write_gz(tmp_path / "icu" / "icustays.csv.gz", ICUSTAYS.strip().splitlines())
    write_gz(tmp_path / "icu" / "chartevents.csv.gz", [CHART_HEADER, *CHART_ROWS])
    write_gz(tmp_path / "hosp" / "labevents.csv.gz", [LAB_HEADER, *LAB_ROWS])
    return tmp_path


def run(
    root: Path, n_buckets: int = 4, block_size: int = 1 << 20, lookback: Lookback = NO_LOOKBACK
) -> EventStream:
    admissions = root / "hosp/admissions.csv.gz"
    return ingest_events(
        MimicEventsDataset(str(root / "icu/chartevents.csv.gz"), "chartevents", block_size).load(),
        MimicEventsDataset(str(root / "hosp/labevents.csv.gz"), "labevents", block_size).load(),
        MimicTableDataset(str(root / "icu/icustays.csv.gz"), "icustays").load(),
        n_buckets=n_buckets,
        admissions=(
            MimicTableDataset(str(admissions), "admissions").load() if admissions.exists() else None
        ),
        lookback=lookback,
    )


def test_every_drop_counted_exactly(mimic: Path) -> None:
    stream = run(mimic)
    assert stream.stats["complete"] is False
    table = MemoryEventParts(stream).to_table()
    stats = stream.stats
    assert stats["complete"] is True
    chart, lab = stats["sources"]["chart"], stats["sources"]["lab"]
    assert chart["rows_read"] == 12
    assert chart["rows_other_items"] == 1
    assert chart["rows_variable_items"] == 10
    assert chart["rows_kept"] == 4
    assert chart["dropped"] == {
        "missing_itemid": 1,
        "missing_subject_id": 1,
        "missing_charttime": 1,
        "missing_stay_id": 1,
        "outside_stay": 2,
        "stay_mismatch": 1,
    }
    assert lab["rows_read"] == 7
    assert lab["rows_other_items"] == 1
    assert lab["rows_kept"] == 2
    assert lab["dropped"] == {
        "missing_itemid": 0,
        "missing_subject_id": 1,
        "missing_charttime": 1,
        "missing_stay_id": 0,
        "outside_stay": 2,
        "stay_mismatch": 0,
    }
    by_variable = stats["by_variable"]
    assert by_variable["chart"]["outside_stay"] == {"heart_rate": 2}
    assert by_variable["chart"]["missing_stay_id"] == {"sbp": 1}
    assert by_variable["lab"]["outside_stay"] == {"glucose": 1, "ph": 1}
    assert by_variable["chart"]["kept"] == {"heart_rate": 2, "temperature": 1, "gcs_eye": 1}
    assert sum(stats["rows_per_bucket"]) == table.num_rows == 6
    # dropped rows are absent: no value 82..87 survives
    assert set(table["valuenum"].drop_null().to_pylist()) == {80, 81, 98.6, 110, 0.97}


ADMISSIONS_HEADER = (
    "subject_id,hadm_id,admittime,dischtime,deathtime,admission_type,admit_provider_id,"
    "admission_location,discharge_location,insurance,language,marital_status,race,edregtime,"
    "edouttime,hospital_expire_flag"
)
ADMISSIONS_ROWS = [
    "10000001,20000001,2179-12-31 20:00:00,2180-01-04 00:00:00,,EW EMER.,P1,ER,HOME,Other,EN,,W,,,0",
    "10000001,20000002,2180-01-09 00:00:00,2180-01-13 00:00:00,,EW EMER.,P1,ER,HOME,Other,EN,,W,,,0",
    "10000002,20000003,2179-12-25 00:00:00,2180-01-05 00:00:00,,EW EMER.,P1,ER,HOME,Other,EN,,W,,,0",
]
LOOKBACK_ROWS = [
    # looked back: weight / height of the stay, minutes (or hours) before intime, in the admission
    "10000001,20000001,30000010,1,2179-12-31 23:50:00,,226512,80,80,kg,0",
    "10000001,20000002,30000011,1,2180-01-09 10:00:00,,226707,70,70,Inch,0",
    "10000002,20000003,30000012,1,2179-12-31 00:00:00,,226531,180,180,lbs,0",  # 24 h: the edge
    # outside_stay: before the admission (19:00 < admittime 20:00), more than 24 h before
    # intime, not a slow variable, or claimed by another subject's stay
    "10000001,20000001,30000010,1,2179-12-31 19:00:00,,226730,170,170,cm,0",
    "10000002,20000003,30000012,1,2179-12-30 23:59:00,,226512,81,81,kg,0",
    "10000001,20000001,30000010,1,2179-12-31 23:50:00,,220045,90,90,bpm,0",
    "10000002,20000003,30000010,1,2179-12-31 23:50:00,,226512,82,82,kg,0",
    # stay_mismatch: claims stay ...11 but falls in the subject's stay ...10 (before ...11)
    "10000001,20000002,30000011,1,2180-01-02 00:00:00,,226512,83,83,kg,0",
]


def test_lookback_keeps_slow_variables_charted_before_intime(mimic: Path) -> None:
    write_gz(mimic / "icu" / "chartevents.csv.gz", [CHART_HEADER, *CHART_ROWS, *LOOKBACK_ROWS])
    write_gz(mimic / "hosp" / "admissions.csv.gz", [ADMISSIONS_HEADER, *ADMISSIONS_ROWS])
    off = run(mimic)
    MemoryEventParts(off).to_table()
    assert off.stats["sources"]["chart"]["rows_looked_back"] == 0
    assert off.stats["sources"]["chart"]["dropped"]["outside_stay"] == 2 + 7
    stream = run(mimic, lookback=Lookback(24))
    table = MemoryEventParts(stream).to_table().to_pandas()
    chart = stream.stats["sources"]["chart"]
    assert chart["rows_looked_back"] == 3
    assert chart["rows_kept"] == 4 + 3
    assert chart["dropped"]["outside_stay"] == 2 + 4
    assert chart["dropped"]["stay_mismatch"] == 1 + 1
    assert stream.stats["by_variable"]["chart"]["looked_back"] == {"height": 1, "weight": 2}
    assert stream.stats["lookback"] == {"hours": 24, "variables": ["height", "weight"]}
    back = table[table["itemid"].isin([226512, 226707, 226531])]
    assert sorted(zip(back["stay_id"], back["valuenum"], strict=True)) == [
        (30000010, 80.0), (30000011, 70.0), (30000012, 180.0),
    ]  # fmt: skip
    only_weight = run(mimic, lookback=Lookback(24, ("weight",)))
    MemoryEventParts(only_weight)
    assert only_weight.stats["by_variable"]["chart"]["looked_back"] == {"weight": 2}
    with pytest.raises(ValueError, match="lookback_variables"):
        Lookback(24, ("hieght",))


def test_labs_attributed_to_the_stay_by_time(mimic: Path) -> None:
    table = MemoryEventParts(run(mimic)).to_table()
    labs = table.filter(pa.compute.equal(table["source"], "lab")).to_pandas()
    assert dict(zip(labs["valuenum"], labs["stay_id"], strict=True)) == {
        110.0: 30000010,
        0.97: 30000011,
    }
    chart = table.filter(pa.compute.equal(table["source"], "chart")).to_pandas()
    numeric = chart.dropna(subset=["valuenum"])
    assert dict(zip(numeric["valuenum"], numeric["stay_id"], strict=True)) == {
        80.0: 30000010,
        81.0: 30000010,
        98.6: 30000011,
    }
    assert chart.loc[chart["itemid"] == 220739, "value"].tolist() == ["None"]


def test_bucket_routing_keeps_a_stay_in_one_bucket(mimic: Path) -> None:
    seen: dict[int, set[int]] = {}
    stream = run(mimic, n_buckets=3)
    for chunk in stream:
        assert chunk.column_names[0] == "bucket"  # one chunk per batch, grouped by bucket
        for bucket, table in bucket_slices(chunk):
            assert table.schema == RAW_EVENT_SCHEMA
            for stay in table["stay_id"].to_pylist():
                assert stay % 3 == bucket
                seen.setdefault(stay, set()).add(bucket)
    assert all(len(buckets) == 1 for buckets in seen.values())
    assert set(seen) == {30000010, 30000011, 30000012}


SLOW_ITEMS = (226730, 226707, 224639, 226512, 226531)  # height and weight, as MIMIC.md lists them


def reference_pass1(root: Path, lookback_hours: float = 0) -> pd.DataFrame:
    """Pass 1 with plain pandas on whole tables: the non-streamed reference.

    With ``lookback_hours``, height and weight rows of a stay charted in
    ``[max(intime - lookback_hours, admittime), intime)`` are kept too (the random stays of one
    subject are far enough apart that such a row never falls inside another stay).
    """
    read = {"keep_default_na": False, "na_values": [""], "dtype": {"value": str}}
    stays = pd.read_csv(root / "icu/icustays.csv.gz", parse_dates=["intime", "outtime"], **read)
    chart = pd.read_csv(root / "icu/chartevents.csv.gz", parse_dates=["charttime"], **read)
    chart = chart[chart["itemid"].isin(list(CHART_ITEMS))]
    chart = chart.dropna(subset=["subject_id", "charttime", "stay_id"])
    chart = chart.merge(
        stays[["stay_id", "subject_id", "hadm_id", "intime", "outtime"]], on="stay_id"
    )
    own = chart["subject_id_x"] == chart["subject_id_y"]
    inside = (chart["intime"] <= chart["charttime"]) & (chart["charttime"] <= chart["outtime"])
    back = pd.Series(False, index=chart.index)
    if lookback_hours:
        admissions = pd.read_csv(root / "hosp/admissions.csv.gz", parse_dates=["admittime"])
        admit = chart["hadm_id_y"].map(admissions.set_index("hadm_id")["admittime"])
        start = np.maximum(chart["intime"] - pd.Timedelta(hours=lookback_hours), admit)
        back = (
            chart["itemid"].isin(SLOW_ITEMS)
            & (start <= chart["charttime"])
            & (chart["charttime"] < chart["intime"])
        )
    chart = chart[own & (inside | back)].assign(source="chart")
    lab = pd.read_csv(root / "hosp/labevents.csv.gz", parse_dates=["charttime"], **read)
    lab = lab[lab["itemid"].isin(list(LAB_ITEMS))].dropna(subset=["subject_id", "charttime"])
    lab = lab.merge(stays[["stay_id", "subject_id", "intime", "outtime"]], on="subject_id")
    lab = lab[(lab["intime"] <= lab["charttime"]) & (lab["charttime"] <= lab["outtime"])]
    columns = ["stay_id", "charttime", "itemid", "value", "valuenum", "valueuom", "source"]
    both = pd.concat([chart.assign(source="chart"), lab.assign(source="lab")])[columns]
    both["value"] = both["value"].astype(object).where(both["value"].notna(), None)
    return both.sort_values(columns[:5]).reset_index(drop=True)


def random_mimic(root: Path, seed: int, n_rows: int) -> None:
    rng = np.random.default_rng(seed)
    stays = []
    for s in range(12):
        start = pd.Timestamp("2150-01-01") + pd.Timedelta(days=int(s // 2) * 30 + (s % 2) * 10)
        stays.append(
            (10000000 + s // 2, 20000000 + s, 30000000 + s, start, start + pd.Timedelta("5D"))
        )
    lines = ["subject_id,hadm_id,stay_id,first_careunit,last_careunit,intime,outtime,los"]
    lines += [f"{a},{b},{c},MICU,MICU,{i},{o},5" for a, b, c, i, o in stays]
    write_gz(root / "icu/icustays.csv.gz", lines)
    admissions = [ADMISSIONS_HEADER]
    for a, b, _, i, o in stays:  # admitted 2 to 30 h before intime: the look-back's lower end
        admit = i - pd.Timedelta(hours=float(rng.uniform(2, 30)))
        admissions.append(f"{a},{b},{admit:%Y-%m-%d %H:%M:%S},{o},,U,P,ER,HOME,O,EN,,W,,,0")
    write_gz(root / "hosp/admissions.csv.gz", admissions)
    items = [*CHART_ITEMS, 227969, 224082]
    chart = [CHART_HEADER]
    for _ in range(n_rows):
        subject, _, stay, intime, _ = stays[rng.integers(len(stays))]
        t = intime + pd.Timedelta(hours=float(rng.uniform(-24, 150)))
        v = round(float(rng.normal(80, 30)), 1)
        item = items[rng.integers(len(items))]
        claimed = stay if rng.random() > 0.05 else 30000000 + int(rng.integers(12))
        chart.append(f"{subject},,{claimed},1,{t:%Y-%m-%d %H:%M:%S},,{item},{v},{v},u,0")
    write_gz(root / "icu/chartevents.csv.gz", chart)
    lab = [LAB_HEADER]
    for i in range(n_rows // 3):
        subject = 10000000 + int(rng.integers(7))
        t = pd.Timestamp("2150-01-01") + pd.Timedelta(hours=float(rng.uniform(0, 24 * 200)))
        item = [*LAB_ITEMS, 50912][rng.integers(len(LAB_ITEMS) + 1)]
        lab.append(f"{i},{subject},,{i},{item},,{t:%Y-%m-%d %H:%M:%S},,7.1,7.1,u,,,,,")
    write_gz(root / "hosp/labevents.csv.gz", lab)


@pytest.mark.parametrize("lookback_hours", [0, 12])
def test_streamed_equals_pandas_reference_with_tiny_blocks(
    tmp_path: Path, lookback_hours: float
) -> None:
    random_mimic(tmp_path, seed=3, n_rows=3000)
    lookback = Lookback(lookback_hours)
    streamed = run(tmp_path, n_buckets=5, block_size=4096, lookback=lookback)
    chunks = list(streamed)
    assert len(chunks) > 20  # many batches
    got = pa.concat_tables([t for c in chunks for _, t in bucket_slices(c)]).to_pandas()
    got = got.sort_values(list(got.columns[:5])).reset_index(drop=True)
    expected = reference_pass1(tmp_path, lookback_hours)
    assert len(got) > 500
    pd.testing.assert_frame_equal(got, expected, check_dtype=False)
    looked_back = streamed.stats["sources"]["chart"]["rows_looked_back"]
    assert (looked_back > 5) == bool(lookback_hours)
    whole = MemoryEventParts(run(tmp_path, n_buckets=5, block_size=1 << 24, lookback=lookback))
    assert whole.stats["sources"] == streamed.stats["sources"]


def test_stay_index_vectorised_attribution() -> None:
    stays = pd.DataFrame(
        {
            "subject_id": [2, 1, 1, 3],
            "stay_id": [30, 10, 11, 40],
            "intime": pd.to_datetime(["2100-01-01", "2100-01-01", "2100-02-01", None]),
            "outtime": pd.to_datetime(["2100-01-05", "2100-01-05", "2100-02-05", "2100-03-01"]),
        }
    )
    index = StayIndex(stays)
    assert index.n_invalid == 1
    t = (
        pd.to_datetime(
            ["2100-01-02", "2100-01-10", "2100-02-05", "2100-01-02", "2100-01-02", "2099-01-01"]
        )
        .to_numpy("datetime64[s]")
        .astype(np.int64)
    )
    subject = np.array([1, 1, 1, 2, 5, 1])
    found = index.attribute(subject, t)
    got = [int(index.stay_id[p]) if p >= 0 else None for p in found]
    assert got == [10, None, 11, 30, None, None]
    assert index.contains(np.array([10, 10, 11, 30, 99, 10]), subject, t).tolist() == [
        True, False, True, True, False, False,
    ]  # fmt: skip


def test_bucket_count_grows_with_the_input(mimic: Path) -> None:
    from mindkd.processing.ingest import MAX_BUCKETS, resolve_n_buckets

    class Sized:
        def __init__(self, size: int) -> None:
            self.size_bytes = size

    assert resolve_n_buckets([Sized(10), Sized(10)], 32, bucket_bytes=100) == 32
    assert resolve_n_buckets([Sized(5_000), Sized(1_001)], 32, bucket_bytes=100) == 61
    assert resolve_n_buckets([Sized(10**12)], 32, bucket_bytes=100) == MAX_BUCKETS
    assert resolve_n_buckets([Sized(10**12)], 8, bucket_bytes=None) == 8
    assert resolve_n_buckets([[], []], 4, bucket_bytes=1) == 4  # sizes unknown
    with pytest.raises(ValueError, match="n_buckets must be >= 1"):
        resolve_n_buckets([], 0, bucket_bytes=None)
    stream = ingest_events(  # a reader, or one pass over it, knows the file size
        MimicEventsDataset(str(mimic / "icu/chartevents.csv.gz"), "chartevents").load().batches(),
        MimicEventsDataset(str(mimic / "hosp/labevents.csv.gz"), "labevents").load(),
        MimicTableDataset(str(mimic / "icu/icustays.csv.gz"), "icustays").load(),
        n_buckets=2,
        bucket_bytes=64,  # a few hundred bytes of gzip: several buckets
    )
    assert stream.n_buckets > 2
    assert stream.stats["n_buckets"] == stream.n_buckets == len(stream.stats["rows_per_bucket"])
