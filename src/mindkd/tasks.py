"""Task definitions: everything that differs between prediction tasks, in one place.

A task names its kind (binary / multilabel / multiclass), its label columns, the window of EHR input it
sees and the window in which a chest X-ray may be paired with a stay. Pipelines are instantiated once per
task namespace and read the definition by name, so a new task (a multiclass one, say) is a new entry here
plus its label function, with no change to the pipelines, models or losses.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from mindkd.models.batch import TaskKind, TaskSpec

WindowKind = Literal["first_hours", "stay"]


@dataclass(frozen=True)
class TaskDefinition:
    """A prediction task: its spec and its time windows.

    ``input_window``/``image_window``: ``first_hours`` = [intime, intime + ``hours``) for the EHR input and
    [intime, intime + ``hours``] (both ends inclusive) for the image; ``stay`` = the whole stay
    (EHR capped at ``max_hours``), images in [intime, outtime].
    """

    name: str
    kind: TaskKind
    labels: tuple[str, ...]
    window: WindowKind
    hours: int | None = None
    min_stay_hours: float = 0.0

    @property
    def spec(self) -> TaskSpec:
        return TaskSpec(self.name, self.kind, self.labels)


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
            min_stay_hours=48.0,
        )
    if name == "pheno":
        return TaskDefinition(
            name="pheno", kind="multilabel", labels=_phenotype_labels(), window="stay"
        )
    raise ValueError(
        f"Unknown task {name!r} (config key `<namespace>.task.name`); known tasks: ihm, pheno."
    )
