"""The task registry: one definition per task, its windows set by ``<task>.task`` parameters."""

from __future__ import annotations

import pandas as pd
import pytest
from pydantic import ValidationError

from mindkd.mimic.los import LOS_COLUMNS
from mindkd.processing.pairing import window_end
from mindkd.tasks import AVDIGITS, TASKS, TaskParams, get_task


def test_every_namespace_has_a_definition() -> None:
    assert TASKS == ("ihm", "pheno", "los")
    assert {get_task(name).name for name in (*TASKS, AVDIGITS)} == {*TASKS, AVDIGITS}
    los = get_task("los")
    assert (los.kind, los.window, los.hours) == ("multiclass", "first_hours", 48)
    assert los.labels == LOS_COLUMNS and len(los.labels) == 10
    assert get_task(AVDIGITS).kind == "multiclass" and len(get_task(AVDIGITS).labels) == 10


def test_ihm_hours_default_to_the_definition_and_follow_the_parameter() -> None:
    assert TaskParams(name="ihm").definition.hours == 48
    task = TaskParams(name="ihm", hours=24).definition
    assert (task.hours, task.event_window_hours, task.pairing_window) == (24, 24, 24)
    cohort = pd.DataFrame({"intime": [pd.Timestamp("2130-01-01")], "outtime": [pd.NaT]})
    assert window_end(cohort, task.pairing_window).iloc[0] == pd.Timestamp("2130-01-02")


def test_a_whole_stay_task_refuses_hours() -> None:
    assert TaskParams(name="pheno").definition.pairing_window == "stay"
    with pytest.raises(ValidationError, match=r"pheno.task.hours.*max_hours"):
        TaskParams(name="pheno", hours=24)


def test_unknown_task_names_the_key() -> None:
    with pytest.raises(ValidationError, match=r"<namespace>.task.name.*ihm, pheno, los"):
        TaskParams(name="lengthofstay")
