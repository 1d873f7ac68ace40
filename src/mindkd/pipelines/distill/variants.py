"""The model variants the distill stage trains, each described by one ``ModelSpec`` (a model card).

=============  ====================  ==========================================================
variant        architecture          loss
=============  ====================  ==========================================================
mind           MultiHeadStudent      MIND (task + KD against the cached ensemble targets)
no_kd          the same student      the same code path with ``alpha = 0``
zero_filled    ZeroFilledJointModel  task loss; a missing X-ray becomes a zero image, one head
medfuse        MedFuseModel          task loss; teacher-sized encoders, LSTM over modality tokens
=============  ====================  ==========================================================

A spec holds everything needed to rebuild, train and serve the model: encoders, fusion, loss, fit
settings, routing, the image normalisation fitted on train images, the EHR input it reads
(``ehr_input``: the encoding and column names of the ``<task>.timeseries`` store; the EHR encoder's
``in_channels`` is its width, written into ``ehr_encoder.settings``), and its size next to the
teachers'. It is saved as JSON next to the weights.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from mindkd.models.batch import TaskKind, TaskSpec
from mindkd.models.medfuse import MedFuseModel, ZeroFilledJointModel
from mindkd.models.registry import (
    build_encoder,
    count_parameters,
    encoder_settings,
    with_ehr_channels,
)
from mindkd.models.student import MultiHeadStudent, RoutedModel, Routing
from mindkd.processing.normalise import CategoricalEncoding
from mindkd.tasks import TaskDefinition
from mindkd.training.losses import EnsembleCombine, MindLossConfig

from .params import DataSetting, DistillFitParams, DistillParams, EncoderParams

logger = logging.getLogger(__name__)

Architecture = Literal["multi_head", "zero_filled", "medfuse"]
VARIANTS: tuple[str, ...] = ("mind", "no_kd", "zero_filled", "medfuse")
STUDENTS: tuple[str, ...] = ("mind", "no_kd")  # held to the size budget


class StudentTooLargeError(ValueError):
    """A student above ``max_teacher_fraction`` of both teacher ensembles' parameters."""


