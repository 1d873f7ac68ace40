"""Task labels of cohort stays: in-hospital mortality, the 25 phenotypes, length-of-stay classes.

In-hospital mortality (``y``): 1 when the patient died during the stay's hospital admission. Three
rules read it from MIMIC-IV; ``source`` (parameter ``ihm.task.label_source``) picks the label and
the other two are computed beside it, so every stay where they disagree is counted and listed in the
cohort report (``ihm_label_rules``), never silently chosen:

- ``hospital_expire_flag`` (default): ``admissions.hospital_expire_flag == 1``, the hospital's own
  record of an in-hospital death;
- ``death_date``: the death's date (``deathtime``, else ``patients.dod``) lies within the
  admission's dates, ``[date(admittime), date(dischtime)]``, as mimic3-benchmarks compares;
- ``deathtime``: ``deathtime`` within ``[admittime, dischtime]`` to the second. On real MIMIC-IV
  it misses deaths: ``dischtime`` of an in-hospital death is often midnight of the day of death
  and ``deathtime`` later that day (4 of the 9 deaths of the real demo's ihm cohort).

On the real MIMIC-IV demo the flag and ``death_date`` agree on all 275 admissions.

Phenotypes: every diagnosis of the admission (``diagnoses_icd``, ICD-9 and ICD-10) is mapped once
per unique code through ``mindkd.mimic.phenotypes`` and an admission carries a phenotype when any
of its codes maps to it. Unmapped codes are counted.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any, Literal, get_args

import numpy as np
import pandas as pd

from mindkd.mimic.los import LOS_COLUMNS, los_class
from mindkd.mimic.los import NUM_CLASSES as NUM_LOS_CLASSES
from mindkd.mimic.phenotypes import (
    NUM_PHENOTYPES,
    PHENOTYPE_COLUMNS,
    map_icd_codes,
    normalise_codes,
)
from mindkd.processing.checks import require_columns

logger = logging.getLogger(__name__)

MortalitySource = Literal["hospital_expire_flag", "death_date", "deathtime"]
MORTALITY_SOURCES: tuple[str, ...] = get_args(MortalitySource)
#: How many stay ids of each disagreement the cohort report lists.
DISAGREEMENT_EXAMPLES = 20


class LabelError(ValueError):
    """Label inputs are inconsistent (missing columns, admissions without a row, bad options)."""


def _require(table: pd.DataFrame, columns: Sequence[str], name: str) -> None:
    require_columns(table, columns, name, LabelError)


def _death_rules(merged: pd.DataFrame) -> dict[str, np.ndarray]:
    """Each rule's label (bool per row) for stays merged with admissions (and ``dod``)."""
    admit, disch, death = merged["admittime"], merged["dischtime"], merged["deathtime"]
    rules = {
        "hospital_expire_flag": (
            pd.to_numeric(merged["hospital_expire_flag"], errors="coerce").fillna(0).eq(1)
        ),
        "deathtime": death.notna() & (death >= admit) & (death <= disch),
    }
    death_day = death.dt.normalize().fillna(merged["dod"].dt.normalize())
    rules["death_date"] = (
        death_day.notna()
        & (death_day >= admit.dt.normalize())
        & (death_day <= disch.dt.normalize())
    )
    return {name: rules[name].to_numpy(dtype=bool) for name in MORTALITY_SOURCES}


def _with_dod(stays: pd.DataFrame, patients: pd.DataFrame | None) -> pd.Series:
    """``patients.dod`` per stay (NaT without a date or without ``patients``)."""
    if patients is None:
        return pd.Series(pd.NaT, index=stays.index, dtype="datetime64[s]")
    _require(patients, ["subject_id", "dod"], "patients")
    dod = pd.to_datetime(patients.drop_duplicates("subject_id").set_index("subject_id")["dod"])
    return stays["subject_id"].map(dod)


