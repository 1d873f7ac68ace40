"""Patients, admissions, ICU stays and diagnoses of one block of synthetic subjects.

Structure (see ../shared/MIMIC.md): 1-3 admissions per patient, 0-2 ICU stays per admission (2 in
about one admission in ten: excluded by the cohort rule), about 10 % transfers, about 30 % of
stays shorter than 48 h, a few patients under 18, patients with hospital admissions but no ICU
stay, and patients who exist only in MIMIC-CXR. Deaths are drawn from the latent model
(``latent.py``); a patient has no admission after the one they died in; ``dod`` agrees.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import pyarrow as pa

from mindkd.demo import latent, vocab
from mindkd.demo._util import (
    DAY,
    HOUR,
    YEAR,
    epoch_seconds,
    float_array,
    int_array,
    scrambled_ids,
    segment_arange,
    ts_array,
    year_of,
)
from mindkd.mimic.los import LOS_COLUMNS

# Patient kinds.
ICU_PATIENT, HOSPITAL_ONLY, CXR_ONLY = 0, 1, 2
KIND_SHARES = (0.78, 0.10, 0.12)
PEDIATRIC_SHARE = 0.025
TRANSFER_SHARE = 0.10
#: log-normal stay length (hours): median 80 h, sigma 0.9 -> about 30 % under 48 h; its log is
#: correlated with the latents (latent.los_score), the marginal unchanged. 30 days at most, so
#: every length-of-stay class (up to "14 days and more" left after 48 h) occurs.
LOS_MEDIAN_H, LOS_SIGMA, LOS_MIN_H, LOS_MAX_H = 80.0, 0.9, 12.0, 720.0
FIRST_YEAR, LAST_ANCHOR_YEAR = 2110, 2185


@dataclass
class Counters:
    """Running indices across blocks, so ids stay unique and the output stays deterministic."""

    patients: int = 0
    admissions: int = 0
    stays: int = 0
    studies: int = 0
    specimens: int = 0
    labevents: int = 0


@dataclass
class Cohort:
    """One block's subjects as tables (times in epoch seconds, -1 = none) plus the latents.

    ``patients``: one row per subject (MIMIC-CXR-only subjects included, ``kind`` says which).
    ``admissions``: one row per admission, ``patient_row`` indexes ``patients``.
    ``stays``: one row per ICU stay, ``admission_row`` indexes ``admissions``.
    ``z_e``, ``z_i``: (n_admissions, 4) latents; ``pheno_p``/``pheno_y``: (n_admissions, 25).
    """

    patients: pd.DataFrame
    admissions: pd.DataFrame
    stays: pd.DataFrame
    z_e: np.ndarray
    z_i: np.ndarray
    pheno_p: np.ndarray
    pheno_y: np.ndarray
    mortality: dict[str, np.ndarray] = field(default_factory=dict)


def build_cohort(rng: np.random.Generator, n_patients: int, counters: Counters) -> Cohort:
    """Draw ``n_patients`` subjects with their admissions and stays; advances ``counters``."""
    patients = _draw_patients(rng, n_patients, counters)
    admissions, n_stays = _draw_admission_skeleton(rng, patients)
    n_adm = len(admissions)
    z_e = rng.standard_normal((n_adm, latent.LATENT_DIM))
    z_i = rng.standard_normal((n_adm, latent.LATENT_DIM))
    chronic = patients["chronic"].to_numpy()[admissions["patient_row"].to_numpy()]
    mortality = latent.mortality_probabilities(z_e, z_i)
    icu = n_stays > 0
    p_die = np.where(icu, mortality["p_death"], 0.015)
    died = rng.random(n_adm) < p_die

    # No admission after the one a patient died in.
    prow = admissions["patient_row"].to_numpy()
    deaths_before = _group_cumsum(died.astype(np.int64), prow) - died
    keep = deaths_before == 0
    admissions, n_stays, died = admissions[keep].reset_index(drop=True), n_stays[keep], died[keep]
    z_e, z_i, chronic = z_e[keep], z_i[keep], chronic[keep]
    mortality = {k: v[keep] for k, v in mortality.items()}
    admissions["adm_index"] = np.arange(len(admissions)) + counters.admissions
    counters.admissions += len(admissions)

    stays = _layout_times(
        rng,
        patients,
        admissions,
        n_stays,
        died=died,
        los_score=latent.los_score(z_e, z_i),
        counters=counters,
    )
    admissions["died"] = died
    _fill_dod(rng, patients, admissions)

    pheno_p = latent.phenotype_probabilities(z_e, z_i, chronic)
    pheno_y = rng.random(pheno_p.shape) < pheno_p
    return Cohort(patients, admissions, stays, z_e, z_i, pheno_p, pheno_y, mortality)


def _group_cumsum(values: np.ndarray, groups: np.ndarray) -> np.ndarray:
    """Cumulative sum within runs of equal, contiguous ``groups``."""
    if len(values) == 0:
        return values
    total = np.cumsum(values)
    starts = np.r_[0, np.flatnonzero(np.diff(groups)) + 1]
    lengths = np.diff(np.r_[starts, len(groups)])
    base = np.repeat(total[starts] - values[starts], lengths)
    return total - base


def _draw_patients(rng: np.random.Generator, n: int, counters: Counters) -> pd.DataFrame:
    index = np.arange(n) + counters.patients
    counters.patients += n
    kind = rng.choice(3, size=n, p=KIND_SHARES)
    pediatric = (kind == ICU_PATIENT) & (rng.random(n) < PEDIATRIC_SHARE)
    age = np.clip(np.round(rng.normal(63, 16, n)), 18, 91).astype(np.int64)
    age[pediatric] = rng.integers(10, 15, int(pediatric.sum()))
    return pd.DataFrame(
        {
            "subject_id": scrambled_ids(index, 10_000_000, 7_919_993, 4_721_393),
            "kind": kind,
            "gender": rng.choice(np.array(["F", "M"]), n),
            "anchor_age": age,
            "anchor_year": rng.integers(FIRST_YEAR, LAST_ANCHOR_YEAR + 1, n),
            "group": rng.integers(0, len(vocab.ANCHOR_YEAR_GROUPS), n),
            "chronic": rng.standard_normal(n),
            "dod": np.full(n, -1, dtype=np.int64),
        }
    )


def _draw_admission_skeleton(
    rng: np.random.Generator, patients: pd.DataFrame
) -> tuple[pd.DataFrame, np.ndarray]:
    """Admission rows (patient_row, order) and the number of ICU stays of each."""
    kind = patients["kind"].to_numpy()
    n_adm = np.where(
        kind == CXR_ONLY, 0, rng.choice([1, 2, 3], size=len(kind), p=[0.65, 0.25, 0.1])
    )
    prow = np.repeat(np.arange(len(kind)), n_adm)
    order = segment_arange(n_adm)
    m = len(prow)
    first = rng.choice([1, 2], size=m, p=[0.89, 0.11])
    later = rng.choice([0, 1, 2], size=m, p=[0.35, 0.58, 0.07])
    n_stays = np.where(order == 0, first, later)
    n_stays[kind[prow] != ICU_PATIENT] = 0
    frame = pd.DataFrame({"patient_row": prow, "order": order})
    return frame, n_stays.astype(np.int64)


def _layout_times(
    rng: np.random.Generator,
    patients: pd.DataFrame,
    admissions: pd.DataFrame,
    n_stays: np.ndarray,
    *,
    died: np.ndarray,
    los_score: np.ndarray,
    counters: Counters,
) -> pd.DataFrame:
    """Admission and stay times; writes admission columns in place and returns the stays.

    ``los_score``: per admission, the latent score its stays' log length follows (``latent``)."""
    m = len(admissions)
    prow = admissions["patient_row"].to_numpy()
    order = admissions["order"].to_numpy()

    # Stays: length, and position inside the admission.
    arow = np.repeat(np.arange(m), n_stays)
    k_in_adm = segment_arange(n_stays)
    s = len(arow)
    r = latent.LOS_LATENT_R
    noise = np.sqrt(1.0 - r**2) * rng.standard_normal(s) + r * los_score[arow]
    los_h = np.exp(np.log(LOS_MEDIAN_H) + LOS_SIGMA * noise)
    los_s = (np.clip(los_h, LOS_MIN_H, LOS_MAX_H) * HOUR).astype(np.int64) + rng.integers(0, 60, s)
    gap_s = np.where(k_in_adm > 0, rng.uniform(12, 96, s) * HOUR, 0).astype(np.int64)
    icu_span = np.bincount(arow, weights=los_s + gap_s, minlength=m).astype(np.int64)

    pre = (rng.uniform(0.5, 30, m) * HOUR).astype(np.int64)
    post = (np.clip(np.exp(rng.normal(np.log(72), 0.8, m)), 4, 480) * HOUR).astype(np.int64)
    post = np.where(died, (rng.uniform(0, 3, m) * HOUR).astype(np.int64), post)
    ward_only = (rng.uniform(18, 192, m) * HOUR).astype(np.int64)
    length = np.where(n_stays > 0, pre + icu_span + post, ward_only)

    # Admissions of one patient follow each other with gaps of 20-200 days.
    anchor = np.array(
        [epoch_seconds(f"{y}-01-01") for y in patients["anchor_year"]], dtype=np.int64
    )
    start0 = anchor[prow] + (rng.uniform(0, 1.3, m) * YEAR).astype(np.int64)
    gap = np.where(order > 0, rng.uniform(20, 200, m) * DAY, 0).astype(np.int64)
    first_row = np.flatnonzero(order == 0)  # each patient's first admission
    start = start0[first_row][np.cumsum(order == 0) - 1]  # ... repeated over their admissions
    step = np.r_[0, length[:-1]] * (order > 0) + gap  # previous admission's length + gap
    admittime = start + _group_cumsum(step, prow) + rng.integers(0, 60, m)
    dischtime = admittime + length

    # Stay times.
    stay_offset = np.cumsum(gap_s + los_s) - _repeat_group_start(np.cumsum(gap_s + los_s), arow)
    intime = admittime[arow] + pre[arow] + stay_offset - los_s
    outtime = intime + los_s

    stay_index = np.arange(s) + counters.stays
    counters.stays += s
    hadm_id = scrambled_ids(admissions["adm_index"].to_numpy(), 20_000_000, 4_999_999, 3_905_127)
    subject_id = patients["subject_id"].to_numpy()[prow]
    admissions["subject_id"] = subject_id
    admissions["hadm_id"] = hadm_id
    admissions["admittime"] = admittime
    admissions["dischtime"] = dischtime
    admissions["deathtime"] = np.where(died, dischtime, -1)
    admissions["n_stays"] = n_stays

    unit_p = np.asarray(vocab.CARE_UNIT_WEIGHTS) / np.sum(vocab.CARE_UNIT_WEIGHTS)
    first_unit = rng.choice(len(vocab.CARE_UNITS), size=s, p=unit_p)
    transfer = rng.random(s) < TRANSFER_SHARE
    shift = rng.integers(1, len(vocab.CARE_UNITS), s)
    last_unit = np.where(transfer, (first_unit + shift) % len(vocab.CARE_UNITS), first_unit)
    return pd.DataFrame(
        {
            "subject_id": subject_id[arow],
            "hadm_id": hadm_id[arow],
            "stay_id": scrambled_ids(stay_index, 30_000_000, 6_700_417, 6_170_449),
            "first_unit": first_unit,
            "last_unit": last_unit,
            "intime": intime,
            "outtime": outtime,
            "admission_row": arow,
            "patient_row": prow[arow],
            "stay_in_admission": k_in_adm,
        }
    )


