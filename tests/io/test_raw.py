"""Raw MIMIC-IV datasets: typed small tables, lazy event readers, clear errors."""

from __future__ import annotations

import gzip
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pytest
from kedro.io import DataCatalog, DatasetError

from mindkd.io.raw import MimicEventReader, MimicEventsDataset, MimicTableDataset
from mindkd.mimic.schemas import MimicSourceError

ICUSTAYS = """subject_id,hadm_id,stay_id,first_careunit,last_careunit,intime,outtime,los,extra
10000001,20000001,30000001,MICU,MICU,2180-01-01 00:00:00,2180-01-03 12:00:00,2.5,x
10000002,20000002,30000002,SICU,MICU,2180-02-01 00:00:00,2180-02-02 00:00:00,1.0,y
"""
DIAGNOSES = """subject_id,hadm_id,seq_num,icd_code,icd_version
10000001,20000001,1,0389,9
10000001,20000001,2,I10,10
10000002,20000002,1,NA,10
"""
CHART_HEADER = (
    "subject_id,hadm_id,stay_id,caregiver_id,charttime,storetime,itemid,value,valuenum,valueuom,"
    "warning"
)


def write_gz(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with gzip.open(path, "wt", encoding="utf-8") as handle:
        handle.write(text)
    return path


def chart_rows(n: int) -> str:
    rows = [
        f"10000001,20000001,30000001,7,2180-01-01 {i // 60:02d}:{i % 60:02d}:00,,220045,"
        f"{60 + i % 50},{60 + i % 50},bpm,0"
        for i in range(n)
    ]
    return "\n".join([CHART_HEADER, *rows]) + "\n"


def test_table_dtypes_and_extra_columns(tmp_path: Path) -> None:
    path = write_gz(tmp_path / "icu" / "icustays.csv.gz", ICUSTAYS)
    frame = MimicTableDataset(str(path), "icustays").load()
    assert list(frame.columns) == [
        "subject_id", "hadm_id", "stay_id", "first_careunit", "last_careunit", "intime",
        "outtime", "los",
    ]  # fmt: skip
    assert str(frame["stay_id"].dtype) == "Int64"
    assert frame["intime"].dtype == "datetime64[s]"
    assert frame["los"].dtype == "float64"
    assert frame.loc[0, "outtime"] == pd.Timestamp("2180-01-03 12:00:00")
    assert frame["first_careunit"].tolist() == ["MICU", "SICU"]


def test_icd_codes_stay_strings(tmp_path: Path) -> None:
    path = write_gz(tmp_path / "diagnoses_icd.csv.gz", DIAGNOSES)
    frame = MimicTableDataset(str(path), "diagnoses_icd").load()
    assert frame["icd_code"].tolist() == ["0389", "I10", "NA"]
    assert frame["icd_version"].tolist() == [9, 10, 10]


def test_missing_file_names_file_table_and_config_key(tmp_path: Path) -> None:
    path = tmp_path / "icu" / "icustays.csv.gz"
    with pytest.raises(MimicSourceError, match=r"icustays\.csv\.gz.*'icustays'.*mimic_iv_dir"):
        MimicTableDataset(str(path), "icustays").load()
    with pytest.raises(MimicSourceError, match=r"chartevents\.csv\.gz.*conf/local/globals\.yml"):
        MimicEventsDataset(str(tmp_path / "chartevents.csv.gz"), "chartevents").load()


def test_missing_column_names_file_column_and_found(tmp_path: Path) -> None:
    text = ICUSTAYS.replace("outtime", "out_time")
    path = write_gz(tmp_path / "icustays.csv.gz", text)
    with pytest.raises(MimicSourceError, match=r"icustays\.csv\.gz.*\['outtime'\].*'out_time'"):
        MimicTableDataset(str(path), "icustays").load()


def test_missing_event_column_fails_at_load_before_streaming(tmp_path: Path) -> None:
    path = write_gz(tmp_path / "chartevents.csv.gz", chart_rows(3).replace(",valuenum,", ",vn,"))
    with pytest.raises(MimicSourceError, match=r"chartevents\.csv\.gz.*\['valuenum'\]"):
        MimicEventsDataset(str(path), "chartevents").load()


def test_unparsable_value_names_the_file(tmp_path: Path) -> None:
    path = write_gz(tmp_path / "icustays.csv.gz", ICUSTAYS.replace("30000002", "3000000x"))
    with pytest.raises(MimicSourceError, match=r"icustays\.csv\.gz.*does not parse"):
        MimicTableDataset(str(path), "icustays").load()


def test_sources_are_read_only(tmp_path: Path) -> None:
    path = write_gz(tmp_path / "icustays.csv.gz", ICUSTAYS)
    with pytest.raises(DatasetError, match="read-only"):
        MimicTableDataset(str(path), "icustays").save(pd.DataFrame())
    with pytest.raises(DatasetError, match="read-only"):
        MimicEventsDataset(str(path), "chartevents").save(object())  # type: ignore[arg-type]


def test_events_stream_lazily_in_many_batches(tmp_path: Path) -> None:
    path = write_gz(tmp_path / "icu" / "chartevents.csv.gz", chart_rows(500))
    reader = MimicEventsDataset(str(path), "chartevents", block_size=2048).load()
    assert isinstance(reader, MimicEventReader)
    assert reader.bytes_read == 0  # nothing streamed yet
    batches = list(reader)
    assert len(batches) > 5
    table = pa.Table.from_batches(batches)
    assert table.num_rows == 500
    assert table.schema.names == list(reader.columns)
    assert "storetime" not in table.schema.names  # only the needed columns are converted
    assert table.schema.field("charttime").type == pa.timestamp("s")
    assert table.schema.field("itemid").type == pa.int64()
    assert table["valuenum"].to_pylist()[:3] == [60.0, 61.0, 62.0]
    assert reader.bytes_read == reader.size_bytes
    assert sum(b.num_rows for b in reader) == 500  # re-iterable


def test_gcs_none_text_is_kept_as_text(tmp_path: Path) -> None:
    text = (
        CHART_HEADER + "\n"
        "10000001,20000001,30000001,7,2180-01-01 01:00:00,,220739,None,,,0\n"
        "10000001,20000001,30000001,7,2180-01-01 01:00:00,,223900,No Response-ETT,,,0\n"
        '10000001,20000001,30000001,7,2180-01-01 01:00:00,,220045,"",,bpm,0\n'
    )
    path = write_gz(tmp_path / "chartevents.csv.gz", text)
    table = pa.Table.from_batches(list(MimicEventsDataset(str(path), "chartevents").load()))
    assert table["value"].to_pylist() == ["None", "No Response-ETT", None]
    assert table["valuenum"].null_count == 3


def test_catalog_load_raises_the_domain_error(tmp_path: Path) -> None:
    catalog = DataCatalog.from_config(
        {
            "icustays": {
                "type": "mindkd.io.raw.MimicTableDataset",
                "filepath": str(tmp_path / "nowhere" / "icustays.csv.gz"),
                "table": "icustays",
            }
        }
    )
    with pytest.raises(
        DatasetError, match=r"icustays: MIMIC-IV file not found.*mimic_iv_dir"
    ) as err:
        catalog.load("icustays")
    assert isinstance(err.value.__cause__, MimicSourceError)


def test_bad_value_in_a_later_block_names_the_file(tmp_path: Path) -> None:
    text = chart_rows(400).replace("2180-01-01 06:30:00", "not a time")
    path = write_gz(tmp_path / "chartevents.csv.gz", text)
    reader = MimicEventsDataset(str(path), "chartevents", block_size=2048).load()
    with pytest.raises(MimicSourceError, match=r"chartevents\.csv\.gz.*does not parse"):
        list(reader)


@pytest.mark.parametrize(("use_threads", "prefetch"), [(False, 0), (True, 0), (True, 3)])
def test_reader_modes_give_the_same_batches(
    tmp_path: Path, use_threads: bool, prefetch: int
) -> None:
    path = write_gz(tmp_path / "chartevents.csv.gz", chart_rows(300))
    reference = pa.Table.from_batches(list(MimicEventReader(path, "chartevents", block_size=1024)))
    reader = MimicEventReader(
        path, "chartevents", block_size=1024, use_threads=use_threads, prefetch=prefetch
    )
    assert pa.Table.from_batches(list(reader)).equals(reference)


def test_prefetching_reader_stops_cleanly_when_abandoned(tmp_path: Path) -> None:
    path = write_gz(tmp_path / "chartevents.csv.gz", chart_rows(500))
    batches = iter(MimicEventReader(path, "chartevents", block_size=1024, prefetch=1))
    first = next(batches)
    assert first.num_rows > 0
    batches.close()  # the background thread is stopped and joined, nothing hangs


def _truncated(path: Path, keep: float = 0.6) -> Path:
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])
    return path


