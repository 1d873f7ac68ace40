"""manifest.json counts exactly what the files hold; every defect is recounted from the files."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from demo_export import VARIABLE_ITEM_UNITS, RawExport

from mindkd.demo.chartevents import SLOW_ITEMS

TEXT_ITEMS = {223951, 224308, 220739, 223901, 223900}
NUMERIC_CHART_ITEMS = set(VARIABLE_ITEM_UNITS) - TEXT_ITEMS
VARIABLE_LAB_ITEMS = {50809, 50931, 50817, 50820}
FILE_COUNTS = {
    "rows_patients": "mimic-iv/hosp/patients.csv.gz",
    "rows_admissions": "mimic-iv/hosp/admissions.csv.gz",
    "rows_diagnoses_icd": "mimic-iv/hosp/diagnoses_icd.csv.gz",
    "rows_d_icd_diagnoses": "mimic-iv/hosp/d_icd_diagnoses.csv.gz",
    "rows_labevents": "mimic-iv/hosp/labevents.csv.gz",
    "rows_d_labitems": "mimic-iv/hosp/d_labitems.csv.gz",
    "rows_icustays": "mimic-iv/icu/icustays.csv.gz",
    "rows_chartevents": "mimic-iv/icu/chartevents.csv.gz",
    "rows_d_items": "mimic-iv/icu/d_items.csv.gz",
    "rows_metadata": "mimic-cxr-jpg/mimic-cxr-2.0.0-metadata.csv.gz",
    "rows_chexpert": "mimic-cxr-jpg/mimic-cxr-2.0.0-chexpert.csv.gz",
    "rows_negbio": "mimic-cxr-jpg/mimic-cxr-2.0.0-negbio.csv.gz",
    "rows_split": "mimic-cxr-jpg/mimic-cxr-2.0.0-split.csv.gz",
}


def _not_a_number(values: pd.Series) -> pd.Series:
    return pd.to_numeric(values, errors="coerce").isna()


@pytest.mark.parametrize(("key", "relpath"), sorted(FILE_COUNTS.items()))
def test_row_counts(raw: RawExport, key: str, relpath: str) -> None:
    assert raw.manifest["counts"][key] == len(raw.table(relpath)) > 0


def test_chartevents_defects_recounted(raw: RawExport) -> None:
    chart = raw.table("mimic-iv/icu/chartevents.csv.gz")
    item = chart["itemid"].astype(int)
    num = pd.to_numeric(chart["valuenum"], errors="coerce")
    numeric_item = item.isin(NUMERIC_CHART_ITEMS)
    stays = raw.table("mimic-iv/icu/icustays.csv.gz").set_index("stay_id")
    has_stay = chart["stay_id"] != ""
    intime = chart["stay_id"].map(stays["intime"]).where(has_stay, "")
    outtime = chart["stay_id"].map(stays["outtime"]).where(has_stay, "")
    # Same text format on both sides: string order is time order.
    # variables' rows (distractors copy the times of clean rows, early height/weight too)
    before = has_stay & (chart["charttime"] < intime) & item.isin(VARIABLE_ITEM_UNITS)
    slow = item.isin(SLOW_ITEMS)  # height / weight before intime: a natural quirk, no defect
    recount = {
        "text_in_numeric": int((numeric_item & num.isna() & _not_a_number(chart["value"])).sum()),
        "impossible_heart_rate": int(((item == 220045) & (num == 1000)).sum()),
        "impossible_sbp": int(((item == 220179) & (num < 0)).sum()),
        "impossible_temperature": int(((item == 223762) & (num == 200)).sum()),
        "impossible_glucose": int(((item == 220621) & (num == 99999)).sum()),
        "duplicate": int(chart.duplicated().sum()),
        "outside_before_intime": int((before & ~slow).sum()),
        "outside_after_outtime": int((has_stay & (chart["charttime"] > outtime)).sum()),
        "missing_stay_id": int((chart["stay_id"] == "").sum()),
        "missing_subject_id": int((chart["subject_id"] == "").sum()),
    }
    defects = raw.manifest["defects"]["chartevents"]
    assert recount == defects
    assert all(v > 0 for v in defects.values())
    natural = raw.manifest["natural"]["chartevents"]
    assert natural["gcs_eye_none"] == int(((item == 220739) & (chart["value"] == "None")).sum())
    assert natural["distractor_rows"] == int((~item.isin(VARIABLE_ITEM_UNITS)).sum())
    assert natural["temperature_fahrenheit"] == int((item == 223761).sum())
    assert natural["weight_lbs"] == int((item == 226531).sum())
    assert natural["height_inches"] == int((item == 226707).sum())
    assert natural["fio2_as_fraction"] == int(((item == 223835) & (num <= 1)).sum()) > 0
    assert natural["spo2_as_fraction"] == int(((item == 220277) & (num <= 1)).sum()) > 0
    assert natural["slow_before_intime"] == int((before & slow).sum()) > 0
    fahrenheit = (item == 223762) & num.between(79, 113)  # written rows: duplicates included
    assert 0 < natural["fahrenheit_in_celsius_item"] <= int(fahrenheit.sum())


def _lab_placement(labs: pd.DataFrame, stays: pd.DataFrame) -> pd.Series:
    """in_stay / before_intime / after_outtime / hadm_without_stay / no_hadm per lab row."""
    rows = labs[["subject_id", "hadm_id", "charttime"]].reset_index()
    pairs = rows.merge(stays[["subject_id", "intime", "outtime"]], on="subject_id")
    inside = pairs[
        (pairs["charttime"] >= pairs["intime"]) & (pairs["charttime"] <= pairs["outtime"])
    ]
    in_stay = rows["index"].isin(inside["index"])
    by_hadm = stays.groupby("hadm_id").agg(first=("intime", "min"), last=("outtime", "max"))
    first = rows["hadm_id"].map(by_hadm["first"])
    last = rows["hadm_id"].map(by_hadm["last"])
    place = np.select(
        [
            in_stay,
            rows["hadm_id"] == "",
            first.isna(),
            rows["charttime"] < first,
            rows["charttime"] > last,
        ],
        ["in_stay", "no_hadm", "hadm_without_stay", "before_intime", "after_outtime"],
        default="between_stays",
    )
    return pd.Series(place, index=labs.index)


def test_labevents_defects_and_placement_recounted(raw: RawExport) -> None:
    labs = raw.table("mimic-iv/hosp/labevents.csv.gz")
    stays = raw.table("mimic-iv/icu/icustays.csv.gz")
    item = labs["itemid"].astype(int)
    num = pd.to_numeric(labs["valuenum"], errors="coerce")
    variable = labs[item.isin(VARIABLE_LAB_ITEMS)]
    place = _lab_placement(variable, stays)
    recount = {
        "text_in_numeric": int(
            (num.loc[variable.index].isna() & _not_a_number(variable["value"])).sum()
        ),
        "impossible_ph": int(((item == 50820) & (num > 10)).sum()),
        "impossible_spo2": int(((item == 50817) & (num > 150)).sum()),
        "duplicate": int(labs.duplicated().sum()),
        "empty_hadm_id": int(((variable["hadm_id"] == "") & (place == "in_stay")).sum()),
    }
    assert recount == raw.manifest["defects"]["labevents"]
    assert all(v > 0 for v in recount.values())
    expected = raw.manifest["natural"]["labevents_placement"]
    assert place.value_counts().to_dict() == {k: v for k, v in expected.items() if v}
    assert raw.manifest["counts"]["labevents_empty_hadm_id_rows"] == int(
        (labs["hadm_id"] == "").sum()
    )
    assert labs["labevent_id"].nunique() == len(labs) - recount["duplicate"]


def test_diagnosis_code_counts(raw: RawExport) -> None:
    dx = raw.table("mimic-iv/hosp/diagnoses_icd.csv.gz")
    code, nine = dx["icd_code"], dx["icd_version"] == "9"
    recount = {
        "rows": len(dx),
        "icd9_rows": int(nine.sum()),
        "icd10_rows": int((dx["icd_version"] == "10").sum()),
        "all_digit_codes": int(code.str.fullmatch(r"\d+").sum()),
        "leading_zero_codes": int(code.str.startswith("0").sum()),
        "icd9_v_codes": int((nine & code.str.startswith("V")).sum()),
        "icd9_e_codes": int((nine & code.str.startswith("E")).sum()),
    }
    assert recount == raw.manifest["defects"]["diagnoses_icd"]
    assert min(recount.values()) > 0
    assert (
        dx.groupby("hadm_id")["seq_num"].apply(
            lambda s: sorted(s.astype(int)) == list(range(1, len(s) + 1))
        )
    ).all()


def test_cxr_counts(raw: RawExport) -> None:
    meta = raw.table("mimic-cxr-jpg/mimic-cxr-2.0.0-metadata.csv.gz")
    chexpert = raw.table("mimic-cxr-jpg/mimic-cxr-2.0.0-chexpert.csv.gz")
    negbio = raw.table("mimic-cxr-jpg/mimic-cxr-2.0.0-negbio.csv.gz")
    studies = set(meta["study_id"])
    counts, defects = raw.manifest["counts"], raw.manifest["defects"]["mimic_cxr"]
    assert counts["cxr_studies"] == len(studies)
    assert counts["cxr_images"] == len(meta)
    assert defects["studies_without_labels"] == len(studies - set(chexpert["study_id"])) > 0
    assert set(chexpert["study_id"]) == set(negbio["study_id"])
    files = list((raw.cxr / "files").rglob("*.jpg"))
    assert counts["image_files_written"] == len(files) == len(meta) - defects["images_missing"]
    assert sum(p.stat().st_size == 0 for p in files) == defects["images_empty"]


def test_patient_counts(raw: RawExport) -> None:
    counts = raw.manifest["counts"]
    patients = raw.table("mimic-iv/hosp/patients.csv.gz")
    meta = raw.table("mimic-cxr-jpg/mimic-cxr-2.0.0-metadata.csv.gz")
    cxr_only = set(meta["subject_id"]) - set(patients["subject_id"])
    assert counts["patients_mimic_iv"] == len(patients)
    assert counts["patients_cxr_only"] == len(cxr_only) > 0
    assert counts["patients_total"] == raw.manifest["config"]["patients"]
    stays = raw.table("mimic-iv/icu/icustays.csv.gz")
    assert counts["patients_with_icu_stay"] == stays["subject_id"].nunique()
