"""Helpers of the demo tests: the session export's settings and its files read back as text."""

from __future__ import annotations

import gzip
import json
from functools import cache
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv

from mindkd.demo import DemoConfig

#: Big enough for the signal tests to have ~90 deaths among adult single stays; about 5 s.
SESSION_CONFIG = DemoConfig(patients=1000, seed=7, image_size=(64, 80), distractor_share=0.15)


def header(path: Path) -> list[str]:
    """The column names of a gzip CSV, as written on its first line."""
    with gzip.open(path, "rt", encoding="utf-8") as f:
        return f.readline().rstrip("\n").split(",")


def read_text_table(path: Path) -> pd.DataFrame:
    """A gzip CSV with every column as text, empty fields as "" (nothing turned into NaN)."""
    types = dict.fromkeys(header(path), pa.string())
    options = pacsv.ConvertOptions(column_types=types, strings_can_be_null=False)
    return pacsv.read_csv(path, convert_options=options).to_pandas()


class RawExport:
    """Lazy access to the files of a demo export (tables cached as text)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.iv = root / "mimic-iv"
        self.cxr = root / "mimic-cxr-jpg"
        self.manifest: dict[str, Any] = json.loads((root / "_truth" / "manifest.json").read_text())

    @cache  # noqa: B019 (one instance per session)
    def table(self, relpath: str) -> pd.DataFrame:
        """The file at ``relpath`` (below the export root) as text columns."""
        return read_text_table(self.root / relpath)

    @cache  # noqa: B019
    def truth(self, name: str) -> pd.DataFrame:
        return pd.read_parquet(self.root / "_truth" / f"{name}.parquet")


#: Item id -> unit string of every chartevents item of the 17 variables (MIMIC.md table).
VARIABLE_ITEM_UNITS: dict[int, str] = {
    223951: "",
    224308: "",
    220051: "mmHg",
    220180: "mmHg",
    224643: "mmHg",
    225310: "mmHg",
    223835: "",
    220739: "",
    223901: "",
    223900: "",
    220621: "mg/dL",
    225664: "mg/dL",
    226537: "mg/dL",
    220045: "bpm",
    226730: "cm",
    226707: "Inch",
    220052: "mmHg",
    220181: "mmHg",
    224322: "mmHg",
    225312: "mmHg",
    220227: "%",
    220277: "%",
    220210: "insp/min",
    224422: "insp/min",
    224689: "insp/min",
    224690: "insp/min",
    220050: "mmHg",
    220179: "mmHg",
    224167: "mmHg",
    225309: "mmHg",
    227243: "mmHg",
    223762: "°C",
    223761: "°F",
    224639: "kg",
    226512: "kg",
    226531: "lbs",
    220274: "units",
    223830: "units",
}

FMT = "%Y-%m-%d %H:%M:%S"


def parse_times(frame: pd.DataFrame, *columns: str) -> pd.DataFrame:
    """A copy of ``frame`` with ``columns`` parsed from MIMIC time text ("" = NaT)."""
    out = frame.copy()
    for column in columns:
        out[column] = pd.to_datetime(out[column].replace("", None), format=FMT)
    return out


def study_times(meta: pd.DataFrame) -> pd.Series:
    """StudyDate + StudyTime (integer part left-padded to HHMMSS) as datetimes."""
    whole = meta["StudyTime"].str.split(".").str[0].str.zfill(6)
    return pd.to_datetime(meta["StudyDate"] + whole, format="%Y%m%d%H%M%S")


def cohort_stays(raw: RawExport) -> pd.DataFrame:
    """MIMIC.md cohort: no transfer, one remaining stay per admission, adult at intime."""
    stays = parse_times(raw.table("mimic-iv/icu/icustays.csv.gz"), "intime", "outtime")
    stays = stays[stays["first_careunit"] == stays["last_careunit"]]
    stays = stays[stays.groupby("hadm_id")["stay_id"].transform("size") == 1]
    patients = raw.table("mimic-iv/hosp/patients.csv.gz").set_index("subject_id")
    age = (
        stays["subject_id"].map(patients["anchor_age"]).astype(int)
        + stays["intime"].dt.year
        - stays["subject_id"].map(patients["anchor_year"]).astype(int)
    )
    return stays[age >= 18]
