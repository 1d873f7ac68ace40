"""MIMIC-CXR-JPG studies of one block: when, which views, which latent, which labels.

Studies per patient (at most 6):

- in an ICU stay's first 48 h, for about a third of the stays (``EARLY_STUDY_SHARE``): portable AP;
- later in long stays: portable AP;
- on the ward before or after the ICU, and in admissions without ICU stay: mostly PA + LATERAL;
- outpatient, before the first admission, and for subjects who exist only in MIMIC-CXR.

An in-stay study's image latent is the stay's ``z_i`` plus small noise; any other study's latent
comes from the patient's chronic factor plus noise (``latent.outside_stay_image_latents``).
CheXpert and NegBio labels follow the study latent (1.0 / 0.0 / -1.0 uncertain / empty).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa

from mindkd.demo import latent, vocab
from mindkd.demo._util import (
    DAY,
    HOUR,
    at_least_one,
    decimal_strings,
    int_array,
    scrambled_ids,
)
from mindkd.demo.cohort import CXR_ONLY, Cohort, Counters
from mindkd.demo.images import DEVICE_THRESHOLDS, ImageJob
from mindkd.demo.latent import sigmoid
from mindkd.mimic.cxr import FINDINGS

EARLY_STUDY_SHARE = 0.34
MAX_STUDIES = 6
UNCERTAIN_SHARE, EMPTY_NEGATIVE_SHARE = 0.05, 0.4
IMAGE_DEFECT_RATES: dict[str, float] = {"missing": 0.005, "truncated": 0.004, "empty": 0.002}
UNLABELLED_STUDY_RATE = 0.01

# Study kinds, in the order they are kept when a patient has more than MAX_STUDIES.
EARLY, LATER, WARD, OUTPATIENT = 0, 1, 2, 3


@dataclass
class _ImageRows:
    """Per image: its study row, dicom_id, subject_id, view, pixel size and file status."""

    srow: np.ndarray
    dicom: np.ndarray
    subject: np.ndarray
    view: np.ndarray
    rows: np.ndarray
    cols: np.ndarray
    status: np.ndarray


@dataclass
class CxrResult:
    """One block's MIMIC-CXR-JPG rows, image jobs, truth and exact counts."""

    metadata: pa.Table
    chexpert: pa.Table
    negbio: pa.Table
    split: pa.Table
    jobs: list[ImageJob]
    truth: pd.DataFrame
    counts: dict[str, int]
    defects: dict[str, int]


def _uniform_between(rng: np.random.Generator, low: np.ndarray, high: np.ndarray) -> np.ndarray:
    return (low + rng.random(len(low)) * (high - low)).astype(np.int64)