@pytest.mark.parametrize("prefetch", [0, 2])
def test_truncated_event_file_names_the_file_and_what_to_do(tmp_path: Path, prefetch: int) -> None:
    # incompressible values, so the gzip file is large enough to be cut after its header
    rows = [f"10000001,20000001,30000001,7,2180-01-01 00:00:00,,220045,{i},{i},bpm,0"
            for i in range(0, 40_000_000, 331)]  # fmt: skip
    path = _truncated(write_gz(tmp_path / "chartevents.csv.gz", "\n".join([CHART_HEADER, *rows])))
    reader = MimicEventsDataset(str(path), "chartevents", block_size=1 << 16, prefetch=prefetch)
    with pytest.raises(MimicSourceError, match=r"chartevents\.csv\.gz .*cannot be read to its "
                       r"end: .*[Tt]runcated.*gzip -t .*download it again"):  # fmt: skip
        sum(batch.num_rows for batch in reader.load())


def test_truncated_table_names_the_file(tmp_path: Path) -> None:
    header = ICUSTAYS.split("\n", maxsplit=1)[0].removesuffix(",extra")
    rows = [f"{10000000 + i},{20000000 + i},{30000000 + i},MICU,MICU,2180-01-01 00:00:00,"
            f"2180-01-03 12:00:00,2.5" for i in range(0, 3_000_000, 31)]  # fmt: skip
    path = _truncated(write_gz(tmp_path / "icustays.csv.gz", "\n".join([header, *rows])))
    with pytest.raises(MimicSourceError, match=r"icustays\.csv\.gz .*[Tt]runcated.*gzip -t"):
        MimicTableDataset(str(path), "icustays").load()


@pytest.mark.parametrize("table", ["icustays", "chartevents", "labevents"])
def test_a_header_without_rows_is_an_error(tmp_path: Path, table: str) -> None:
    headers = {
        "icustays": ICUSTAYS.split("\n", maxsplit=1)[0],
        "chartevents": CHART_HEADER,
        "labevents": "labevent_id,subject_id,hadm_id,specimen_id,itemid,order_provider_id,"
        "charttime,storetime,value,valuenum,valueuom,ref_range_lower,ref_range_upper,flag,"
        "priority,comments",
    }
    path = write_gz(tmp_path / f"{table}.csv.gz", headers[table] + "\n")
    with pytest.raises(MimicSourceError, match=rf"{table}\.csv\.gz .*header but no rows"):
        if table == "icustays":
            MimicTableDataset(str(path), table).load()
        else:
            list(MimicEventsDataset(str(path), table).load())
