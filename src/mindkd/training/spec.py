"""The model variants the distill stage trains, each described by one ``ModelSpec`` (a model card).

=============  ====================  ==========================================================
variant        architecture          loss
=============  ====================  ==========================================================
mind           MultiHeadStudent      MIND (task + KD against the cached ensemble targets)
no_kd          the same student      the same code path with ``alpha = 0``
zero_filled    ZeroFilledJointModel  task loss; a missing X-ray becomes a zero image, one head
medfuse        MedFuseModel          task loss; teacher-sized encoders, LSTM over modality tokens
mckd           the MIND student      MCKD: task loss + meta-learned cross-modal KD between heads
=============  ====================  ==========================================================

A spec holds everything needed to rebuild, train and serve the model: the network
(``mindkd.models.spec.NetworkSpec``: encoders, fusion, routing, the image normalisation fitted on
train images, the EHR input it reads) plus the loss, the ensemble rule, the data setting, the fit
settings and its size next to the teachers'. It is saved as JSON next to the weights.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any, Literal

from pydantic import ConfigDict, model_validator

from mindkd.models.registry import count_parameters
from mindkd.models.spec import NetworkSpec, build_network
from mindkd.training.fit import LoaderFitConfig
from mindkd.training.losses import EnsembleCombine, MindLossConfig
from mindkd.training.mckd import MckdConfig

logger = logging.getLogger(__name__)

VARIANTS: tuple[str, ...] = ("mind", "no_kd", "zero_filled", "medfuse", "mckd")
STUDENTS: tuple[str, ...] = ("mind", "no_kd", "mckd")  # held to the size budget
TUNED: tuple[str, ...] = ("mind", "no_kd", "zero_filled", "medfuse")  # the tune study's methods
DataSetting = Literal["paired", "partial"]


class StudentTooLargeError(ValueError):
    """A student above ``max_teacher_fraction`` of both teacher ensembles' parameters."""


class ModelSpec(NetworkSpec):
    """A trained-model card: the network, how it was trained, and its size."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    loss: MindLossConfig
    mckd: MckdConfig | None = None  # set: trained with MCKD (``training.mckd``), alpha must be 0
    combine: EnsembleCombine = "mean_logits"
    data: DataSetting = "partial"
    fit: LoaderFitConfig
    parameters: int = 0
    teacher_parameters: int | None = None
    teacher_fraction: float | None = None

    @model_validator(mode="after")
    def _mckd_alone(self) -> ModelSpec:
        if self.mckd is not None and (self.loss.alpha > 0.0 or self.architecture != "multi_head"):
            raise ValueError(
                f"{self.variant}: MCKD distils between the heads of the multi-head student and "
                f"replaces MIND's teacher term: it needs architecture multi_head and alpha 0, got "
                f"{self.architecture} and alpha {self.loss.alpha}"
            )
        return self

    @property
    def uses_teachers(self) -> bool:
        """Whether training reads the teacher targets (``alpha > 0``)."""
        return self.loss.alpha > 0.0


def sized_spec(
    fields: Mapping[str, Any],
    teacher_sizes: Mapping[str, int],
    max_teacher_fraction: float | None,
) -> ModelSpec:
    """The spec of ``fields`` with its parameter count and its size next to the teachers'.

    Raises ``StudentTooLargeError`` when a student (``STUDENTS``) exceeds ``max_teacher_fraction``
    of the teacher ensembles' parameters (``teacher_sizes["ensembles_total"]``).
    """
    spec = ModelSpec(**fields)
    parameters = count_parameters(build_network(spec))
    teachers = teacher_sizes.get("ensembles_total") or None
    fraction = parameters / teachers if teachers else None
    limit = max_teacher_fraction
    if spec.variant in STUDENTS and fraction is not None and limit is not None and fraction > limit:
        raise StudentTooLargeError(
            f"the {spec.variant} student has {parameters:,} parameters, {fraction:.3f} of the "
            f"teacher ensembles' {teachers:,} (limit {limit}, key `distill.max_teacher_fraction`): "
            "choose smaller encoders under `distill.student`"
        )
    logger.info(
        "%s: %s, %s parameters (%s of the teacher ensembles)",
        spec.variant,
        spec.architecture,
        f"{parameters:,}",
        "n/a" if fraction is None else f"{fraction:.3f}",
    )
    return spec.model_copy(
        update={
            "parameters": parameters,
            "teacher_parameters": teachers,
            "teacher_fraction": fraction,
        }
    )
