"""Expected columns and arrow types of the MIMIC-IV files the project reads.

Every table of ../shared/MIMIC.md is declared once here, with its columns in PhysioNet order and
the arrow type each is parsed as: ids ``int64``, times ``timestamp[s]``, numbers ``float64`` and all
text, ICD codes included, as ``string`` (``"0389"`` keeps its leading zero). The only value read as
missing is the empty field: ``"None"`` (a GCS eye-opening answer), ``"NA"`` or ``"NaN"`` in a text
column stay text.

``MimicSourceError`` is the domain error of raw inputs: a missing file, a missing column, a value
that does not parse. Its message names the file, the column and what to change (``mimic_iv_dir`` in
``conf/local/globals.yml``). It subclasses Kedro's ``DatasetError`` so a catalog load re-raises it
unchanged instead of burying it inside "Failed while loading data from dataset ...".
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

import pyarrow as pa
from kedro.io.core import DatasetError

#: The config key that points the project at a MIMIC-IV copy, and where a user sets it.
MIMIC_IV_DIR_KEY = "mimic_iv_dir"
MIMIC_IV_DIR_HINT = (
    f"set `{MIMIC_IV_DIR_KEY}` in conf/local/globals.yml to the MIMIC-IV root folder "
    "(the one holding hosp/ and icu/)"
)

ID = pa.int64()
INT = pa.int64()
TIME = pa.timestamp("s")
TEXT = pa.string()
NUM = pa.float64()


class MimicSourceError(DatasetError):
    """A raw MIMIC input is missing or does not match the PhysioNet layout."""


@dataclass(frozen=True)
class Column:
    """One expected column: name, arrow type, and whether an empty field may be null.

    A text column with ``nullable=False`` keeps an empty field as ``""`` instead of null.
    """

    name: str
    type: pa.DataType
    nullable: bool = True


@dataclass(frozen=True)
class TableSchema:
    """The expected layout of one MIMIC-IV file.

    ``stream_columns`` (event tables only) are the columns the streaming ingestion parses; the other
    columns are tokenised by the CSV reader but never converted.
    """

    name: str
    relpath: str
    columns: tuple[Column, ...]
    stream_columns: tuple[str, ...] = ()

    @property
    def column_names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns)

    @property
    def column_types(self) -> dict[str, pa.DataType]:
        return {c.name: c.type for c in self.columns}

    def arrow_schema(self, columns: tuple[str, ...] | list[str] | None = None) -> pa.Schema:
        """The arrow schema of ``columns`` (default: all), in the order given."""
        types = self.column_types
        names = self.column_names if columns is None else tuple(columns)
        return pa.schema([pa.field(n, types[n]) for n in names])

    def non_nullable_text(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns if pa.types.is_string(c.type) and not c.nullable)


def _table(name: str, relpath: str, *columns: Column, stream: tuple[str, ...] = ()) -> TableSchema:
    return TableSchema(name, relpath, tuple(columns), stream)


C = Column

TABLES: Mapping[str, TableSchema] = MappingProxyType(
    {
        t.name: t
        for t in (
            _table(
                "patients",
                "hosp/patients.csv.gz",
                C("subject_id", ID),
                C("gender", TEXT),
                C("anchor_age", INT),
                C("anchor_year", INT),
                C("anchor_year_group", TEXT),
                C("dod", TIME),
            ),
            _table(
                "admissions",
                "hosp/admissions.csv.gz",
                C("subject_id", ID),
                C("hadm_id", ID),
                C("admittime", TIME),
                C("dischtime", TIME),
                C("deathtime", TIME),
                C("admission_type", TEXT),
                C("admit_provider_id", TEXT),
                C("admission_location", TEXT),
                C("discharge_location", TEXT),
                C("insurance", TEXT),
                C("language", TEXT),
                C("marital_status", TEXT),
                C("race", TEXT),
                C("edregtime", TIME),
                C("edouttime", TIME),
                C("hospital_expire_flag", INT),
            ),
            _table(
                "icustays",
                "icu/icustays.csv.gz",
                C("subject_id", ID),
                C("hadm_id", ID),
                C("stay_id", ID),
                C("first_careunit", TEXT),
                C("last_careunit", TEXT),
                C("intime", TIME),
                C("outtime", TIME),
                C("los", NUM),
            ),
            _table(
                "diagnoses_icd",
                "hosp/diagnoses_icd.csv.gz",
                C("subject_id", ID),
                C("hadm_id", ID),
                C("seq_num", INT),
                C("icd_code", TEXT, nullable=False),
                C("icd_version", INT),
            ),
            _table(
                "d_icd_diagnoses",
                "hosp/d_icd_diagnoses.csv.gz",
                C("icd_code", TEXT, nullable=False),
                C("icd_version", INT),
                C("long_title", TEXT),
            ),
            _table(
                "chartevents",
                "icu/chartevents.csv.gz",
                C("subject_id", ID),
                C("hadm_id", ID),
                C("stay_id", ID),
                C("caregiver_id", ID),
                C("charttime", TIME),
                C("storetime", TIME),
                C("itemid", ID),
                C("value", TEXT),
                C("valuenum", NUM),
                C("valueuom", TEXT),
                C("warning", INT),
                stream=(
                    "subject_id",
                    "stay_id",
                    "charttime",
                    "itemid",
                    "value",
                    "valuenum",
                    "valueuom",
                ),
            ),
            _table(
                "labevents",
                "hosp/labevents.csv.gz",
                C("labevent_id", ID),
                C("subject_id", ID),
                C("hadm_id", ID),
                C("specimen_id", ID),
                C("itemid", ID),
                C("order_provider_id", TEXT),
                C("charttime", TIME),
                C("storetime", TIME),
                C("value", TEXT),
                C("valuenum", NUM),
                C("valueuom", TEXT),
                C("ref_range_lower", NUM),
                C("ref_range_upper", NUM),
                C("flag", TEXT),
                C("priority", TEXT),
                C("comments", TEXT),
                stream=("subject_id", "charttime", "itemid", "value", "valuenum", "valueuom"),
            ),
            _table(
                "d_items",
                "icu/d_items.csv.gz",
                C("itemid", ID),
                C("label", TEXT),
                C("abbreviation", TEXT),
                C("linksto", TEXT),
                C("category", TEXT),
                C("unitname", TEXT),
                C("param_type", TEXT),
                C("lownormalvalue", NUM),
                C("highnormalvalue", NUM),
            ),
            _table(
                "d_labitems",
                "hosp/d_labitems.csv.gz",
                C("itemid", ID),
                C("label", TEXT),
                C("fluid", TEXT),
                C("category", TEXT),
            ),
        )
    }
)

#: The event tables, streamed instead of loaded whole.
EVENT_TABLES: tuple[str, ...] = ("chartevents", "labevents")


def table_schema(table: str) -> TableSchema:
    """The schema of ``table``; a clear error for a name that is not a MIMIC-IV table we read."""
    try:
        return TABLES[table]
    except KeyError:
        raise MimicSourceError(
            f"Unknown MIMIC-IV table '{table}'; expected one of {sorted(TABLES)} "
            "(the `table` argument of the catalog entry)."
        ) from None