def mortality_labels(
    stays: pd.DataFrame,
    admissions: pd.DataFrame,
    source: MortalitySource = "hospital_expire_flag",
    patients: pd.DataFrame | None = None,
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """``stay_id, y`` (int8) for ``stays`` (``stay_id, hadm_id``, ``subject_id`` with ``patients``).

    Args:
        stays: the cohort stays.
        admissions: MIMIC-IV ``hosp/admissions`` (hadm_id, admittime, dischtime, deathtime,
            hospital_expire_flag).
        source: the rule that gives the label (see the module docstring).
        patients: MIMIC-IV ``hosp/patients`` (``dod``) for ``death_date``; without it that
            rule reads ``deathtime`` only.

    Stats: ``ihm_label_source``, ``ihm_positive`` / ``ihm_negative``, and ``ihm_label_rules``:
    per rule its positives, the stays where it disagrees with ``source`` and up to
    ``DISAGREEMENT_EXAMPLES`` of their stay ids.
    """
    if source not in MORTALITY_SOURCES:
        raise LabelError(
            f"ihm.task.label_source must be one of {list(MORTALITY_SOURCES)}, got {source!r}"
        )
    _require(stays, ["stay_id", "hadm_id"], "stays")
    wanted = ["hadm_id", "admittime", "dischtime", "deathtime", "hospital_expire_flag"]
    _require(admissions, wanted, "admissions")
    admissions = admissions[admissions["hadm_id"].isin(stays["hadm_id"])][wanted]
    if admissions["hadm_id"].duplicated().any():
        raise LabelError("admissions has duplicate hadm_id rows")
    merged = stays[["stay_id", "hadm_id"]].merge(admissions, on="hadm_id", how="left")
    lacking = merged["admittime"].isna()
    if lacking.any():
        examples = merged.loc[lacking, "hadm_id"].head(5).tolist()
        raise LabelError(
            f"{int(lacking.sum())} cohort stay(s) have no admissions row (hadm_id e.g. {examples})"
        )
    if patients is not None:
        _require(stays, ["subject_id"], "stays")
    merged["dod"] = _with_dod(stays, patients).to_numpy()
    for column in ("admittime", "dischtime", "deathtime", "dod"):
        merged[column] = pd.to_datetime(merged[column])
    rules = _death_rules(merged)
    label = rules[source]
    stay_ids = merged["stay_id"].to_numpy()
    report: dict[str, Any] = {}
    for name, died in rules.items():
        disagree = died != label
        report[name] = {
            "positive": int(died.sum()),
            "disagreements": int(disagree.sum()),
            "disagreement_stays": stay_ids[disagree][:DISAGREEMENT_EXAMPLES].tolist(),
        }
        if disagree.any():
            logger.warning(
                "ihm labels: rule %s disagrees with %s on %d stay(s) (e.g. stay_id %s); label "
                "from %s",
                name,
                source,
                int(disagree.sum()),
                stay_ids[disagree][:5].tolist(),
                source,
            )
    labels = pd.DataFrame({"stay_id": stay_ids, "y": label.astype(np.int8)})
    stats: dict[str, Any] = {
        "ihm_label_source": source,
        "ihm_positive": int(label.sum()),
        "ihm_negative": len(label) - int(label.sum()),
        "ihm_label_rules": report,
    }
    return labels, stats


def phenotype_labels(
    stays: pd.DataFrame, diagnoses_icd: pd.DataFrame
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """``stay_id`` plus one int8 column per phenotype (``PHENOTYPE_COLUMNS``), and counts.

    Args:
        stays: the cohort stays (``stay_id, hadm_id``).
        diagnoses_icd: MIMIC-IV ``hosp/diagnoses_icd`` with ``icd_code`` read as a string.
    """
    _require(stays, ["stay_id", "hadm_id"], "stays")
    _require(diagnoses_icd, ["hadm_id", "icd_code", "icd_version"], "diagnoses_icd")
    diagnoses = diagnoses_icd.loc[
        diagnoses_icd["hadm_id"].isin(stays["hadm_id"]), ["hadm_id", "icd_code", "icd_version"]
    ]
    no_code = diagnoses["icd_code"].isna()
    diagnoses = diagnoses[~no_code]
    diagnoses = diagnoses.assign(
        icd_code=normalise_codes(diagnoses["icd_code"], "diagnoses_icd.icd_code"),
        icd_version=diagnoses["icd_version"].astype(np.int64),
    )
    mapping = map_icd_codes(diagnoses)
    pairs = (
        mapping.codes[["icd_version", "icd_code", "phenotypes"]]
        .explode("phenotypes")
        .dropna(subset=["phenotypes"])
    )
    positives = (
        diagnoses.merge(pairs, on=["icd_version", "icd_code"])[["hadm_id", "phenotypes"]]
        .drop_duplicates()
        .merge(stays[["hadm_id"]].assign(_row=np.arange(len(stays), dtype=np.int64)), on="hadm_id")
    )
    matrix = np.zeros((len(stays), NUM_PHENOTYPES), dtype=np.int8)
    matrix[positives["_row"].to_numpy(), positives["phenotypes"].to_numpy(dtype=np.int64)] = 1
    labels = pd.DataFrame(matrix, columns=list(PHENOTYPE_COLUMNS))
    labels.insert(0, "stay_id", stays["stay_id"].to_numpy())

    unmapped = mapping.codes.loc[mapping.codes["how"] == "unmapped", ["icd_version", "icd_code"]]
    unmapped_rows = diagnoses.merge(unmapped, on=["icd_version", "icd_code"])
    stats: dict[str, Any] = {
        "diagnoses_rows": len(diagnoses),
        "diagnoses_rows_without_code": int(no_code.sum()),
        **{f"codes_{k}": v for k, v in mapping.stats().items()},
        "diagnoses_rows_unmapped": len(unmapped_rows),
        "unmapped_codes_examples": unmapped["icd_code"].head(10).tolist(),
        "stays_without_diagnoses": int((~stays["hadm_id"].isin(diagnoses["hadm_id"])).sum()),
        "stays_without_phenotype": int((matrix.sum(axis=1) == 0).sum()),
        "phenotype_positives": dict(
            zip(PHENOTYPE_COLUMNS, matrix.sum(axis=0).astype(int).tolist(), strict=True)
        ),
    }
    logger.info(
        "Phenotype labels: %d stays, %d diagnoses, %d unique codes (%d by prefix, %d unmapped: "
        "%d diagnosis rows)",
        len(stays),
        len(diagnoses),
        stats["codes_unique_codes"],
        stats["codes_mapped_by_prefix"],
        stats["codes_unmapped"],
        stats["diagnoses_rows_unmapped"],
    )
    return labels, stats


def los_labels(stays: pd.DataFrame, hours: float) -> tuple[pd.DataFrame, dict[str, Any]]:
    """``stay_id`` and one int8 column per length-of-stay class (one-hot; ``mindkd.mimic.los``).

    The class is that of the ICU stay remaining after the first ``hours``: ``outtime − intime −
    hours``. Every stay must have both times and at least ``hours`` of stay (the cohort's earlier
    steps ensure it); one that does not is an error, not a silent drop. Stats: ``los_classes``
    (stays per class) and the median remaining stay in hours.
    """
    _require(stays, ["stay_id", "intime", "outtime"], "stays")
    span = pd.to_datetime(stays["outtime"]) - pd.to_datetime(stays["intime"])
    remaining = span.dt.total_seconds().to_numpy(dtype=np.float64) / 3600.0 - hours
    classes = los_class(remaining)
    bad = classes < 0
    if bad.any():
        examples = stays.loc[bad, "stay_id"].head(5).tolist()
        raise LabelError(
            f"{int(bad.sum())} stay(s) have no time left after the first {hours:g} h or no "
            f"outtime (stay_id e.g. {examples}); the los cohort keeps stays of at least "
            f"`los.task.hours`"
        )
    onehot = np.zeros((len(stays), NUM_LOS_CLASSES), dtype=np.int8)
    onehot[np.arange(len(stays)), classes] = 1
    labels = pd.DataFrame(onehot, columns=list(LOS_COLUMNS))
    labels.insert(0, "stay_id", stays["stay_id"].to_numpy())
    counts = onehot.sum(axis=0)
    stats: dict[str, Any] = {
        "los_classes": {c: int(n) for c, n in zip(LOS_COLUMNS, counts, strict=True)},
        "los_remaining_hours_median": float(np.median(remaining)) if len(remaining) else None,
    }
    logger.info("los labels (remaining ICU stay after %g h): %s", hours, stats["los_classes"])
    return labels, stats
