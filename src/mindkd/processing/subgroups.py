"""The patient groups a fairness analysis reports: sex, age band, race and insurance per stay.

From MIMIC-IV ``patients`` (``gender``, ``anchor_age``, ``anchor_year``) and ``admissions``
(``race``, ``insurance``) of each stay's admission. Race is grouped as CareBench and most MIMIC-IV
fairness work do (the free-text categories folded by their leading word):

>>> races = ["WHITE - RUSSIAN", "BLACK/CAPE VERDEAN", "SOUTH AMERICAN", "UNABLE TO OBTAIN", None]
>>> race_group(pd.Series(races)).tolist()
['White', 'Black', 'Hispanic/Latino', 'Unknown', 'Unknown']

A missing value is its own group (``Unknown``), never dropped: every stay is in exactly one group of
every attribute.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from mindkd.processing.checks import require_columns
from mindkd.processing.cohort import age_at_intime

ATTRIBUTES: tuple[str, ...] = ("sex", "age_band", "race", "insurance")
AGE_BANDS: tuple[tuple[str, float], ...] = (  # (label, lower bound), upper bound the next one's
    ("18-39", 18),
    ("40-59", 40),
    ("60-79", 60),
    ("80+", 80),
)
UNKNOWN = "Unknown"
_RACE_PREFIXES: tuple[tuple[str, str], ...] = (
    ("WHITE", "White"),
    ("BLACK", "Black"),
    ("HISPANIC", "Hispanic/Latino"),
    ("SOUTH AMERICAN", "Hispanic/Latino"),
    ("ASIAN", "Asian"),
    ("UNKNOWN", UNKNOWN),
    ("UNABLE TO OBTAIN", UNKNOWN),
    ("PATIENT DECLINED", UNKNOWN),
)


class SubgroupError(ValueError):
    """Inputs of the subgroup table that lack a column or a stay's admission."""


def race_group(race: pd.Series) -> pd.Series:
    """The coarse group of each MIMIC-IV ``race`` value; anything else is ``Other``."""
    text = race.fillna("").astype(str).str.strip().str.upper()
    groups = pd.Series("Other", index=race.index, dtype=object)
    groups[text == ""] = UNKNOWN
    for prefix, group in reversed(_RACE_PREFIXES):
        groups[text.str.startswith(prefix)] = group
    return groups


def age_band(age: pd.Series) -> pd.Series:
    """``AGE_BANDS`` label of each age (``Unknown`` for NaN or below the first band)."""
    bounds = [lower for _, lower in AGE_BANDS] + [np.inf]
    bands = pd.cut(age, bins=bounds, right=False, labels=[label for label, _ in AGE_BANDS])
    return bands.astype(object).where(bands.notna(), UNKNOWN)


def stay_subgroups(
    cohort: pd.DataFrame, patients: pd.DataFrame, admissions: pd.DataFrame
) -> pd.DataFrame:
    """``stay_id`` and one column per ``ATTRIBUTES`` for every stay of ``cohort`` (same order)."""
    require_columns(
        cohort, ["stay_id", "subject_id", "hadm_id", "intime"], "the cohort", SubgroupError
    )
    require_columns(patients, ["subject_id", "gender"], "patients", SubgroupError)
    require_columns(admissions, ["hadm_id", "race", "insurance"], "admissions", SubgroupError)
    genders = patients.drop_duplicates("subject_id").set_index("subject_id")["gender"]
    sex = cohort["subject_id"].map(genders).map({"F": "Female", "M": "Male"}).fillna(UNKNOWN)
    admission = admissions.drop_duplicates("hadm_id").set_index("hadm_id")
    insurance = cohort["hadm_id"].map(admission["insurance"]).fillna("").astype(str).str.strip()
    return pd.DataFrame(
        {
            "stay_id": cohort["stay_id"].to_numpy(),
            "sex": sex.to_numpy(),
            "age_band": age_band(age_at_intime(cohort, patients)).to_numpy(),
            "race": race_group(cohort["hadm_id"].map(admission["race"])).to_numpy(),
            "insurance": insurance.where(insurance != "", UNKNOWN).to_numpy(),
        }
    )
