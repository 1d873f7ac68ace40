"""The cohort looks like MIMIC: admissions, stays, transfers, deaths, charting, X-ray studies."""

from __future__ import annotations

import numpy as np
import pandas as pd
from demo_export import RawExport, cohort_stays, parse_times, study_times


def test_admissions_and_stays_per_patient(raw: RawExport) -> None:
    adm = raw.table("mimic-iv/hosp/admissions.csv.gz")
    per_patient = adm.groupby("subject_id").size()
    assert per_patient.between(1, 3).all() and (per_patient > 1).mean() > 0.15
    stays = raw.table("mimic-iv/icu/icustays.csv.gz")
    per_adm = stays.groupby("hadm_id").size()
    assert set(per_adm) == {1, 2} and 0.03 < (per_adm == 2).mean() < 0.2
    assert len(set(adm["hadm_id"]) - set(stays["hadm_id"])) > 0  # admissions without ICU
    assert set(stays["hadm_id"]) <= set(adm["hadm_id"])


def test_transfers_short_stays_children_and_lengths(raw: RawExport) -> None:
    stays = parse_times(raw.table("mimic-iv/icu/icustays.csv.gz"), "intime", "outtime")
    transfer = stays["first_careunit"] != stays["last_careunit"]
    assert 0.05 < transfer.mean() < 0.15
    assert stays["first_careunit"].str.contains(r"Intensive Care Unit \(MICU\)").any()
    hours = (stays["outtime"] - stays["intime"]).dt.total_seconds() / 3600
    assert 0.2 < (hours < 48).mean() < 0.4
    assert hours.min() >= 12 and hours.max() <= 30 * 24 + 1  # LOS_MIN_H, LOS_MAX_H (+ seconds)
    patients = raw.table("mimic-iv/hosp/patients.csv.gz").set_index("subject_id")
    age = (
        stays["subject_id"].map(patients["anchor_age"]).astype(int)
        + stays["intime"].dt.year
        - stays["subject_id"].map(patients["anchor_year"]).astype(int)
    )
    assert 0 < (age < 18).sum() < 0.06 * len(stays)
    adm = parse_times(
        raw.table("mimic-iv/hosp/admissions.csv.gz"), "admittime", "dischtime", "deathtime"
    )
    # an in-hospital death may be discharged at midnight of the day of death (as in real
    # MIMIC-IV): then the discharge may come before the ICU outtime, the death never does
    adm["end"] = adm["deathtime"].fillna(adm["dischtime"])
    joined = stays.merge(adm[["hadm_id", "admittime", "end"]], on="hadm_id")
    assert (joined["intime"] >= joined["admittime"]).all()
    assert (joined["outtime"] <= joined["end"]).all()


def test_death_fields_are_consistent(raw: RawExport) -> None:
    adm = parse_times(
        raw.table("mimic-iv/hosp/admissions.csv.gz"), "admittime", "dischtime", "deathtime"
    )
    died = adm["hospital_expire_flag"] == "1"
    assert died.any() and (~died).any()
    assert (adm["deathtime"].notna() == died).all()
    dead = adm[died]
    assert (dead["deathtime"] >= dead["admittime"]).all()
    # dischtime is the death itself, or (as often in real MIMIC-IV) midnight of its day
    midnight = dead["dischtime"] == dead["deathtime"].dt.normalize()
    assert ((dead["deathtime"] == dead["dischtime"]) | midnight).all()
    assert 0.25 < (midnight & (dead["dischtime"] < dead["deathtime"])).mean() < 0.55
    assert (dead["discharge_location"] == "DIED").all()
    # No admission after the one a patient died in; dod agrees.
    last_adm = adm.groupby("subject_id")["admittime"].max()
    assert (dead["admittime"].to_numpy() == dead["subject_id"].map(last_adm).to_numpy()).all()
    patients = raw.table("mimic-iv/hosp/patients.csv.gz").set_index("subject_id")
    dod = pd.to_datetime(patients["dod"].replace("", None), format="%Y-%m-%d")
    assert (dod[dead["subject_id"]].to_numpy() == dead["deathtime"].dt.normalize().to_numpy()).all()
    last_disch = adm.groupby("subject_id")["dischtime"].max()
    known = dod.dropna()
    assert (known >= last_disch[known.index].dt.normalize()).all()
    assert len(known) > died.sum()  # some deaths after discharge


