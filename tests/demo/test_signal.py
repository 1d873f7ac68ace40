"""Both modalities carry learnable signal, and together more than either alone.

Features are computed here from the raw files (``demo_signal.py``); the truth tables are used
only for the labels' true probabilities (the ceiling) and never as features.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from demo_export import RawExport, cohort_stays, study_times
from demo_signal import cross_fit_auroc, ehr_summaries, image_pixels, read_events
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score

FINDINGS = ("Cardiomegaly", "Lung Opacity", "Pleural Effusion", "Support Devices")


@pytest.fixture(scope="module")
def stays(raw: RawExport) -> pd.DataFrame:
    """Cohort stays with the mortality label from admissions.hospital_expire_flag."""
    cohort = cohort_stays(raw)
    adm = raw.table("mimic-iv/hosp/admissions.csv.gz").set_index("hadm_id")
    y = cohort["hadm_id"].map(adm["hospital_expire_flag"]).astype(int)
    truth = raw.truth("stays").set_index("stay_id")
    out = cohort.assign(stay_id=cohort["stay_id"].astype(int), y=y.to_numpy())
    for key in ("p_death", "p_death_ehr_only", "p_death_cxr_only"):
        out[key] = out["stay_id"].map(truth[key]).to_numpy()
    return out.reset_index(drop=True)


@pytest.fixture(scope="module")
def ehr_features(raw: RawExport, stays: pd.DataFrame) -> np.ndarray:
    events = read_events(raw.iv / "icu/chartevents.csv.gz")
    return ehr_summaries(events, stays[["stay_id", "intime"]]).to_numpy()


@pytest.fixture(scope="module")
def frontal(raw: RawExport) -> tuple[pd.DataFrame, np.ndarray]:
    """Readable AP/PA images with their stay (if taken inside one) and 16x16 pixels."""
    meta = raw.table("mimic-cxr-jpg/mimic-cxr-2.0.0-metadata.csv.gz")
    meta = meta[meta["ViewPosition"].isin(["AP", "PA"])].reset_index(drop=True)
    pixels, ok = image_pixels(raw.cxr, meta)
    meta, pixels = meta[ok].reset_index(drop=True), pixels[ok]
    meta["when"] = study_times(meta)
    icu = raw.table("mimic-iv/icu/icustays.csv.gz")
    icu = icu.assign(intime=pd.to_datetime(icu["intime"]), outtime=pd.to_datetime(icu["outtime"]))
    pairs = meta[["dicom_id", "subject_id", "when"]].merge(
        icu[["subject_id", "stay_id", "intime", "outtime"]], on="subject_id"
    )
    pairs = pairs[(pairs["when"] >= pairs["intime"]) & (pairs["when"] <= pairs["outtime"])]
    stay = meta["dicom_id"].map(pairs.set_index("dicom_id")["stay_id"])
    meta["stay_id"] = pd.to_numeric(stay).astype("Int64")
    return meta, pixels


@pytest.fixture(scope="module")
def finding_scores(raw: RawExport, frontal: tuple[pd.DataFrame, np.ndarray]) -> np.ndarray:
    """Per frontal image, 4 finding scores from models fit on images outside ICU stays only."""
    meta, pixels = frontal
    labels = meta[["study_id"]].merge(
        raw.table("mimic-cxr-jpg/mimic-cxr-2.0.0-chexpert.csv.gz"), on="study_id", how="left"
    )
    outside = meta["stay_id"].isna().to_numpy()
    scores = np.zeros((len(meta), len(FINDINGS)))
    for k, finding in enumerate(FINDINGS):
        y = labels[finding].fillna("").to_numpy()
        train = outside & np.isin(y, ["1.0", "0.0"])
        model = LogisticRegression(C=0.05, solver="liblinear").fit(pixels[train], y[train] == "1.0")
        scores[:, k] = model.decision_function(pixels)
    return scores


def test_truth_ceilings(stays: pd.DataFrame) -> None:
    y = stays["y"].to_numpy()
    assert 0.08 < y.mean() < 0.16
    both = roc_auc_score(y, stays["p_death"])
    ehr = roc_auc_score(y, stays["p_death_ehr_only"])
    cxr = roc_auc_score(y, stays["p_death_cxr_only"])
    assert both > 0.8 and 0.68 < ehr < both - 0.03 and 0.62 < cxr < both - 0.03


def test_ehr_summaries_predict_mortality(stays: pd.DataFrame, ehr_features: np.ndarray) -> None:
    auroc = cross_fit_auroc(ehr_features, stays["y"].to_numpy())
    assert auroc > 0.65
    assert auroc < roc_auc_score(stays["y"], stays["p_death"]) - 0.05


def test_pixels_predict_findings_on_unseen_in_stay_images(
    raw: RawExport, frontal: tuple[pd.DataFrame, np.ndarray], finding_scores: np.ndarray
) -> None:
    meta, _ = frontal
    labels = meta[["study_id"]].merge(
        raw.table("mimic-cxr-jpg/mimic-cxr-2.0.0-chexpert.csv.gz"), on="study_id", how="left"
    )
    inside = meta["stay_id"].notna().to_numpy()
    for k, finding in enumerate(FINDINGS):
        y = labels[finding].fillna("").to_numpy()
        test = inside & np.isin(y, ["1.0", "0.0"])
        auroc = roc_auc_score(y[test] == "1.0", finding_scores[test, k])
        assert auroc > (0.75 if finding == "Cardiomegaly" else 0.65), finding


def test_images_add_to_the_ehr_for_mortality(
    stays: pd.DataFrame,
    ehr_features: np.ndarray,
    frontal: tuple[pd.DataFrame, np.ndarray],
    finding_scores: np.ndarray,
) -> None:
    meta, _ = frontal
    ap = ((meta["ViewPosition"] == "AP") & meta["stay_id"].notna()).to_numpy()
    per_stay = pd.DataFrame(finding_scores[ap]).groupby(meta.loc[ap, "stay_id"].to_numpy()).mean()
    with_image = stays["stay_id"].isin(per_stay.index).to_numpy()
    assert with_image.mean() > 0.3
    y = stays.loc[with_image, "y"].to_numpy()
    x_img = per_stay.loc[stays.loc[with_image, "stay_id"]].to_numpy()
    x_ehr = ehr_features[with_image]
    image_only = cross_fit_auroc(x_img, y)
    ehr_only = cross_fit_auroc(x_ehr, y)
    both = cross_fit_auroc(np.c_[x_ehr, x_img], y)
    assert image_only > 0.6
    assert both >= max(image_only, ehr_only)
    ceiling = roc_auc_score(y, stays.loc[with_image, "p_death"])
    assert ceiling > max(image_only, ehr_only) + 0.05
    assert ceiling >= both
