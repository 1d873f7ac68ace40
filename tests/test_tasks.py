"""The task registry: one definition per task, its windows set by ``<task>.task`` parameters."""

from __future__ import annotations

import pandas as pd
import pytest
from pydantic import ValidationError

from mindkd.processing.pairing import window_end
from mindkd.tasks import TASKS, TaskParams, get_task


def test_every_namespace_has_a_definition() -> None:
    assert TASKS == ("ihm", "pheno")
    assert {get_task(name).name for name in TASKS} == set(TASKS)


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
    with pytest.raises(ValidationError, match=r"<namespace>.task.name.*ihm, pheno"):
        TaskParams(name="los")
