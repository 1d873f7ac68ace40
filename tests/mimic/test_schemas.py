"""The raw MIMIC-IV schemas: PhysioNet column order and the types every loader relies on."""

from __future__ import annotations

import pyarrow as pa
import pytest
from kedro.io import DatasetError

from mindkd.mimic.schemas import EVENT_TABLES, TABLES, MimicSourceError, table_schema

# ../shared/MIMIC.md, "MIMIC-IV": the columns (in order) of every file we read.
EXPECTED_COLUMNS = {
    "patients": "subject_id gender anchor_age anchor_year anchor_year_group dod",
    "admissions": "subject_id hadm_id admittime dischtime deathtime admission_type "
    "admit_provider_id admission_location discharge_location insurance language marital_status "
    "race edregtime edouttime hospital_expire_flag",
    "diagnoses_icd": "subject_id hadm_id seq_num icd_code icd_version",
    "d_icd_diagnoses": "icd_code icd_version long_title",
    "labevents": "labevent_id subject_id hadm_id specimen_id itemid order_provider_id charttime "
    "storetime value valuenum valueuom ref_range_lower ref_range_upper flag priority comments",
    "d_labitems": "itemid label fluid category",
    "icustays": "subject_id hadm_id stay_id first_careunit last_careunit intime outtime los",
    "chartevents": "subject_id hadm_id stay_id caregiver_id charttime storetime itemid value "
    "valuenum valueuom warning",
    "d_items": "itemid label abbreviation linksto category unitname param_type lownormalvalue "
    "highnormalvalue",
}


@pytest.mark.parametrize("table", sorted(EXPECTED_COLUMNS))
def test_columns_in_physionet_order(table: str) -> None:
    assert table_schema(table).column_names == tuple(EXPECTED_COLUMNS[table].split())


def test_every_table_is_declared() -> None:
    assert set(TABLES) == set(EXPECTED_COLUMNS)
    assert {TABLES[t].relpath for t in TABLES} >= {
        "icu/chartevents.csv.gz",
        "hosp/labevents.csv.gz",
        "icu/icustays.csv.gz",
    }


def test_types_ids_times_and_text() -> None:
    for schema in TABLES.values():
        for column in schema.columns:
            if column.name.endswith("_id") and column.name not in {
                "admit_provider_id",
                "order_provider_id",
            }:
                assert column.type == pa.int64(), (schema.name, column.name)
            if column.name.endswith("time") or column.name == "dod":
                assert column.type == pa.timestamp("s"), (schema.name, column.name)
    assert table_schema("diagnoses_icd").column_types["icd_code"] == pa.string()
    assert table_schema("d_icd_diagnoses").column_types["icd_code"] == pa.string()
    assert table_schema("chartevents").column_types["value"] == pa.string()
    assert table_schema("chartevents").column_types["valuenum"] == pa.float64()
    assert "icd_code" in table_schema("diagnoses_icd").non_nullable_text()


def test_stream_columns_are_what_ingestion_needs() -> None:
    for table in EVENT_TABLES:
        schema = table_schema(table)
        assert set(schema.stream_columns) <= set(schema.column_names)
        assert {"subject_id", "charttime", "itemid", "value", "valuenum"} <= set(
            schema.stream_columns
        )
    assert "stay_id" in table_schema("chartevents").stream_columns
    assert "stay_id" not in table_schema("labevents").column_names


def test_unknown_table_is_a_clear_error() -> None:
    with pytest.raises(MimicSourceError, match=r"Unknown MIMIC-IV table 'chartevent'.*icustays"):
        table_schema("chartevent")


def test_source_error_passes_through_kedro() -> None:
    # Kedro re-raises DatasetError subclasses from load() unchanged
    assert issubclass(MimicSourceError, DatasetError)