def _repeat_group_start(cumulative: np.ndarray, groups: np.ndarray) -> np.ndarray:
    """For contiguous ``groups``, the cumulative value just before each group starts."""
    if len(groups) == 0:
        return cumulative
    starts = np.r_[0, np.flatnonzero(np.diff(groups)) + 1]
    lengths = np.diff(np.r_[starts, len(groups)])
    before = np.r_[0, cumulative][starts]
    return np.repeat(before, lengths)


def _fill_dod(rng: np.random.Generator, patients: pd.DataFrame, admissions: pd.DataFrame) -> None:
    """Date of death: the in-hospital death, or for some others a date after the last discharge."""
    n = len(patients)
    dod = np.full(n, -1, dtype=np.int64)
    prow = admissions["patient_row"].to_numpy()
    died = admissions["died"].to_numpy()
    dod[prow[died]] = admissions["deathtime"].to_numpy()[died]
    last_disch = np.full(n, -1, dtype=np.int64)
    np.maximum.at(last_disch, prow, admissions["dischtime"].to_numpy())
    later = (dod < 0) & (last_disch > 0) & (rng.random(n) < 0.08)
    dod[later] = last_disch[later] + (rng.uniform(10, 700, int(later.sum())) * DAY).astype(np.int64)
    patients["dod"] = np.where(dod >= 0, dod - dod % DAY, -1)


