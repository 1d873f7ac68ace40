"""Length-of-stay classes: mimic3-benchmarks' buckets of the ICU stay left after the window."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mindkd.mimic.los import LOS_COLUMNS, los_class
from mindkd.processing import cohort as rules
from mindkd.processing.labels import LabelError, los_labels


def test_ten_named_classes_with_half_open_day_buckets() -> None:
    assert LOS_COLUMNS[0] == "los_0_1d" and LOS_COLUMNS[8] == "los_8_14d"
    assert LOS_COLUMNS[-1] == "los_14d_plus" and len(LOS_COLUMNS) == 10
    hours = np.array([0.0, 23.99, 24.0, 47.0, 7 * 24 + 1, 8 * 24, 14 * 24 - 0.1, 14 * 24, 900])
    assert los_class(hours).tolist() == [0, 0, 1, 1, 7, 8, 8, 9, 9]
    assert los_class(np.array([-0.5, np.nan])).tolist() == [-1, -1]


def _stays(spans_h: list[float]) -> pd.DataFrame:
    intime = pd.Timestamp("2150-01-01")
    return pd.DataFrame(
        {
            "subject_id": np.arange(len(spans_h)) + 1,
            "hadm_id": np.arange(len(spans_h)) + 100,
            "stay_id": np.arange(len(spans_h)) + 1000,
            "intime": intime,
            "outtime": [intime + pd.Timedelta(hours=h) for h in spans_h],
        }
    )


def test_labels_are_one_hot_of_the_remaining_stay() -> None:
    labels, stats = los_labels(_stays([48.0, 60.0, 48 + 24 * 9.5, 48 + 24 * 20]), hours=48)
    assert labels[list(LOS_COLUMNS)].sum(axis=1).tolist() == [1, 1, 1, 1]
    assert labels[list(LOS_COLUMNS)].to_numpy().argmax(axis=1).tolist() == [0, 0, 8, 9]
    assert stats["los_classes"]["los_0_1d"] == 2 and sum(stats["los_classes"].values()) == 4


def test_a_stay_shorter_than_the_window_is_an_error_not_a_drop() -> None:
    with pytest.raises(LabelError, match=r"1 stay\(s\) have no time left after the first 48 h"):
        los_labels(_stays([30.0, 60.0]), hours=48)


def test_the_cohort_keeps_the_ihm_stays_and_records_each_step() -> None:
    stays = _stays([30.0, 60.0, 100.0, 200.0])
    splits = pd.DataFrame({"subject_id": stays["subject_id"], "split": "train"})
    flow = rules.CohortFlow()
    table = rules.los_cohort(stays, [1001, 1002], splits, hours=48, flow=flow)
    assert table["stay_id"].tolist() == [1001, 1002]  # 1000 too short, 1003 without an event
    assert [step.step for step in flow.steps][-2:] == ["los_min_stay", "los_events_in_window"]
    assert list(table.columns) == [*rules.COHORT_COLUMNS, *LOS_COLUMNS]