class ImageNormaliser(BaseModel):
    """Pixel normalisation fitted on train images: ``(v / 255 − mean) / std``; and the image side."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    mean: float
    std: float = Field(gt=0.0)
    image_size: int = Field(ge=1)
    images: int = Field(ge=0, description="train images the statistics come from")


class EhrInput(BaseModel):
    """The EHR input a model reads: the store's categorical encoding and its column names
    (``mindkd.processing.normalise.store_layout``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    encoding: CategoricalEncoding
    features: tuple[str, ...] = Field(min_length=1)

    @property
    def width(self) -> int:
        return len(self.features)


class ModelSpec(BaseModel):
    """A trained-model card: what to build, how to train it, how its inputs are prepared."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    variant: str
    architecture: Architecture
    task: str
    kind: TaskKind
    labels: tuple[str, ...]
    ehr_encoder: EncoderParams
    cxr_encoder: EncoderParams
    fusion: str | None = None
    fusion_settings: dict[str, Any] = Field(default_factory=dict)
    head_dropout: float = 0.0
    loss: MindLossConfig
    combine: EnsembleCombine = "mean_logits"
    data: DataSetting = "partial"
    routing: Routing = "fused"
    fit: DistillFitParams
    image: ImageNormaliser
    ehr_input: EhrInput | None = None  # None: a card written before the EHR width was recorded
    parameters: int = 0
    teacher_parameters: int | None = None
    teacher_fraction: float | None = None

    @model_validator(mode="after")
    def _ehr_width(self) -> ModelSpec:
        if self.ehr_input is not None and self.ehr_input.width != self.ehr_channels:
            raise ValueError(
                f"ehr_input names {self.ehr_input.width} columns but the EHR encoder takes "
                f"in_channels={self.ehr_channels}"
            )
        return self

    @property
    def task_spec(self) -> TaskSpec:
        return TaskSpec(self.task, self.kind, self.labels)

    @property
    def ehr_channels(self) -> int:
        """The EHR encoder's input width (columns per hour), as ``build_model`` builds it."""
        settings = self.ehr_encoder.settings
        default = encoder_settings(self.ehr_encoder.name)["in_channels"]
        return int(settings.get("in_channels", default))

    @property
    def uses_teachers(self) -> bool:
        """Whether training reads the teacher targets (``alpha > 0``)."""
        return self.loss.alpha > 0.0


def build_model(spec: ModelSpec) -> RoutedModel:
    """The untrained network of ``spec`` (seed torch first for reproducible initial weights)."""
    ehr = build_encoder(spec.ehr_encoder.name, **spec.ehr_encoder.settings)
    cxr = build_encoder(spec.cxr_encoder.name, **spec.cxr_encoder.settings)
    k = len(spec.labels)
    if spec.architecture == "multi_head":
        return MultiHeadStudent(
            ehr,
            cxr,
            k,
            fusion=spec.fusion or "concat",
            head_dropout=spec.head_dropout,
            fusion_kwargs=spec.fusion_settings,
        )
    if spec.architecture == "zero_filled":
        return ZeroFilledJointModel(
            ehr,
            cxr,
            k,
            spec.image.image_size,
            fusion=spec.fusion or "concat",
            head_dropout=spec.head_dropout,
            fusion_kwargs=spec.fusion_settings,
        )
    return MedFuseModel(ehr, cxr, k, **spec.fusion_settings)


def _architecture(variant: str, params: DistillParams) -> dict[str, Any]:
    if variant in STUDENTS:
        model = params.student
        return {"architecture": "multi_head", **model.model_dump()}
    if variant == "zero_filled":
        return {"architecture": "zero_filled", **params.baselines.zero_filled.model_dump()}
    if variant == "medfuse":
        medfuse = params.baselines.medfuse
        return {
            "architecture": "medfuse",
            "ehr_encoder": medfuse.ehr_encoder.model_dump(),
            "cxr_encoder": medfuse.cxr_encoder.model_dump(),
            "fusion": "medfuse",
            "fusion_settings": medfuse.model_dump(include={"token_dim", "hidden", "dropout"}),
        }
    raise ValueError(f"unknown variant {variant!r}; known: {VARIANTS}")


def specify(
    variant: str,
    params: DistillParams,
    task: TaskDefinition,
    teacher_sizes: Mapping[str, int],
    image: ImageNormaliser,
    ehr_input: EhrInput,
) -> ModelSpec:
    """The spec of ``variant`` with its parameter count and its size next to the teachers'.

    Only ``mind`` distils (``alpha`` from the parameters); the others train with ``alpha = 0``.
    The EHR encoder takes ``ehr_input.width`` columns per hour (``in_channels`` in its settings).
    Raises ``StudentTooLargeError`` when a student exceeds ``max_teacher_fraction``.
    """
    alpha = None if variant == "mind" else 0.0
    architecture = _architecture(variant, params)
    ehr = architecture["ehr_encoder"]
    ehr["settings"] = with_ehr_channels(ehr["name"], ehr["settings"], ehr_input.width)
    spec = ModelSpec(
        variant=variant,
        task=task.name,
        kind=task.kind,
        labels=task.labels,
        loss=params.loss_config(alpha),
        combine=params.combine,
        data=params.data,
        routing=params.routing,
        fit=params.fit,
        image=image,
        ehr_input=ehr_input,
        **architecture,
    )
    parameters = count_parameters(build_model(spec))
    teachers = teacher_sizes.get("ensembles_total") or None
    fraction = parameters / teachers if teachers else None
    limit = params.max_teacher_fraction
    if variant in STUDENTS and fraction is not None and limit is not None and fraction > limit:
        raise StudentTooLargeError(
            f"the {variant} student has {parameters:,} parameters, {fraction:.3f} of the teacher "
            f"ensembles' {teachers:,} (limit {limit}, key `distill.max_teacher_fraction`): choose "
            "smaller encoders under `distill.student`"
        )
    logger.info(
        "%s: %s, %s parameters (%s of the teacher ensembles)",
        variant,
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