def discharged_at_midnight(cohort: Cohort) -> np.ndarray:
    """Per admission: an in-hospital death written with ``dischtime`` at midnight of its day.

    Real MIMIC-IV often records an in-hospital death so: ``dischtime`` 00:00 of the day of death,
    ``deathtime`` later that day (4 of the 9 deaths of the real demo's ihm cohort). About 40 % of
    the deaths here, chosen by ``hadm_id`` (no random draw); a death at exactly midnight is not one.
    """
    a = cohort.admissions
    deathtime = a["deathtime"].to_numpy()
    return a["died"].to_numpy() & (a["hadm_id"].to_numpy() % 5 < 2) & (deathtime % DAY != 0)


def age_at(patients: pd.DataFrame, patient_row: np.ndarray, seconds: np.ndarray) -> np.ndarray:
    """Age at a time: anchor_age + (year of the time - anchor_year)."""
    anchor_age = patients["anchor_age"].to_numpy()[patient_row]
    anchor_year = patients["anchor_year"].to_numpy()[patient_row]
    return anchor_age + year_of(seconds) - anchor_year


# ---------------------------------------------------------------------------------------------
# Tables
# ---------------------------------------------------------------------------------------------


def patients_table(cohort: Cohort) -> pa.Table:
    """``hosp/patients`` rows of the MIMIC-IV subjects (MIMIC-CXR-only subjects left out)."""
    p = cohort.patients[cohort.patients["kind"] != CXR_ONLY]
    dod = p["dod"].to_numpy()
    groups = pa.array(vocab.ANCHOR_YEAR_GROUPS)
    dod_text = pa.array(
        np.asarray(np.where(dod >= 0, dod, 0), dtype="datetime64[s]").astype("datetime64[D]"),
        mask=dod < 0,
    ).cast(pa.string())
    return pa.table(
        {
            "subject_id": int_array(p["subject_id"]),
            "gender": pa.array(p["gender"].to_numpy(dtype=str)),
            "anchor_age": int_array(p["anchor_age"]),
            "anchor_year": int_array(p["anchor_year"]),
            "anchor_year_group": groups.take(pa.array(p["group"].to_numpy())),
            "dod": dod_text,
        }
    )


