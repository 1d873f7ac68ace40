"""Task definitions: everything that differs between prediction tasks, in one place.

A task names its kind (binary / multilabel / multiclass), its label columns, the window of EHR input it
sees and the window in which a chest X-ray may be paired with a stay. ``TASKS`` are the task namespaces
every pipeline is instantiated for; each namespace's ``<task>.task`` parameters (``TaskParams``) name
the definition and set its windows, and every layer reads the definition through
``TaskParams.definition``. A new task (a multiclass one, say) is a new entry here plus its label
function, with no change to the pipelines, models or losses.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Literal

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from mindkd.models.batch import TaskKind, TaskSpec
from mindkd.processing import cohort as cohort_rules
from mindkd.processing.labels import MortalitySource

WindowKind = Literal["first_hours", "stay"]
TASKS: tuple[str, ...] = ("ihm", "pheno", "los")  # the task namespaces of every clinical pipeline
#: The AV-digits benchmark (spoken + handwritten digits, ``mindkd.avdigits``): its own source
#: adapter, then the same teachers and distill pipelines, in namespace ``avdigits`` (``kedro run
#: --pipelines avdigits``; not part of the default run).
AVDIGITS = "avdigits"

# Teacher ensemble member SLOTS per modality (Kedro's dynamic-pipeline pattern): the teachers pipeline
# has one namespace per slot (`<task>.teacher_<slot>`); each slot's encoder and settings are parameters
# (`<task>.teachers.<modality>.members.<slot>` in parameters_teachers.yml), exactly these slots.
TEACHER_MEMBERS: dict[str, tuple[str, ...]] = {
    "ehr": ("lstm_small", "lstm_large", "transformer"),
    "cxr": ("resnet18", "resnet34", "densenet"),
}


@dataclass(frozen=True)
class CohortInputs:
    """Everything a task's cohort builder may read: the shared stay cohort and the sources."""

    stays: pd.DataFrame
    stays_with_events: np.ndarray
    admissions: pd.DataFrame
    diagnoses_icd: pd.DataFrame
    subject_splits: pd.DataFrame
    patients: pd.DataFrame | None = None
    label_source: MortalitySource = "hospital_expire_flag"
    require_events: bool = True


CohortBuilder = Callable[[CohortInputs, "cohort_rules.CohortFlow", "TaskDefinition"], pd.DataFrame]


@dataclass(frozen=True)
class TaskDefinition:
    """A prediction task: its spec and its time windows.

    ``window``: ``first_hours`` = [intime, intime + ``hours``) for the EHR input and
    [intime, intime + ``hours``] (both ends inclusive) for the image; ``stay`` = the whole stay
    (EHR capped at the task's ``max_hours`` parameter), images in [intime, outtime].
    ``build_cohort`` turns the shared stay cohort into the task cohort with its labels.
    """

    name: str
    kind: TaskKind
    labels: tuple[str, ...]
    window: WindowKind
    hours: int | None = None
    build_cohort: CohortBuilder | None = None
    ordinal: bool = False  # multiclass classes in order (los): linearly weighted κ is scored

    @property
    def spec(self) -> TaskSpec:
        return TaskSpec(self.name, self.kind, self.labels)

    @property
    def event_window_hours(self) -> int | None:
        """Hours from intime in which a stay needs an event (None: anywhere in the stay)."""
        return self.hours if self.window == "first_hours" else None

    @property
    def pairing_window(self) -> str | int:
        """The image window for ``processing.pairing.pair_stays_with_images``."""
        return "stay" if self.window == "stay" else int(self.hours or 0)


def _ihm_cohort(
    inputs: CohortInputs, flow: cohort_rules.CohortFlow, task: TaskDefinition
) -> pd.DataFrame:
    return cohort_rules.ihm_cohort(
        inputs.stays,
        inputs.stays_with_events,
        inputs.admissions,
        inputs.subject_splits,
        hours=_hours(task),
        label_source=inputs.label_source,
        patients=inputs.patients,
        flow=flow,
    )


def _pheno_cohort(
    inputs: CohortInputs, flow: cohort_rules.CohortFlow, task: TaskDefinition
) -> pd.DataFrame:
    return cohort_rules.pheno_cohort(
        inputs.stays,
        inputs.diagnoses_icd,
        inputs.subject_splits,
        inputs.stays_with_events,
        require_events=inputs.require_events,
        flow=flow,
    )


def _los_cohort(
    inputs: CohortInputs, flow: cohort_rules.CohortFlow, task: TaskDefinition
) -> pd.DataFrame:
    return cohort_rules.los_cohort(
        inputs.stays,
        inputs.stays_with_events,
        inputs.subject_splits,
        hours=_hours(task),
        flow=flow,
    )


def _phenotype_labels() -> tuple[str, ...]:
    from mindkd.mimic.phenotypes import PHENOTYPE_COLUMNS

    return tuple(PHENOTYPE_COLUMNS)


def _hours(task: TaskDefinition) -> int:
    if task.hours is None:
        raise ValueError(f"task {task.name!r}: a first_hours window needs hours")
    return task.hours


def get_task(name: str) -> TaskDefinition:
    """The definition of task ``name``; the config key is ``<namespace>.task.name``."""
    if name == "ihm":
        return TaskDefinition(
            name="ihm",
            kind="binary",
            labels=("y",),
            window="first_hours",
            hours=48,
            build_cohort=_ihm_cohort,
        )
    if name == "pheno":
        return TaskDefinition(
            name="pheno",
            kind="multilabel",
            labels=_phenotype_labels(),
            window="stay",
            build_cohort=_pheno_cohort,
        )
    if name == AVDIGITS:
        from mindkd.avdigits import LABELS

        return TaskDefinition(name=AVDIGITS, kind="multiclass", labels=LABELS, window="stay")
    if name == "los":
        from mindkd.mimic.los import LOS_COLUMNS

        return TaskDefinition(
            name="los",
            kind="multiclass",
            labels=LOS_COLUMNS,
            window="first_hours",
            hours=48,
            build_cohort=_los_cohort,
            ordinal=True,
        )
    raise ValueError(
        f"Unknown task {name!r} (config key `<namespace>.task.name`); known tasks: ihm, pheno, los, "
        "avdigits."
    )


class TaskParams(BaseModel):
    """What defines a task's cohort, inputs and windows (key ``<task>.task``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    hours: int | None = Field(
        None,
        ge=1,
        description="observation window of a first-hours task (ihm: 48): EHR input in "
        "[intime, intime + hours), images in [intime, intime + hours]; null = the task's own",
    )
    max_hours: int | None = Field(None, ge=1, description="cap of whole-stay inputs (pheno)")
    label_source: MortalitySource = Field(
        "hospital_expire_flag",
        description="ihm label rule: hospital_expire_flag | death_date | deathtime "
        "(mindkd.processing.labels); the others are counted against it in the cohort report",
    )
    require_events: bool = False

    @field_validator("name")
    @classmethod
    def _known(cls, value: str) -> str:
        get_task(value)
        return value

    @model_validator(mode="after")
    def _window(self) -> TaskParams:
        if self.hours is not None and get_task(self.name).window != "first_hours":
            raise ValueError(
                f"`{self.name}.task.hours`: task {self.name!r} reads the whole stay; its input is "
                "capped by `max_hours` instead"
            )
        return self

    @property
    def definition(self) -> TaskDefinition:
        """The task's definition with the windows these parameters set."""
        task = get_task(self.name)
        return task if self.hours is None else replace(task, hours=self.hours)