def test_ed_times_bracket_emergency_admissions(raw: RawExport) -> None:
    adm = parse_times(
        raw.table("mimic-iv/hosp/admissions.csv.gz"), "admittime", "edregtime", "edouttime"
    )
    ed = adm[adm["edregtime"].notna()]
    assert len(ed) > 0
    assert (ed["edregtime"] < ed["admittime"]).all()
    assert (ed["edouttime"] > ed["edregtime"]).all()


def test_vitals_are_charted_about_hourly_and_inside_stays(raw: RawExport) -> None:
    chart = raw.table("mimic-iv/icu/chartevents.csv.gz")
    stays = parse_times(raw.table("mimic-iv/icu/icustays.csv.gz"), "intime", "outtime")
    hours = ((stays["outtime"] - stays["intime"]).dt.total_seconds() / 3600).sum()
    hr = chart[chart["itemid"] == "220045"]
    assert 0.85 < len(hr) / hours < 1.0
    temp = chart[chart["itemid"].isin(["223761", "223762"])]
    assert 0.2 < len(temp) / hours < 0.3
    minutes = hr["charttime"].str[14:16].astype(int)
    assert minutes.nunique() > 40  # charted irregularly within the hour
    assert (hr["charttime"].str[17:] == "00").all()


def test_studies_inside_and_outside_stays(raw: RawExport) -> None:
    meta = raw.table("mimic-cxr-jpg/mimic-cxr-2.0.0-metadata.csv.gz").copy()
    meta["when"] = study_times(meta)
    per_subject = meta.groupby("subject_id")["study_id"].nunique()
    assert per_subject.max() <= 6
    stays = parse_times(raw.table("mimic-iv/icu/icustays.csv.gz"), "intime", "outtime")
    pairs = meta.merge(stays[["subject_id", "stay_id", "intime", "outtime"]], on="subject_id")
    inside = pairs[(pairs["when"] >= pairs["intime"]) & (pairs["when"] <= pairs["outtime"])]
    share_inside = meta["dicom_id"].isin(inside["dicom_id"]).mean()
    assert 0.2 < share_inside < 0.7
    assert (inside["ViewPosition"] == "AP").mean() > 0.7
    outside = meta[~meta["dicom_id"].isin(inside["dicom_id"])]
    assert {"PA", "LATERAL"} <= set(outside["ViewPosition"])


def test_a_third_of_ihm_stays_have_an_ap_image_in_the_first_48h(raw: RawExport) -> None:
    stays = cohort_stays(raw)
    stays = stays[(stays["outtime"] - stays["intime"]) >= pd.Timedelta(hours=48)]
    meta = raw.table("mimic-cxr-jpg/mimic-cxr-2.0.0-metadata.csv.gz").copy()
    meta = meta[meta["ViewPosition"] == "AP"].assign(when=study_times)
    pairs = stays.merge(meta[["subject_id", "when"]], on="subject_id")
    window = (pairs["when"] >= pairs["intime"]) & (
        pairs["when"] <= pairs["intime"] + pd.Timedelta(hours=48)
    )
    paired = stays["stay_id"].isin(pairs.loc[window, "stay_id"])
    assert 0.2 < paired.mean() < 0.5
    signal = raw.manifest["signal"]
    assert signal["ihm_eligible_stays"] == len(stays)
    assert np.isclose(signal["paired_fraction_ihm_eligible"], paired.mean())
