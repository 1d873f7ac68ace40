"""Patient groups per stay: sex, age band, race group, insurance; nothing dropped."""

from __future__ import annotations

import pandas as pd
import pytest

from mindkd.processing.subgroups import SubgroupError, age_band, race_group, stay_subgroups


def test_age_bands_have_closed_lower_bounds() -> None:
    ages = pd.Series([18, 39, 40, 59.9, 60, 79, 80, 91, 17, None])
    assert age_band(ages).tolist() == [
        "18-39", "18-39", "40-59", "40-59", "60-79", "60-79", "80+", "80+", "Unknown", "Unknown"
    ]  # fmt: skip


def test_race_groups_fold_the_mimic_categories() -> None:
    races = [
        "WHITE", "WHITE - EASTERN EUROPEAN", "BLACK/AFRICAN", "HISPANIC OR LATINO",
        "SOUTH AMERICAN", "ASIAN - CHINESE", "AMERICAN INDIAN/ALASKA NATIVE", "PORTUGUESE",
        "UNKNOWN", "PATIENT DECLINED TO ANSWER", "", None,
    ]  # fmt: skip
    assert race_group(pd.Series(races)).tolist() == [
        "White", "White", "Black", "Hispanic/Latino", "Hispanic/Latino", "Asian", "Other",
        "Other", "Unknown", "Unknown", "Unknown", "Unknown",
    ]  # fmt: skip


def test_every_stay_gets_every_attribute_in_cohort_order() -> None:
    cohort = pd.DataFrame(
        {
            "stay_id": [3, 1, 2],
            "subject_id": [10, 11, 12],
            "hadm_id": [100, 101, 999],  # 999: no admission row
            "intime": pd.to_datetime(["2150-01-01", "2150-06-01", "2150-01-01"]),
        },
        index=[7, 8, 9],
    )
    patients = pd.DataFrame(
        {
            "subject_id": [10, 11],
            "gender": ["F", "M"],
            "anchor_age": [30, 85],
            "anchor_year": [2145, 2150],
        }
    )
    admissions = pd.DataFrame(
        {"hadm_id": [100, 101], "race": ["BLACK/HAITIAN", None], "insurance": ["Medicaid", " "]}
    )
    table = stay_subgroups(cohort, patients, admissions)
    assert table.to_dict("list") == {
        "stay_id": [3, 1, 2],
        "sex": ["Female", "Male", "Unknown"],
        "age_band": ["18-39", "80+", "Unknown"],
        "race": ["Black", "Unknown", "Unknown"],
        "insurance": ["Medicaid", "Unknown", "Unknown"],
    }


def test_a_missing_column_is_named() -> None:
    cohort = pd.DataFrame({"stay_id": [1], "subject_id": [1], "intime": [pd.Timestamp(0)]})
    with pytest.raises(SubgroupError, match=r"the cohort lacks column\(s\) \['hadm_id'\]"):
        stay_subgroups(cohort, pd.DataFrame(), pd.DataFrame())