def admissions_table(cohort: Cohort, rng: np.random.Generator) -> pa.Table:
    """``hosp/admissions`` rows, with ED times for emergency admissions."""
    a = cohort.admissions
    m = len(a)
    type_p = np.asarray(vocab.ADMISSION_TYPE_WEIGHTS) / np.sum(vocab.ADMISSION_TYPE_WEIGHTS)
    adm_type = np.asarray(vocab.ADMISSION_TYPES)[rng.choice(len(type_p), m, p=type_p)]
    emergency = np.isin(adm_type, list(vocab.EMERGENCY_TYPES))
    admittime = a["admittime"].to_numpy()
    edreg = admittime - (rng.uniform(1, 8, m) * HOUR).astype(np.int64)
    edout = admittime + rng.integers(0, 40 * 60, m)
    died = a["died"].to_numpy()
    location = np.where(
        emergency, "EMERGENCY ROOM", rng.choice(np.asarray(vocab.ADMISSION_LOCATIONS[1:]), m)
    )
    discharge = np.where(died, "DIED", rng.choice(np.asarray(vocab.DISCHARGE_LOCATIONS), m))
    provider = np.array([f"P{v:05X}" for v in rng.integers(0, 16**5, m)])
    deathtime = a["deathtime"].to_numpy()
    dischtime = np.where(
        discharged_at_midnight(cohort), deathtime - deathtime % DAY, a["dischtime"].to_numpy()
    )
    patient_row = a["patient_row"].to_numpy()
    return pa.table(
        {
            "subject_id": int_array(a["subject_id"]),
            "hadm_id": int_array(a["hadm_id"]),
            "admittime": ts_array(admittime),
            "dischtime": ts_array(dischtime),
            "deathtime": ts_array(deathtime, mask=deathtime < 0),
            "admission_type": pa.array(adm_type),
            "admit_provider_id": pa.array(provider),
            "admission_location": pa.array(location),
            "discharge_location": pa.array(discharge),
            "insurance": pa.array(rng.choice(np.asarray(vocab.INSURANCE), m)),
            "language": pa.array(rng.choice(np.asarray(vocab.LANGUAGES), m)),
            "marital_status": _empty_as_null(
                np.asarray(vocab.MARITAL_STATUS)[_patient_choice(patient_row, 5, 11)]
            ),
            "race": pa.array(np.asarray(vocab.RACES)[_patient_choice(patient_row, 8, 7)]),
            "edregtime": ts_array(edreg, mask=~emergency),
            "edouttime": ts_array(edout, mask=~emergency),
            "hospital_expire_flag": int_array(died.astype(np.int64)),
        }
    )


