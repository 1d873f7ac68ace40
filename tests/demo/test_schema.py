"""The demo export has the exact PhysioNet layout: files, columns, formats, ids, units, images."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pytest
from demo_export import VARIABLE_ITEM_UNITS, RawExport, header
from PIL import Image

# Columns in PhysioNet order, typed again from ../shared/MIMIC.md (not imported from the generator).
FINDINGS = [
    "Atelectasis",
    "Cardiomegaly",
    "Consolidation",
    "Edema",
    "Enlarged Cardiomediastinum",
    "Fracture",
    "Lung Lesion",
    "Lung Opacity",
    "No Finding",
    "Pleural Effusion",
    "Pleural Other",
    "Pneumonia",
    "Pneumothorax",
    "Support Devices",
]
EXPECTED_COLUMNS: dict[str, list[str]] = {
    "mimic-iv/hosp/patients.csv.gz": [
        "subject_id",
        "gender",
        "anchor_age",
        "anchor_year",
        "anchor_year_group",
        "dod",
    ],
    "mimic-iv/hosp/admissions.csv.gz": [
        "subject_id",
        "hadm_id",
        "admittime",
        "dischtime",
        "deathtime",
        "admission_type",
        "admit_provider_id",
        "admission_location",
        "discharge_location",
        "insurance",
        "language",
        "marital_status",
        "race",
        "edregtime",
        "edouttime",
        "hospital_expire_flag",
    ],
    "mimic-iv/hosp/diagnoses_icd.csv.gz": [
        "subject_id",
        "hadm_id",
        "seq_num",
        "icd_code",
        "icd_version",
    ],
    "mimic-iv/hosp/d_icd_diagnoses.csv.gz": ["icd_code", "icd_version", "long_title"],
    "mimic-iv/hosp/labevents.csv.gz": [
        "labevent_id",
        "subject_id",
        "hadm_id",
        "specimen_id",
        "itemid",
        "order_provider_id",
        "charttime",
        "storetime",
        "value",
        "valuenum",
        "valueuom",
        "ref_range_lower",
        "ref_range_upper",
        "flag",
        "priority",
        "comments",
    ],
    "mimic-iv/hosp/d_labitems.csv.gz": ["itemid", "label", "fluid", "category"],
    "mimic-iv/icu/icustays.csv.gz": [
        "subject_id",
        "hadm_id",
        "stay_id",
        "first_careunit",
        "last_careunit",
        "intime",
        "outtime",
        "los",
    ],
    "mimic-iv/icu/chartevents.csv.gz": [
        "subject_id",
        "hadm_id",
        "stay_id",
        "caregiver_id",
        "charttime",
        "storetime",
        "itemid",
        "value",
        "valuenum",
        "valueuom",
        "warning",
    ],
    "mimic-iv/icu/d_items.csv.gz": [
        "itemid",
        "label",
        "abbreviation",
        "linksto",
        "category",
        "unitname",
        "param_type",
        "lownormalvalue",
        "highnormalvalue",
    ],
    "mimic-cxr-jpg/mimic-cxr-2.0.0-metadata.csv.gz": [
        "dicom_id",
        "subject_id",
        "study_id",
        "PerformedProcedureStepDescription",
        "ViewPosition",
        "Rows",
        "Columns",
        "StudyDate",
        "StudyTime",
        "ProcedureCodeSequence_CodeMeaning",
        "ViewCodeSequence_CodeMeaning",
        "PatientOrientationCodeSequence_CodeMeaning",
    ],
    "mimic-cxr-jpg/mimic-cxr-2.0.0-chexpert.csv.gz": ["subject_id", "study_id", *FINDINGS],
    "mimic-cxr-jpg/mimic-cxr-2.0.0-negbio.csv.gz": ["subject_id", "study_id", *FINDINGS],
    "mimic-cxr-jpg/mimic-cxr-2.0.0-split.csv.gz": ["dicom_id", "study_id", "subject_id", "split"],
}
TIME_COLUMNS: dict[str, list[str]] = {
    "mimic-iv/hosp/admissions.csv.gz": [
        "admittime",
        "dischtime",
        "deathtime",
        "edregtime",
        "edouttime",
    ],
    "mimic-iv/icu/icustays.csv.gz": ["intime", "outtime"],
    "mimic-iv/icu/chartevents.csv.gz": ["charttime", "storetime"],
    "mimic-iv/hosp/labevents.csv.gz": ["charttime", "storetime"],
}
ID_PATTERNS: dict[str, str] = {
    "subject_id": r"1\d{7}",
    "hadm_id": r"2\d{7}",
    "stay_id": r"3\d{7}",
    "study_id": r"5\d{7}",
}
TIME_RE = re.compile(r"^(2[12]\d\d)-\d\d-\d\d \d\d:\d\d:\d\d$")


@pytest.mark.parametrize("relpath", sorted(EXPECTED_COLUMNS))
def test_every_file_has_the_physionet_columns_in_order(demo_root: Path, relpath: str) -> None:
    assert header(demo_root / relpath) == EXPECTED_COLUMNS[relpath]


def test_no_other_csv_files(demo_root: Path) -> None:
    written = {str(p.relative_to(demo_root)) for p in demo_root.glob("mimic-*/**/*.csv.gz")}
    assert written == set(EXPECTED_COLUMNS)


@pytest.mark.parametrize(("relpath", "columns"), sorted(TIME_COLUMNS.items()))
def test_times_are_formatted_and_in_2100_2200(
    raw: RawExport, relpath: str, columns: list[str]
) -> None:
    table = raw.table(relpath)
    for column in columns:
        values = pa.array(table[column].to_numpy(dtype=object), type=pa.string())
        filled = values.filter(pc.not_equal(values, ""))
        assert len(filled) > 0, column
        assert pc.all(pc.match_substring_regex(filled, TIME_RE.pattern)).as_py(), column
        parsed = pc.strptime(filled, format="%Y-%m-%d %H:%M:%S", unit="s")
        years = pc.year(parsed)
        assert pc.min(years).as_py() >= 2100 and pc.max(years).as_py() <= 2200, column


def test_ids_have_the_mimic_formats(raw: RawExport) -> None:
    for relpath in EXPECTED_COLUMNS:
        table = raw.table(relpath)
        for column, pattern in ID_PATTERNS.items():
            if column not in table:
                continue
            values = table[column]
            filled = values[values != ""]
            assert filled.str.fullmatch(pattern).all(), (relpath, column)
    dicom = raw.table("mimic-cxr-jpg/mimic-cxr-2.0.0-metadata.csv.gz")["dicom_id"]
    assert dicom.str.fullmatch(r"[0-9a-f]{8}(-[0-9a-f]{8}){4}").all()
    assert dicom.str.len().eq(44).all()
    assert dicom.is_unique


def test_pandas_default_read_types(demo_root: Path) -> None:
    iv = demo_root / "mimic-iv"
    stays = pd.read_csv(iv / "icu/icustays.csv.gz")
    for column in ("subject_id", "hadm_id", "stay_id"):
        assert pd.api.types.is_integer_dtype(stays[column]), column
    assert pd.api.types.is_float_dtype(stays["los"])
    intime = pd.to_datetime(stays["intime"], format="%Y-%m-%d %H:%M:%S")
    outtime = pd.to_datetime(stays["outtime"], format="%Y-%m-%d %H:%M:%S")
    los_days = (outtime - intime).dt.total_seconds() / 86400
    np.testing.assert_allclose(stays["los"], los_days, rtol=0, atol=1e-9)
    patients = pd.read_csv(iv / "hosp/patients.csv.gz")
    assert pd.api.types.is_integer_dtype(patients["anchor_age"])
    assert patients["anchor_year_group"].str.fullmatch(r"20\d\d - 20\d\d").all()
    dod = patients["dod"].dropna()
    assert len(dod) > 0
    assert dod.str.fullmatch(r"2[12]\d\d-\d\d-\d\d").all()  # a date, as in MIMIC-IV v2+
    labs = pd.read_csv(iv / "hosp/labevents.csv.gz", usecols=["labevent_id", "hadm_id"])
    assert pd.api.types.is_integer_dtype(labs["labevent_id"])
    assert labs["hadm_id"].isna().any()  # some labs have no admission


def test_study_date_and_time_formats(raw: RawExport, demo_root: Path) -> None:
    meta = raw.table("mimic-cxr-jpg/mimic-cxr-2.0.0-metadata.csv.gz")
    assert meta["StudyDate"].str.fullmatch(r"2[12]\d\d[01]\d[0-3]\d").all()
    assert meta["StudyTime"].str.fullmatch(r"\d{1,6}\.\d{1,3}").all()
    whole = meta["StudyTime"].str.split(".").str[0]
    early = whole.str.len() < 6
    assert early.any(), "no study before 10:00 (StudyTime without leading zeros)"
    padded = whole.str.zfill(6)
    hours, minutes, seconds = (padded.str[i : i + 2].astype(int) for i in (0, 2, 4))
    assert hours.lt(24).all() and minutes.lt(60).all() and seconds.lt(60).all()
    assert hours[early].lt(10).all()
    typed = pd.read_csv(demo_root / "mimic-cxr-jpg/mimic-cxr-2.0.0-metadata.csv.gz")
    assert pd.api.types.is_integer_dtype(typed["StudyDate"])
    assert pd.api.types.is_float_dtype(typed["StudyTime"])
    assert pd.api.types.is_integer_dtype(typed["Rows"])


def test_icd_codes_keep_leading_zeros_when_read_as_text(demo_root: Path) -> None:
    path = demo_root / "mimic-iv/hosp/diagnoses_icd.csv.gz"
    codes = pd.read_csv(path, dtype={"icd_code": str})
    nine = codes.loc[codes["icd_version"] == 9, "icd_code"]
    assert nine.str.startswith("0").any()
    assert {"0389", "4019"} <= set(nine)
    assert nine.str.startswith("V").any() and nine.str.startswith("E").any()
    assert "I10" in set(codes.loc[codes["icd_version"] == 10, "icd_code"])
    # The trap the pipeline must avoid: a numeric read loses the leading zero.
    as_numbers = pd.to_numeric(nine[nine.str.fullmatch(r"\d+")])
    assert 389 in set(as_numbers) and "389" not in set(nine)


def test_gcs_none_survives_only_without_default_na(demo_root: Path) -> None:
    path = demo_root / "mimic-iv/icu/chartevents.csv.gz"
    columns = ["itemid", "value", "valuenum"]
    rows = 300_000  # the first few hundred stays are plenty
    naive = pd.read_csv(path, usecols=columns, nrows=rows)
    careful = pd.read_csv(path, usecols=columns, nrows=rows, keep_default_na=False, na_values=[""])
    eye_careful = careful[careful["itemid"] == 220739]
    eye_naive = naive[naive["itemid"] == 220739]
    n_none = int((eye_careful["value"] == "None").sum())
    assert n_none > 0
    assert (eye_careful.loc[eye_careful["value"] == "None", "valuenum"] == 1).all()
    assert int(eye_naive["value"].isna().sum()) == n_none  # pandas' default turns it into NaN


def test_chart_items_and_units_are_the_real_ones(raw: RawExport) -> None:
    chart = raw.table("mimic-iv/icu/chartevents.csv.gz")
    items = chart["itemid"].astype(int)
    present = set(items)
    assert set(VARIABLE_ITEM_UNITS) <= present, set(VARIABLE_ITEM_UNITS) - present
    variable = chart[items.isin(VARIABLE_ITEM_UNITS)]
    expected = variable["itemid"].astype(int).map(VARIABLE_ITEM_UNITS)
    assert (variable["valueuom"] == expected).all()
    distractors = present - set(VARIABLE_ITEM_UNITS)
    assert len(distractors) >= 20
    share = 1 - len(variable) / len(chart)
    assert 0.1 < share < 0.2  # the session export asks for 15 % distractor rows
    gcs = {
        220739: {"Spontaneously": 4, "To Speech": 3, "To Pain": 2, "None": 1},
        223900: {
            "Oriented": 5,
            "Confused": 4,
            "Inappropriate Words": 3,
            "Incomprehensible sounds": 2,
            "No Response": 1,
            "No Response-ETT": 1,
        },
    }
    for itemid, scores in gcs.items():
        rows = chart[items == itemid]
        mapped = rows["value"].map(scores)
        assert mapped.notna().all()
        assert set(rows["value"]) == set(scores)
        assert (mapped == rows["valuenum"].astype(float)).all()
    cap = chart[items.isin([223951, 224308])]
    assert set(cap["value"]) == {"Normal <3 Seconds", "Abnormal >3 Seconds"}
    assert (cap["valuenum"] == "").all()


def test_lab_items_are_the_real_ones(raw: RawExport) -> None:
    labs = raw.table("mimic-iv/hosp/labevents.csv.gz")
    items = set(labs["itemid"].astype(int))
    assert {50809, 50931, 50817, 50820} <= items
    assert {51478, 51491} <= items  # urine glucose / pH: look-alikes that must be left out
    units = labs.groupby("itemid")["valueuom"].agg(set)
    assert units["50931"] == {"mg/dL"} and units["50820"] == {"units"}


def test_dictionaries_cover_every_emitted_id(raw: RawExport) -> None:
    chart = raw.table("mimic-iv/icu/chartevents.csv.gz")
    d_items = raw.table("mimic-iv/icu/d_items.csv.gz")
    assert set(chart["itemid"]) <= set(d_items["itemid"])
    assert (d_items["linksto"] == "chartevents").all()
    labs = raw.table("mimic-iv/hosp/labevents.csv.gz")
    assert set(labs["itemid"]) <= set(raw.table("mimic-iv/hosp/d_labitems.csv.gz")["itemid"])
    diagnoses = raw.table("mimic-iv/hosp/diagnoses_icd.csv.gz")
    titles = raw.table("mimic-iv/hosp/d_icd_diagnoses.csv.gz")
    emitted = set(zip(diagnoses["icd_code"], diagnoses["icd_version"], strict=True))
    known = set(zip(titles["icd_code"], titles["icd_version"], strict=True))
    assert emitted <= known
    assert titles["long_title"].str.contains(",").any()  # quoted fields survive


def test_image_files_follow_the_layout_and_decode(raw: RawExport) -> None:
    meta = raw.table("mimic-cxr-jpg/mimic-cxr-2.0.0-metadata.csv.gz")
    missing, unreadable = 0, 0
    for row in meta.itertuples(index=False):
        path = raw.cxr / "files" / f"p{row.subject_id[:2]}" / f"p{row.subject_id}"
        path = path / f"s{row.study_id}" / f"{row.dicom_id}.jpg"
        if not path.exists():
            missing += 1
            continue
        try:
            with Image.open(path) as image:
                image.load()
                assert image.mode == "L"
                assert image.size == (int(row.Columns), int(row.Rows))
        except OSError:
            unreadable += 1
    defects = raw.manifest["defects"]["mimic_cxr"]
    assert missing == defects["images_missing"] > 0
    assert unreadable == defects["images_truncated"] + defects["images_empty"] > 0
    jpgs = list((raw.cxr / "files").rglob("*.jpg"))
    assert len(jpgs) == len(meta) - missing
    assert all(re.fullmatch(r"p1\d", p.parents[2].name) for p in jpgs)


def test_views_and_metadata_text(raw: RawExport) -> None:
    meta = raw.table("mimic-cxr-jpg/mimic-cxr-2.0.0-metadata.csv.gz")
    assert set(meta["ViewPosition"]) == {"AP", "PA", "LATERAL", "LL", ""}
    ap = meta[meta["ViewPosition"] == "AP"]
    assert (ap["ViewCodeSequence_CodeMeaning"] == "antero-posterior").all()
    sizes = meta[["Rows", "Columns"]].astype(int)
    assert sizes["Rows"].between(55, 72).all() and sizes["Columns"].between(70, 90).all()


def test_label_files_hold_mimic_cxr_values(raw: RawExport) -> None:
    meta = raw.table("mimic-cxr-jpg/mimic-cxr-2.0.0-metadata.csv.gz")
    for name in ("chexpert", "negbio"):
        labels = raw.table(f"mimic-cxr-jpg/mimic-cxr-2.0.0-{name}.csv.gz")
        cells = labels[FINDINGS]
        assert set(np.unique(cells.to_numpy())) == {"1.0", "0.0", "-1.0", ""}
        empty = (cells == "").to_numpy().mean()
        uncertain = (cells == "-1.0").to_numpy().mean()
        assert 0.2 < empty < 0.45 and 0.02 < uncertain < 0.1
        assert labels["study_id"].is_unique
        assert set(labels["study_id"]) < set(meta["study_id"])
    chexpert = raw.table("mimic-cxr-jpg/mimic-cxr-2.0.0-chexpert.csv.gz")
    pathology = [f for f in FINDINGS if f not in {"No Finding", "Support Devices"}]
    mentioned = chexpert[pathology].isin(["1.0", "-1.0"]).any(axis=1)
    no_finding = chexpert["No Finding"] == "1.0"
    assert no_finding.any()
    assert not (no_finding & mentioned).any()


def test_split_file_lists_every_image_once(raw: RawExport) -> None:
    meta = raw.table("mimic-cxr-jpg/mimic-cxr-2.0.0-metadata.csv.gz")
    split = raw.table("mimic-cxr-jpg/mimic-cxr-2.0.0-split.csv.gz")
    assert split["dicom_id"].tolist() == meta["dicom_id"].tolist()
    assert set(split["split"]) == {"train", "validate", "test"}
    per_subject = split.groupby("subject_id")["split"].nunique()
    assert (per_subject == 1).all()
