"""Task definitions: everything that differs between prediction tasks, in one place.

A task names its kind (binary / multilabel / multiclass), its label columns, the window of EHR input it
sees and the window in which a chest X-ray may be paired with a stay. Pipelines are instantiated once per
task namespace and read the definition by name, so a new task (a multiclass one, say) is a new entry here
plus its label function, with no change to the pipelines, models or losses.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd

from mindkd.models.batch import TaskKind, TaskSpec
from mindkd.processing import cohort as cohort_rules
from mindkd.processing.labels import MortalitySource

WindowKind = Literal["first_hours", "stay"]


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
        hours=task.hours or 48,
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


def _phenotype_labels() -> tuple[str, ...]:
    from mindkd.mimic.phenotypes import PHENOTYPE_COLUMNS

    return tuple(PHENOTYPE_COLUMNS)


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
    raise ValueError(
        f"Unknown task {name!r} (config key `<namespace>.task.name`); known tasks: ihm, pheno."
    )
