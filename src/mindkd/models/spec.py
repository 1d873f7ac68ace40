"""What a network is, as data, and the one factory that builds it.

Every network of the project is built here from a spec, by the teachers, the distill stage and
serving alike:

- ``build_member(MemberSpec, num_outputs, ehr_channels)``: a teacher member, one encoder and one
  linear head (``UnimodalClassifier``);
- ``build_network(NetworkSpec)``: a two-modality network, the multi-head student
  (``multi_head``), the single-head joint model with a zero image for a missing X-ray
  (``zero_filled``) or MedFuse (``medfuse``).

A ``NetworkSpec`` holds what the forward pass depends on (encoders, fusion, head dropout, routing,
the image normalisation fitted on train images and the EHR input it reads); the trained-model card
(``mindkd.training.spec.ModelSpec``) extends it with how the model was trained. Serving validates a
card as a ``NetworkSpec`` and ignores the training fields.

>>> spec = MemberSpec(encoder="lstm", settings={"hidden": 8})
>>> build_member(spec, num_outputs=1, ehr_channels=5).encoder.in_channels
5
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from mindkd.mimic.variables import CategoricalEncoding
from mindkd.models.batch import TaskKind, TaskSpec
from mindkd.models.medfuse import MedFuseModel, ZeroFilledJointModel
from mindkd.models.registry import (
    Modality,
    RegistryError,
    build_encoder,
    encoder_modality,
    encoder_settings,
    list_encoders,
    with_ehr_channels,
)
from mindkd.models.student import MultiHeadStudent, RoutedModel, Routing, UnimodalClassifier

Architecture = Literal["multi_head", "zero_filled", "medfuse"]
MissingImage = Literal["black", "mean"]


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _check_encoder(name: str, settings: dict[str, Any]) -> None:
    """``name`` is a registered encoder and ``settings`` are keywords it takes."""
    if name not in list_encoders():
        raise RegistryError(f"unknown encoder {name!r}; registered: {', '.join(list_encoders())}")
    unknown = sorted(set(settings) - set(encoder_settings(name)))
    if unknown:
        raise RegistryError(
            f"encoder {name!r} does not take {unknown}; it takes {sorted(encoder_settings(name))}"
        )


class EncoderSpec(_Spec):
    """An encoder from the registry (``mindkd.models.list_encoders()``) and its settings."""

    name: str = Field(description="registry name, e.g. lstm, gru, transformer, resnet18")
    settings: dict[str, Any] = Field(default_factory=dict, description="the encoder's keywords")

    @model_validator(mode="after")
    def _known(self) -> EncoderSpec:
        _check_encoder(self.name, self.settings)
        return self

    def check_modality(self, modality: Modality, key: str) -> None:
        if encoder_modality(self.name) != modality:
            raise ValueError(
                f"{key}: encoder {self.name!r} is a {encoder_modality(self.name)} encoder; choose "
                f"one of {list_encoders(modality)}"
            )


class MemberSpec(_Spec):
    """One teacher ensemble member: an encoder from the registry, its settings, the head's dropout."""

    encoder: str = Field(description="registry name, e.g. lstm, transformer, resnet18, densenet121")
    settings: dict[str, Any] = Field(default_factory=dict, description="the encoder's keywords")
    head_dropout: float = Field(0.0, ge=0.0, lt=1.0)

    @model_validator(mode="after")
    def _known_encoder(self) -> MemberSpec:
        _check_encoder(self.encoder, self.settings)
        return self


class ImageNormaliser(_Spec):
    """Pixel normalisation fitted on train images: ``(v / 255 − mean) / std``; and the image side."""

    mean: float
    std: float = Field(gt=0.0)
    image_size: int = Field(ge=1)
    images: int = Field(ge=0, description="train images the statistics come from")


class EhrInput(_Spec):
    """The EHR input a model reads: the store's categorical encoding and its column names
    (``mindkd.processing.normalise.store_layout``)."""

    encoding: CategoricalEncoding
    features: tuple[str, ...] = Field(min_length=1)

    @property
    def width(self) -> int:
        return len(self.features)


class NetworkSpec(BaseModel):
    """A two-modality network: what to build and how its inputs are prepared.

    Unknown fields are ignored so that serving can read a whole model card as one;
    ``mindkd.training.spec.ModelSpec`` (the card) forbids them.
    """

    model_config = ConfigDict(extra="ignore", frozen=True)

    variant: str = "mind"
    architecture: Architecture
    task: str
    kind: TaskKind
    labels: tuple[str, ...] = Field(min_length=1)
    ehr_encoder: EncoderSpec
    cxr_encoder: EncoderSpec
    fusion: str | None = None
    fusion_settings: dict[str, Any] = Field(default_factory=dict)
    head_dropout: float = 0.0
    routing: Routing = "fused"
    image: ImageNormaliser
    # zero_filled only: a missing X-ray is an all-black image (raw pixels 0) or the train-mean image
    # (0 after normalisation). None: another architecture, or a zero_filled card written when the
    # train-mean image was the only rule (built as "mean").
    missing_image: MissingImage | None = None
    ehr_input: EhrInput | None = None  # None: a card written before the EHR width was recorded

    @model_validator(mode="after")
    def _ehr_width(self) -> NetworkSpec:
        if self.ehr_input is not None and self.ehr_input.width != self.ehr_channels:
            raise ValueError(
                f"ehr_input names {self.ehr_input.width} columns but the EHR encoder takes "
                f"in_channels={self.ehr_channels}"
            )
        return self

    @property
    def missing_fill(self) -> float:
        """A missing X-ray's pixel value in normalised units (``missing_image``; zero_filled)."""
        return -self.image.mean / self.image.std if self.missing_image == "black" else 0.0

    @property
    def task_spec(self) -> TaskSpec:
        return TaskSpec(self.task, self.kind, self.labels)

    @property
    def ehr_channels(self) -> int:
        """The EHR encoder's input width (columns per hour), as ``build_network`` builds it."""
        settings = self.ehr_encoder.settings
        default = encoder_settings(self.ehr_encoder.name)["in_channels"]
        return int(settings.get("in_channels", default))


def build_network(spec: NetworkSpec) -> RoutedModel:
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
            fill_value=spec.missing_fill,
        )
    return MedFuseModel(ehr, cxr, k, **spec.fusion_settings)


def build_member(
    member: MemberSpec, num_outputs: int, *, ehr_channels: int | None = None
) -> UnimodalClassifier:
    """A teacher member's network with a fresh head (seed torch first for reproducible weights).

    An EHR member needs ``ehr_channels``, the width of the time-series store it reads; a CXR member
    ignores it.
    """
    settings = with_ehr_channels(member.encoder, member.settings, ehr_channels)
    encoder = build_encoder(member.encoder, **settings)
    return UnimodalClassifier(encoder, num_outputs, head_dropout=member.head_dropout)