def _patient_choice(patient_row: np.ndarray, n: int, salt: int) -> np.ndarray:
    """A per-patient constant choice in range(n) (race, marital status do not change)."""
    return (patient_row * 2_654_435_761 + salt * 97) % 4_294_967_291 % n


def _empty_as_null(values: np.ndarray) -> pa.Array:
    return pa.array(values, mask=values == "")


def icustays_table(cohort: Cohort) -> pa.Table:
    """``icu/icustays`` rows; ``los`` in fractional days."""
    st = cohort.stays
    units = pa.array(vocab.CARE_UNITS)
    intime, outtime = st["intime"].to_numpy(), st["outtime"].to_numpy()
    return pa.table(
        {
            "subject_id": int_array(st["subject_id"]),
            "hadm_id": int_array(st["hadm_id"]),
            "stay_id": int_array(st["stay_id"]),
            "first_careunit": units.take(pa.array(st["first_unit"].to_numpy())),
            "last_careunit": units.take(pa.array(st["last_unit"].to_numpy())),
            "intime": ts_array(intime),
            "outtime": ts_array(outtime),
            "los": float_array((outtime - intime) / DAY),
        }
    )


def diagnoses_table(cohort: Cohort, rng: np.random.Generator) -> pa.Table:
    """``hosp/diagnoses_icd``: codes of each positive phenotype plus distractor codes.

    Each admission is coded in ICD-10 or ICD-9, with the ICD-10 share of the patient's
    anchor_year_group; seq_num orders the codes at random.
    """
    a = cohort.admissions
    m = len(a)
    group = cohort.patients["group"].to_numpy()[a["patient_row"].to_numpy()]
    icd10 = rng.random(m) < np.asarray(vocab.ICD10_SHARE_BY_GROUP)[group]
    adm_rows: list[np.ndarray] = []
    codes: list[np.ndarray] = []
    versions: list[np.ndarray] = []
    for k, pheno in enumerate(vocab.PHENOTYPES):
        rows = np.flatnonzero(cohort.pheno_y[:, k])
        extra = rows[rng.random(len(rows)) < 0.2]  # some admissions get two codes of a group
        for chosen in (rows, extra):
            is10 = icd10[chosen]
            c9 = np.asarray(pheno.icd9)[rng.integers(0, len(pheno.icd9), len(chosen))]
            c10 = np.asarray(pheno.icd10)[rng.integers(0, len(pheno.icd10), len(chosen))]
            adm_rows.append(chosen)
            codes.append(np.where(is10, c10, c9))
            versions.append(np.where(is10, 10, 9))
    n_dist = rng.integers(1, 7, m)
    rows = np.repeat(np.arange(m), n_dist)
    is10 = icd10[rows]
    d9 = np.asarray(vocab.DISTRACTOR_ICD9)[rng.integers(0, len(vocab.DISTRACTOR_ICD9), len(rows))]
    d10 = np.asarray(vocab.DISTRACTOR_ICD10)[
        rng.integers(0, len(vocab.DISTRACTOR_ICD10), len(rows))
    ]
    adm_rows.append(rows)
    codes.append(np.where(is10, d10, d9))
    versions.append(np.where(is10, 10, 9))

    frame = pd.DataFrame(
        {
            "row": np.concatenate(adm_rows),
            "icd_code": np.concatenate(codes),
            "icd_version": np.concatenate(versions),
        }
    ).drop_duplicates(["row", "icd_code"])
    frame["key"] = rng.random(len(frame))
    frame = frame.sort_values(["row", "key"], kind="stable")
    seq = frame.groupby("row").cumcount().to_numpy() + 1
    rows_arr = frame["row"].to_numpy()
    table = pa.table(
        {
            "subject_id": int_array(a["subject_id"].to_numpy()[rows_arr]),
            "hadm_id": int_array(a["hadm_id"].to_numpy()[rows_arr]),
            "seq_num": int_array(seq),
            "icd_code": pa.array(frame["icd_code"].to_numpy(dtype=str)),
            "icd_version": int_array(frame["icd_version"].to_numpy()),
        }
    )
    return table


