"""Cohort rules of MIMIC.md, their boundaries and order, and the cohort-flow counts."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from mindkd.mimic.phenotypes import PHENOTYPE_COLUMNS
from mindkd.processing.cohort import (
    CohortError,
    CohortFlow,
    build_stay_cohort,
    collect_stays_with_events,
    drop_transfers,
    ihm_cohort,
    keep_adults,
    keep_single_stay_admissions,
    pheno_cohort,
    stays_with_events_in_window,
)

T0 = pd.Timestamp("2150-03-01 08:00:00")
H = pd.Timedelta(hours=1)


def _stay(subject: int, hadm: int, stay: int, units: tuple[str, str], hours: pd.Timedelta) -> dict:
    return {
        "subject_id": subject,
        "hadm_id": hadm,
        "stay_id": stay,
        "first_careunit": units[0],
        "last_careunit": units[1],
        "intime": T0,
        "outtime": T0 + hours,
        "los": hours / pd.Timedelta(days=1),
    }


@pytest.fixture
def icustays() -> pd.DataFrame:
    micu, sicu = "Medical Intensive Care Unit (MICU)", "Surgical Intensive Care Unit (SICU)"
    rows = [
        _stay(1, 101, 1001, (micu, micu), 48 * H),  # exactly 48 h: ihm keeps it
        _stay(2, 102, 1002, (micu, micu), 48 * H - pd.Timedelta(seconds=1)),  # 47:59:59: ihm drops
        _stay(3, 103, 1003, (micu, sicu), 72 * H),  # transfer
        _stay(4, 104, 1004, (micu, micu), 72 * H),  # admission with two stays: both dropped
        _stay(4, 104, 1005, (sicu, sicu), 72 * H),
        _stay(5, 105, 1006, (micu, sicu), 72 * H),  # transfer, so its admission keeps 1007
        _stay(5, 105, 1007, (sicu, sicu), 72 * H),
        _stay(6, 106, 1008, (micu, micu), 100 * H),  # age exactly 18
        _stay(7, 107, 1009, (micu, micu), 100 * H),  # age 17
    ]
    table = pd.DataFrame(rows)
    for column in ("intime", "outtime"):
        table[column] = table[column].astype("datetime64[s]")
    return table


@pytest.fixture
def patients() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "subject_id": [1, 2, 3, 4, 5, 6, 7],
            "gender": ["F", "M", "F", "M", "F", "M", "F"],
            "anchor_age": [60, 45, 70, 50, 66, 16, 15],
            "anchor_year": [2150, 2150, 2150, 2150, 2150, 2148, 2148],
            "anchor_year_group": ["2017 - 2019"] * 7,
            "dod": [pd.NaT] * 7,
        }
    )


@pytest.fixture
def admissions() -> pd.DataFrame:
    hadm = [101, 102, 103, 104, 105, 106, 107]
    admit = T0 - 5 * H
    table = pd.DataFrame(
        {
            "subject_id": [1, 2, 3, 4, 5, 6, 7],
            "hadm_id": hadm,
            "admittime": [admit] * 7,
            "dischtime": [T0 + 200 * H] * 7,
            "deathtime": [T0 + 50 * H, pd.NaT, pd.NaT, pd.NaT, pd.NaT, pd.NaT, pd.NaT],
            "hospital_expire_flag": [1, 0, 0, 0, 0, 0, 0],
        }
    )
    for column in ("admittime", "dischtime", "deathtime"):
        table[column] = table[column].astype("datetime64[s]")
    return table


@pytest.fixture
def subject_splits() -> pd.DataFrame:
    return pd.DataFrame(
        {"subject_id": [1, 2, 3, 4, 5, 6, 7], "split": ["train", "val", "test"] + ["train"] * 4}
    )


def _events(rows: list[tuple[int, pd.Timestamp]]) -> pa.Table:
    return pa.table(
        {
            "stay_id": pa.array([r[0] for r in rows], pa.int64()),
            "charttime": pa.array([r[1] for r in rows], pa.timestamp("s")),
            "channel": pa.array([8] * len(rows), pa.int8()),
            "value": pa.array([80.0] * len(rows), pa.float32()),
            "source": pa.array(["chartevents"] * len(rows), pa.string()),
        }
    )


@pytest.fixture
def event_buckets() -> list[pa.Table]:
    # bucket = stay_id % 2, as pass 1 routes them
    odd = _events(
        [
            (1001, T0 + 48 * H - pd.Timedelta(seconds=1)),  # last second of the window
            (1007, T0 + 48 * H),  # exactly intime + 48 h: outside [intime, intime + 48 h)
            (1009, T0 + H),
        ]
    )
    even = _events([(1008, T0), (1004, T0 + H), (1002, T0 - H)])  # 1002: before intime only
    return [even, odd]


def test_drop_transfers(icustays: pd.DataFrame) -> None:
    kept = drop_transfers(icustays)
    assert kept["stay_id"].tolist() == [1001, 1002, 1004, 1005, 1007, 1008, 1009]


def test_single_stay_admissions_counted_after_transfers(icustays: pd.DataFrame) -> None:
    before_transfers = keep_single_stay_admissions(icustays)
    assert 1007 not in before_transfers["stay_id"].tolist()  # why the order matters
    kept = keep_single_stay_admissions(drop_transfers(icustays))
    assert kept["stay_id"].tolist() == [1001, 1002, 1007, 1008, 1009]


def test_age_boundary(icustays: pd.DataFrame, patients: pd.DataFrame) -> None:
    stays = icustays[icustays["stay_id"].isin([1008, 1009])]
    # 1008: 16 + (2150 - 2148) = 18, kept; 1009: 15 + 2 = 17, dropped
    assert keep_adults(stays, patients)["stay_id"].tolist() == [1008]


def test_stay_cohort_and_flow(icustays: pd.DataFrame, patients: pd.DataFrame) -> None:
    flow = CohortFlow()
    cohort = build_stay_cohort(icustays, patients, flow)
    assert cohort["stay_id"].tolist() == [1001, 1002, 1007, 1008]
    table = flow.to_frame()
    assert table["step"].tolist() == [
        "icustays",
        "drop_missing_times",
        "drop_reversed_times",
        "drop_impossible_ages",
        "drop_transfers",
        "keep_single_stay_admissions",
        "keep_adults",
    ]
    assert table["kept"].tolist() == [9, 9, 9, 9, 7, 5, 4]
    assert table["dropped"].tolist() == [0, 0, 0, 0, 2, 2, 1]
    json.dumps(flow.to_dict())


def test_impossible_stays_are_dropped_each_with_its_reason(
    icustays: pd.DataFrame, patients: pd.DataFrame
) -> None:
    bad = icustays[icustays["stay_id"].isin([1001, 1002])].copy()
    bad["stay_id"] = [2001, 2002]
    bad["hadm_id"] = [901, 902]
    bad["outtime"] = bad["intime"] - H  # 2001: ends an hour before it starts
    bad.loc[bad["stay_id"] == 2002, ["intime", "outtime"]] = [
        pd.Timestamp("2300-01-01"),
        pd.Timestamp("2300-01-03"),
    ]  # fmt: skip  age 60 + 150
    young = icustays[icustays["stay_id"] == 1001].assign(stay_id=2003, hadm_id=903, subject_id=8)
    patients = pd.concat(  # subject 8: anchor_age 20 at 2200, so aged -30 in 2150
        [patients, patients.iloc[:1].assign(subject_id=8, anchor_year=2200, anchor_age=20)]
    )
    flow = CohortFlow()
    cohort = build_stay_cohort(pd.concat([icustays, bad, young]), patients, flow)
    assert not {2001, 2002, 2003} & set(cohort["stay_id"])
    steps = flow.to_frame().set_index("step")
    assert steps.loc["drop_reversed_times", "dropped"] == 1
    assert steps.loc["drop_impossible_ages", "dropped"] == 2  # age 210 and age -30
    assert steps.loc["keep_adults", "dropped"] == 1  # only the real minor of the fixture
    assert "corrupt" in steps.loc["drop_impossible_ages", "reason"]


def test_duplicate_stay_ids_are_named(icustays: pd.DataFrame, patients: pd.DataFrame) -> None:
    doubled = pd.concat([icustays, icustays[icustays["stay_id"] == 1004]])
    with pytest.raises(CohortError, match=r"2 rows sharing 1 stay_id value\(s\), e\.g\. \[1004\]"
                       r".*icustays\.csv\.gz again"):  # fmt: skip
        build_stay_cohort(doubled, patients)


def test_missing_column_is_named(icustays: pd.DataFrame, patients: pd.DataFrame) -> None:
    with pytest.raises(CohortError, match="last_careunit"):
        build_stay_cohort(icustays.drop(columns="last_careunit"), patients)


def test_events_in_window_half_open(icustays: pd.DataFrame, event_buckets: list[pa.Table]) -> None:
    found = stays_with_events_in_window(event_buckets[1], icustays, hours=48)
    assert found.tolist() == [1001, 1009]
    assert collect_stays_with_events(event_buckets, icustays, 48).tolist() == [
        1001,
        1004,
        1008,
        1009,
    ]
    for slice_rows in (1, 2):  # read one or two events at a time: the same stays
        found = collect_stays_with_events(event_buckets, icustays, 48, slice_rows)
        assert found.tolist() == [1001, 1004, 1008, 1009]
    # whole stay [intime, outtime]: 1007's event at 48 h of a 72 h stay counts
    whole = collect_stays_with_events(event_buckets, icustays, None)
    assert whole.tolist() == [1001, 1004, 1007, 1008, 1009]


def test_ihm_cohort(
    icustays: pd.DataFrame,
    patients: pd.DataFrame,
    admissions: pd.DataFrame,
    subject_splits: pd.DataFrame,
    event_buckets: list[pa.Table],
) -> None:
    flow = CohortFlow()
    stays = build_stay_cohort(icustays, patients, flow)
    with_events = collect_stays_with_events(event_buckets, stays, 48)
    cohort = ihm_cohort(
        stays, with_events, admissions, subject_splits, hours=48, patients=patients, flow=flow
    )
    assert cohort.columns.tolist() == [
        "subject_id",
        "hadm_id",
        "stay_id",
        "intime",
        "outtime",
        "split",
        "y",
    ]
    assert cohort["stay_id"].tolist() == [1001, 1008]  # 1002: 47:59:59; 1007: event at 48 h
    assert cohort["y"].tolist() == [1, 0]
    assert cohort["split"].tolist() == ["train", "train"]
    steps = flow.to_frame().set_index("step")
    assert steps.loc["ihm_min_stay", ["kept", "dropped"]].tolist() == [3, 1]
    assert steps.loc["ihm_events_in_window", ["kept", "dropped"]].tolist() == [2, 1]
    assert flow.counts["ihm_positive"] == 1
    assert flow.counts["ihm_label_source"] == "hospital_expire_flag"
    rules = flow.counts["ihm_label_rules"]
    assert {r: rules[r]["disagreements"] for r in rules} == dict.fromkeys(rules, 0)


def test_pheno_cohort(
    icustays: pd.DataFrame,
    patients: pd.DataFrame,
    subject_splits: pd.DataFrame,
    event_buckets: list[pa.Table],
) -> None:
    stays = build_stay_cohort(icustays, patients)
    diagnoses = pd.DataFrame(
        {
            "subject_id": [1, 1, 5],
            "hadm_id": [101, 101, 105],
            "seq_num": [1, 2, 1],
            "icd_code": ["I10", "A419", "0389"],
            "icd_version": [10, 10, 9],
        }
    )
    cohort = pheno_cohort(stays, diagnoses, subject_splits)
    assert cohort.columns.tolist()[:6] == [
        "subject_id",
        "hadm_id",
        "stay_id",
        "intime",
        "outtime",
        "split",
    ]
    assert cohort.columns.tolist()[6:] == list(PHENOTYPE_COLUMNS)
    assert cohort["stay_id"].tolist() == [1001, 1002, 1007, 1008]
    positives = cohort.set_index("stay_id")[list(PHENOTYPE_COLUMNS)]
    assert positives.loc[1001].sum() == 2
    assert positives.loc[1001, ["essential_hypertension", "septicemia"]].tolist() == [1, 1]
    assert positives.loc[1007, "septicemia"] == 1
    assert positives.loc[1002].sum() == 0

    flow = CohortFlow()
    with_events = collect_stays_with_events(event_buckets, stays, None)
    kept = pheno_cohort(
        stays, diagnoses, subject_splits, with_events, require_events=True, flow=flow
    )
    assert kept["stay_id"].tolist() == [1001, 1007, 1008]
    assert flow.to_frame()["dropped"].tolist() == [1]
    with pytest.raises(CohortError, match="require_events"):
        pheno_cohort(stays, diagnoses, subject_splits, require_events=True)


def test_subject_without_split_raises(
    icustays: pd.DataFrame, patients: pd.DataFrame, admissions: pd.DataFrame
) -> None:
    stays = build_stay_cohort(icustays, patients)
    splits = pd.DataFrame({"subject_id": [1, 2], "split": ["train", "test"]})
    with pytest.raises(CohortError, match=r"1 subject\(s\) .* no row in subject_splits"):
        ihm_cohort(stays, np.array([1001, 1008]), admissions, splits, hours=48)