def draw_studies(cohort: Cohort, rng: np.random.Generator) -> pd.DataFrame:
    """Candidate studies: patient row, time, kind, stay row (-1 outside stays)."""
    st, a, p = cohort.stays, cohort.admissions, cohort.patients
    intime, outtime = st["intime"].to_numpy(), st["outtime"].to_numpy()
    los = outtime - intime
    parts: list[pd.DataFrame] = []

    def add(prow: np.ndarray, t: np.ndarray, kind: int, stay: np.ndarray | None = None) -> None:
        stay_rows = np.full(len(prow), -1) if stay is None else stay
        parts.append(
            pd.DataFrame({"patient_row": prow, "time": t, "kind": kind, "stay_row": stay_rows})
        )

    s = np.flatnonzero(rng.random(len(st)) < EARLY_STUDY_SHARE)
    end = intime[s] + np.minimum(47 * HOUR, los[s] - 20 * 60)
    add(st["patient_row"].to_numpy()[s], _uniform_between(rng, intime[s] + 15 * 60, end), EARLY, s)
    s = np.flatnonzero((los > 60 * HOUR) & (rng.random(len(st)) < 0.45))
    t = _uniform_between(rng, intime[s] + 49 * HOUR, outtime[s] - 20 * 60)
    add(st["patient_row"].to_numpy()[s], t, LATER, s)

    # Ward studies: before the first stay, after the last one, or during a stay-less admission.
    arow = st["admission_row"].to_numpy()
    m = len(a)
    first_in = np.full(m, np.iinfo(np.int64).max)
    np.minimum.at(first_in, arow, intime)
    last_out = np.full(m, -1, dtype=np.int64)
    np.maximum.at(last_out, arow, outtime)
    admit, disch = a["admittime"].to_numpy(), a["dischtime"].to_numpy()
    has_stay = a["n_stays"].to_numpy() > 0
    rows = np.flatnonzero(rng.random(m) < 0.4)
    before = (
        has_stay[rows] & (first_in[rows] - admit[rows] > 2 * HOUR) & (rng.random(len(rows)) < 0.5)
    )
    after = has_stay[rows] & ~before & (disch[rows] - last_out[rows] > 3 * HOUR)
    none = ~has_stay[rows]
    low = np.where(before, admit[rows], np.where(after, last_out[rows] + HOUR, admit[rows]))
    high = np.where(before, first_in[rows] - HOUR, np.where(after, disch[rows] - HOUR, disch[rows]))
    ok = before | after | none
    add(a["patient_row"].to_numpy()[rows[ok]], _uniform_between(rng, low[ok], high[ok]), WARD)

    # Outpatient studies before the first admission; MIMIC-CXR-only subjects get 1-4.
    first = np.flatnonzero(a["order"].to_numpy() == 0)
    n_out = rng.poisson(0.6, len(first))
    prow = np.repeat(a["patient_row"].to_numpy()[first], n_out)
    start = np.repeat(admit[first], n_out)
    add(prow, start - (rng.uniform(10, 700, len(prow)) * DAY).astype(np.int64), OUTPATIENT)
    only = np.flatnonzero(p["kind"].to_numpy() == CXR_ONLY)
    n_only = rng.integers(1, 5, len(only))
    prow = np.repeat(only, n_only)
    anchor = np.array(
        [
            np.datetime64(f"{y}-01-01", "s").astype(np.int64)
            for y in p["anchor_year"].to_numpy()[prow]
        ],
        dtype=np.int64,
    )
    add(prow, anchor + (rng.uniform(0, 3, len(prow)) * 365 * DAY).astype(np.int64), OUTPATIENT)

    studies = pd.concat(parts, ignore_index=True)
    studies["key"] = rng.random(len(studies))
    studies = studies.sort_values(["patient_row", "kind", "key"], kind="stable")
    studies = studies[studies.groupby("patient_row").cumcount() < MAX_STUDIES]
    return studies.sort_values(["patient_row", "time"], kind="stable").reset_index(drop=True)