def truth_stays(cohort: Cohort) -> pd.DataFrame:
    """Per ICU stay: ids, times, latents, true probabilities, labels and cohort flags."""
    st = cohort.stays
    a = cohort.admissions
    arow = st["admission_row"].to_numpy()
    prow = st["patient_row"].to_numpy()
    intime, outtime = st["intime"].to_numpy(), st["outtime"].to_numpy()
    los_h = (outtime - intime) / HOUR
    age = age_at(cohort.patients, prow, intime)
    transfer = st["first_unit"].to_numpy() != st["last_unit"].to_numpy()
    # Cohort rule: no transfer, then exactly one remaining stay in the admission, then adult.
    kept = pd.Series(~transfer).groupby(arow).transform("sum").to_numpy()
    single = (~transfer) & (kept == 1)
    out = pd.DataFrame(
        {
            "stay_id": st["stay_id"].to_numpy(),
            "subject_id": st["subject_id"].to_numpy(),
            "hadm_id": st["hadm_id"].to_numpy(),
            "intime": intime.astype("datetime64[s]"),
            "outtime": outtime.astype("datetime64[s]"),
            "los_hours": los_h,
            "age": age,
            "transfer": transfer,
            "in_cohort": single & (age >= 18),
            "ihm_eligible": single & (age >= 18) & (los_h >= 48),
            "died": a["died"].to_numpy()[arow],
            "dischtime_at_midnight": discharged_at_midnight(cohort)[arow],
            "chronic": cohort.patients["chronic"].to_numpy()[prow],
        }
    )
    for key in ("p_death", "p_death_ehr_only", "p_death_cxr_only"):
        out[key] = cohort.mortality[key][arow]
    for j in range(latent.LATENT_DIM):
        out[f"z_e{j}"] = cohort.z_e[arow, j]
    for j in range(latent.LATENT_DIM):
        out[f"z_i{j}"] = cohort.z_i[arow, j]
    for k, name in enumerate(vocab.PHENOTYPE_NAMES):
        out[f"p_{name}"] = cohort.pheno_p[arow, k]
    unimodal = latent.phenotype_unimodal_probabilities(cohort.z_e[arow], cohort.z_i[arow])
    for suffix in ("ehr_only", "cxr_only"):
        for k, name in enumerate(vocab.PHENOTYPE_NAMES):
            out[f"p_{name}_{suffix}"] = unimodal[suffix][:, k]
    for k, name in enumerate(vocab.PHENOTYPE_NAMES):
        out[f"y_{name}"] = cohort.pheno_y[arow, k]
    los = latent.los_class_probabilities(
        cohort.z_e[arow],
        cohort.z_i[arow],
        median_h=LOS_MEDIAN_H,
        sigma=LOS_SIGMA,
        min_h=LOS_MIN_H,
        max_h=LOS_MAX_H,
    )
    for suffix, key in (("", "p"), ("_ehr_only", "p_ehr_only"), ("_cxr_only", "p_cxr_only")):
        for k, column in enumerate(LOS_COLUMNS):
            out[f"p_{column}{suffix}"] = los[key][:, k]
    return out
