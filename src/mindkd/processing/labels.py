"""Task labels of cohort stays: in-hospital mortality and the 25 phenotypes.

In-hospital mortality (``y``): 1 when the patient died during the stay's hospital admission,
read from ``admissions.deathtime`` lying in ``[admittime, dischtime]`` (both ends inclusive). The
redundant ``hospital_expire_flag`` is compared, never silently preferred: stays where the two
disagree are counted (``ihm_label_disagreements``) and logged, and ``source="hospital_expire_flag"``
switches the label to the flag. (MIMIC-IV has a few deaths charted minutes after ``dischtime``;
they are where the two usually disagree.)

Phenotypes: every diagnosis of the admission (``diagnoses_icd``, ICD-9 and ICD-10) is mapped once
per unique code through ``mindkd.mimic.phenotypes`` and an admission carries a phenotype when any
of its codes maps to it. Unmapped codes are counted.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any, Literal

import numpy as np
import pandas as pd

from mindkd.mimic.phenotypes import (
    NUM_PHENOTYPES,
    PHENOTYPE_COLUMNS,
    map_icd_codes,
    normalise_codes,
)
from mindkd.processing.checks import require_columns

logger = logging.getLogger(__name__)

MortalitySource = Literal["deathtime", "hospital_expire_flag"]


class LabelError(ValueError):
    """Label inputs are inconsistent (missing columns, admissions without a row, bad options)."""


def _require(table: pd.DataFrame, columns: Sequence[str], name: str) -> None:
    require_columns(table, columns, name, LabelError)


def mortality_labels(
    stays: pd.DataFrame,
    admissions: pd.DataFrame,
    source: MortalitySource = "deathtime",
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """``stay_id, y`` (int8) for ``stays`` (``stay_id, hadm_id``), and counts.

    Args:
        stays: the cohort stays.
        admissions: MIMIC-IV ``hosp/admissions`` (hadm_id, admittime, dischtime, deathtime and,
            when present, hospital_expire_flag).
        source: ``deathtime`` (default: death in [admittime, dischtime]) or
            ``hospital_expire_flag`` (parameter ``ihm.label_source``).
    """
    if source not in ("deathtime", "hospital_expire_flag"):
        raise LabelError(
            f"ihm.label_source must be 'deathtime' or 'hospital_expire_flag', got {source!r}"
        )
    _require(stays, ["stay_id", "hadm_id"], "stays")
    _require(admissions, ["hadm_id", "admittime", "dischtime", "deathtime"], "admissions")
    has_flag = "hospital_expire_flag" in admissions.columns
    if source == "hospital_expire_flag" and not has_flag:
        raise LabelError("admissions lacks column 'hospital_expire_flag' (ihm.label_source)")
    wanted = ["hadm_id", "admittime", "dischtime", "deathtime"] + (
        ["hospital_expire_flag"] if has_flag else []
    )
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
    died = (
        merged["deathtime"].notna()
        & (merged["deathtime"] >= merged["admittime"])
        & (merged["deathtime"] <= merged["dischtime"])
    ).to_numpy()
    stats: dict[str, Any] = {
        "ihm_label_source": source,
        "deathtime_outside_admission": int((merged["deathtime"].notna().to_numpy() & ~died).sum()),
    }
    if has_flag:
        flag = (merged["hospital_expire_flag"].fillna(0).astype(np.int64) == 1).to_numpy()
        disagree = died != flag
        stats["ihm_label_disagreements"] = int(disagree.sum())
        if disagree.any():
            logger.warning(
                "%d stay(s): death in [admittime, dischtime] disagrees with hospital_expire_flag "
                "(e.g. stay_id %s); label from %s",
                int(disagree.sum()),
                merged.loc[disagree, "stay_id"].head(5).tolist(),
                source,
            )
        label = flag if source == "hospital_expire_flag" else died
    else:
        label = died
    labels = pd.DataFrame({"stay_id": merged["stay_id"].to_numpy(), "y": label.astype(np.int8)})
    stats["ihm_positive"] = int(label.sum())
    stats["ihm_negative"] = len(label) - int(label.sum())
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