def _views(kind: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Per study: the views of its images (flattened) and the image count."""
    icu = kind <= LATER
    layouts_icu = (("AP",), ("AP", "AP"), ("AP", "LATERAL"), ("",))
    p_icu = (0.8, 0.11, 0.08, 0.01)
    layouts_out = (("PA", "LATERAL"), ("PA",), ("AP",), ("AP", "LATERAL"), ("PA", "LL"), ("",))
    p_out = (0.63, 0.1, 0.15, 0.07, 0.03, 0.02)
    choice_icu = rng.choice(len(layouts_icu), len(kind), p=p_icu)
    choice_out = rng.choice(len(layouts_out), len(kind), p=p_out)
    views: list[str] = []
    counts = np.zeros(len(kind), np.int64)
    for i in range(len(kind)):
        layout = layouts_icu[choice_icu[i]] if icu[i] else layouts_out[choice_out[i]]
        views.extend(layout)
        counts[i] = len(layout)
    return np.array(views, dtype=object), counts


def _study_latents(cohort: Cohort, studies: pd.DataFrame, rng: np.random.Generator) -> np.ndarray:
    stay_row = studies["stay_row"].to_numpy()
    chronic = cohort.patients["chronic"].to_numpy()[studies["patient_row"].to_numpy()]
    z = latent.outside_stay_image_latents(chronic, rng)
    inside = stay_row >= 0
    arow = cohort.stays["admission_row"].to_numpy()[stay_row[inside]]
    noise = rng.normal(0, latent.STUDY_NOISE_SD, (int(inside.sum()), latent.LATENT_DIM))
    z[inside] = cohort.z_i[arow] + noise
    return z


def finding_probabilities(z: np.ndarray) -> np.ndarray:
    """P(finding) per study (n, 14) in ``FINDINGS`` order; No Finding is set later."""
    n = len(z)
    z0, z1, z2, z3 = z.T
    p = {
        "Atelectasis": sigmoid(1.5 * (0.5 * z1 + 0.5 * z2 - 0.5)),
        "Cardiomegaly": sigmoid(2.2 * (z0 - 0.9)),
        "Consolidation": sigmoid(2.0 * (z1 - 1.2)),
        "Edema": sigmoid(1.5 * (0.6 * z1 + 0.6 * z0 - 1.1)),
        "Enlarged Cardiomediastinum": sigmoid(1.5 * (z0 - 1.3)),
        "Fracture": np.full(n, 0.02),
        "Lung Lesion": np.full(n, 0.04),
        "Lung Opacity": sigmoid(2.0 * (z1 - 0.3)),
        "No Finding": np.zeros(n),
        "Pleural Effusion": sigmoid(2.2 * (z2 - 0.5)),
        "Pleural Other": np.full(n, 0.01),
        "Pneumonia": sigmoid(1.8 * (z1 - 1.0)),
        "Pneumothorax": np.full(n, 0.03),
        "Support Devices": np.where(z3 > DEVICE_THRESHOLDS[0], 0.95, 0.03),
    }
    return np.stack([p[f] for f in FINDINGS], axis=1)


def _label_cells(probs: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Label values: 1.0 positive, 0.0 negative, -1.0 uncertain, NaN not mentioned."""
    n, k = probs.shape
    positive = rng.random((n, k)) < probs
    cells = np.where(
        positive, 1.0, np.where(rng.random((n, k)) < EMPTY_NEGATIVE_SHARE, np.nan, 0.0)
    )
    cells[rng.random((n, k)) < UNCERTAIN_SHARE] = -1.0
    nf = FINDINGS.index("No Finding")
    pathology = [i for i, f in enumerate(FINDINGS) if f not in {"No Finding", "Support Devices"}]
    mentioned = np.isin(cells[:, pathology], (1.0, -1.0)).any(axis=1)
    cells[:, nf] = np.where(mentioned, np.nan, 1.0)
    return cells


def _dicom_ids(rng: np.random.Generator, n: int) -> np.ndarray:
    parts = rng.integers(0, 2**32, size=(n, 5), dtype=np.uint64)
    return np.array(["-".join(f"{int(v):08x}" for v in row) for row in parts], dtype=object)


def _study_date_time(
    seconds: np.ndarray, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """StudyDate int YYYYMMDD and StudyTime float HHMMSS.fff (no leading zeros)."""
    seconds = np.asarray(seconds, dtype=np.int64)
    day = seconds.astype("datetime64[s]").astype("datetime64[D]")
    month = day.astype("datetime64[M]")
    year = month.astype("datetime64[Y]").astype(np.int64) + 1970
    day_of_month = (day - month.astype("datetime64[D]")).astype(np.int64) + 1
    date = year * 10_000 + (month.astype(np.int64) % 12 + 1) * 100 + day_of_month
    sod = seconds - day.astype("datetime64[s]").astype(np.int64)
    hhmmss = (sod // 3600) * 10_000 + (sod % 3600 // 60) * 100 + sod % 60
    millis = np.where(rng.random(len(seconds)) < 0.3, 0, rng.integers(0, 1000, len(seconds)))
    return date, np.round(hhmmss + millis / 1000, 3)


def _split_of(subject: np.ndarray) -> np.ndarray:
    u = (subject.astype(np.uint64) * np.uint64(2_654_435_761) % np.uint64(2**32)) / 2**32
    return np.where(u < 0.975, 0, np.where(u < 0.983, 1, 2))


def cxr_block(
    cohort: Cohort,
    rng: np.random.Generator,
    counters: Counters,
    image_size: tuple[int, int],
    size_jitter: float,
    *,
    studies: pd.DataFrame | None = None,
    with_defects: bool = True,
) -> CxrResult:
    """Build one block's studies, images and labels (see the module docstring).

    ``studies`` replaces the draw with studies from ``draw_studies(cohort, rng)`` that the caller
    filtered (``demo.cxr_for`` drops the few that real stay times make inconsistent).
    ``with_defects=False`` writes every image intact and labels every study; the random draws
    are the same either way, so nothing else changes.
    """
    studies = draw_studies(cohort, rng) if studies is None else studies.reset_index(drop=True)
    n_st = len(studies)
    studies["study_id"] = scrambled_ids(
        np.arange(n_st) + counters.studies, 50_000_000, 2_718_281, 2_240_968
    )
    counters.studies += n_st
    prow = studies["patient_row"].to_numpy()
    subject = cohort.patients["subject_id"].to_numpy()[prow]
    z = _study_latents(cohort, studies, rng)
    cells = _label_cells(finding_probabilities(z), rng)
    negbio = cells.copy()
    flip = rng.random(cells.shape) < 0.03
    negbio[flip] = np.where(np.isnan(cells[flip]), 0.0, np.nan)
    date, time = _study_date_time(studies["time"].to_numpy(), rng)

    views, n_img = _views(studies["kind"].to_numpy(), rng)
    srow = np.repeat(np.arange(n_st), n_img)
    n = len(srow)
    dicom = _dicom_ids(rng, n)
    rows = np.round(image_size[0] * (1 + size_jitter * rng.uniform(-1, 1, n))).astype(np.int64)
    cols = np.round(image_size[1] * (1 + size_jitter * rng.uniform(-1, 1, n))).astype(np.int64)
    seeds = rng.integers(0, 2**62, n)
    status = np.full(n, "ok", dtype=object)
    free = rng.permutation(n)
    defects: dict[str, int] = {}
    used = 0
    for kind, rate in IMAGE_DEFECT_RATES.items():
        k = at_least_one(rate, n) if with_defects else 0
        status[free[used : used + k]] = kind
        used += k
        defects[f"images_{kind}"] = k
    unlabelled = rng.permutation(n_st)[
        : at_least_one(UNLABELLED_STUDY_RATE, n_st) if with_defects else 0
    ]
    defects["studies_without_labels"] = len(unlabelled)

    study_id = studies["study_id"].to_numpy()
    subj_img = subject[srow]
    sub_str = subj_img.astype(str)
    relpaths = [
        f"files/p{s[:2]}/p{s}/s{st}/{d}.jpg"
        for s, st, d in zip(sub_str, study_id[srow], dicom, strict=True)
    ]
    jobs: list[ImageJob] = [
        (
            relpaths[i],
            int(rows[i]),
            int(cols[i]),
            str(views[i]),
            tuple(map(float, z[srow[i]])),
            int(seeds[i]),
            str(status[i]),
        )
        for i in range(n)
    ]

    images = _ImageRows(srow, dicom, subj_img, views, rows, cols, status)
    studies["StudyDate"], studies["StudyTime"] = date, time
    metadata = _metadata_table(studies, images, rng)
    labelled = np.setdiff1d(np.arange(n_st), unlabelled)
    truth = _truth_images(cohort, studies, images, z)
    counts = {
        "studies": n_st,
        "images": n,
        "image_files": int((status != "missing").sum()),
        "label_rows": len(labelled),
    }
    split = pa.table(
        {
            "dicom_id": pa.array(dicom.astype(str)),
            "study_id": int_array(study_id[srow]),
            "subject_id": int_array(subj_img),
            "split": pa.array(np.asarray(vocab.SPLITS)[_split_of(subj_img)]),
        }
    )
    return CxrResult(
        metadata=metadata,
        chexpert=_label_table(subject[labelled], study_id[labelled], cells[labelled]),
        negbio=_label_table(subject[labelled], study_id[labelled], negbio[labelled]),
        split=split,
        jobs=jobs,
        truth=truth,
        counts=counts,
        defects=defects,
    )


def _metadata_table(
    studies: pd.DataFrame, images: _ImageRows, rng: np.random.Generator
) -> pa.Table:
    srow, views = images.srow, images.view
    n = len(srow)
    kind = studies["kind"].to_numpy()[srow]
    portable = (kind <= LATER) | (views == "AP")
    procedure = np.where(portable, vocab.PORTABLE_PROCEDURE, vocab.PA_LAT_PROCEDURE)
    procedure = np.where(rng.random(n) < 0.03, "", procedure)
    orientation = np.where(portable, np.where(rng.random(n) < 0.7, "Recumbent", "Erect"), "Erect")
    orientation = np.where((rng.random(n) < 0.08) | (views == ""), "", orientation)
    view_str = views.astype(str)
    meaning = np.array([vocab.VIEW_MEANING[v] for v in view_str], dtype=object).astype(str)

    def text(values: np.ndarray) -> pa.Array:
        values = np.asarray(values).astype(str)
        return pa.array(values, mask=values == "")

    return pa.table(
        {
            "dicom_id": pa.array(images.dicom.astype(str)),
            "subject_id": int_array(images.subject),
            "study_id": int_array(studies["study_id"].to_numpy()[srow]),
            "PerformedProcedureStepDescription": text(procedure),
            "ViewPosition": text(view_str),
            "Rows": int_array(images.rows),
            "Columns": int_array(images.cols),
            "StudyDate": int_array(studies["StudyDate"].to_numpy()[srow]),
            "StudyTime": decimal_strings(studies["StudyTime"].to_numpy()[srow]),
            "ProcedureCodeSequence_CodeMeaning": text(procedure),
            "ViewCodeSequence_CodeMeaning": text(meaning),
            "PatientOrientationCodeSequence_CodeMeaning": text(orientation),
        }
    )


def _label_table(subject: np.ndarray, study: np.ndarray, cells: np.ndarray) -> pa.Table:
    columns: dict[str, pa.Array] = {"subject_id": int_array(subject), "study_id": int_array(study)}
    for k, finding in enumerate(FINDINGS):
        columns[finding] = decimal_strings(cells[:, k])
    return pa.table(columns)


def _truth_images(
    cohort: Cohort, studies: pd.DataFrame, images: _ImageRows, z: np.ndarray
) -> pd.DataFrame:
    srow = images.srow
    stay_row = studies["stay_row"].to_numpy()[srow]
    t = studies["time"].to_numpy()[srow]
    inside = stay_row >= 0
    st = cohort.stays
    stay_id = np.full(len(srow), -1, dtype=np.int64)
    stay_id[inside] = st["stay_id"].to_numpy()[stay_row[inside]]
    hours = np.full(len(srow), np.nan)
    hours[inside] = (t[inside] - st["intime"].to_numpy()[stay_row[inside]]) / HOUR
    out = pd.DataFrame(
        {
            "dicom_id": images.dicom.astype(str),
            "subject_id": images.subject,
            "study_id": studies["study_id"].to_numpy()[srow],
            "view": images.view.astype(str),
            "study_kind": np.asarray(["early", "later", "ward", "outpatient"])[
                studies["kind"].to_numpy()[srow]
            ],
            "stay_id": pd.Series(stay_id, dtype="Int64").where(inside),
            "hours_from_intime": hours,
            "in_first_48h": inside & (hours <= 48),
            "file_status": images.status.astype(str),
        }
    )
    for j in range(latent.LATENT_DIM):
        out[f"z{j}"] = z[srow, j]
    return out
