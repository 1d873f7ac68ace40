"""Typed parameters of the ``distill`` pipeline (``parameters_distill.yml``, key ``<task>.distill``).

Layout per task namespace (``ihm``, ``pheno``)::

    <task>.distill                       DistillParams
        alpha, temperature, distance,    the MIND loss (``mindkd.training.MindLossConfig``), at the top
        fused_target, lambda_*, weight_* level so ``--params "ihm.distill.alpha=0.3"`` reaches it
        combine                          ensemble of the cached member logits: mean_logits | mean_probs
        data                             paired | partial (paired + EHR-only stays)
        routing                          fused | mean (inference on paired samples)
        max_teacher_fraction             student parameters / both teacher ensembles, upper bound
        student                          ModelParams: EHR + CXR encoder, fusion, head dropout
        baselines.zero_filled            ModelParams: single-head joint fusion, zero-filled X-ray
        baselines.medfuse                MedFuseParams: teacher-sized MedFuse (LSTM over tokens)
        fit                              DistillFitParams: FitConfig + loader settings
        evaluation                       EvaluationParams: bootstrap, calibration, latency

Every model forbids unknown keys, and the project checks the whole parameter tree against them
before any node runs (``mindkd.pipelines.params``): a misspelt ``temprature`` or ``distil`` fails at
start-up, whichever pipeline is selected. Every node of the pipeline takes the whole ``params:distill``
(one typed object; Kedro cannot type a key and one of its sub-keys at once).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from mindkd.models.registry import (
    Modality,
    RegistryError,
    encoder_modality,
    encoder_settings,
    list_encoders,
    list_fusions,
)
from mindkd.models.student import Routing
from mindkd.training.fit import AmpMode, LoaderFitConfig
from mindkd.training.losses import EnsembleCombine, MindLossConfig

DataSetting = Literal["paired", "partial"]
Reference = Literal["no_kd", "zero_filled", "medfuse", "teachers"]


class _Params(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class EncoderParams(_Params):
    """An encoder from the registry (``mindkd.models.list_encoders()``) and its settings."""

    name: str = Field(description="registry name, e.g. lstm, gru, transformer, resnet18")
    settings: dict[str, Any] = Field(default_factory=dict, description="the encoder's keywords")

    @model_validator(mode="after")
    def _known(self) -> EncoderParams:
        if self.name not in list_encoders():
            raise RegistryError(
                f"unknown encoder {self.name!r}; registered: {', '.join(list_encoders())}"
            )
        unknown = sorted(set(self.settings) - set(encoder_settings(self.name)))
        if unknown:
            raise RegistryError(
                f"encoder {self.name!r} does not take {unknown}; it takes "
                f"{sorted(encoder_settings(self.name))}"
            )
        return self

    def check_modality(self, modality: Modality, key: str) -> None:
        if encoder_modality(self.name) != modality:
            raise ValueError(
                f"{key}: encoder {self.name!r} is a {encoder_modality(self.name)} encoder; choose "
                f"one of {list_encoders(modality)}"
            )


class ModelParams(_Params):
    """Two encoders and a fusion module (``mindkd.models.list_fusions()``) with its settings."""

    ehr_encoder: EncoderParams
    cxr_encoder: EncoderParams
    fusion: str = "concat"
    fusion_settings: dict[str, Any] = Field(default_factory=dict)
    head_dropout: float = Field(0.0, ge=0.0, lt=1.0)

    @model_validator(mode="after")
    def _consistent(self) -> ModelParams:
        self.ehr_encoder.check_modality("ehr", "ehr_encoder")
        self.cxr_encoder.check_modality("cxr", "cxr_encoder")
        if self.fusion not in list_fusions():
            raise ValueError(f"unknown fusion {self.fusion!r}; registered: {list_fusions()}")
        return self


class MedFuseParams(_Params):
    """MedFuse (Hayat et al., 2022): modality tokens through one LSTM; a missing X-ray is no token."""

    ehr_encoder: EncoderParams
    cxr_encoder: EncoderParams
    token_dim: int = Field(256, ge=1)
    hidden: int = Field(256, ge=1)
    dropout: float = Field(0.0, ge=0.0, lt=1.0)

    @model_validator(mode="after")
    def _consistent(self) -> MedFuseParams:
        self.ehr_encoder.check_modality("ehr", "baselines.medfuse.ehr_encoder")
        self.cxr_encoder.check_modality("cxr", "baselines.medfuse.cxr_encoder")
        return self


class BaselineParams(_Params):
    """The trained baselines; (a) no-KD is the student itself with ``alpha = 0``."""

    zero_filled: ModelParams
    medfuse: MedFuseParams


class DistillFitParams(LoaderFitConfig):
    """``mindkd.training.FitConfig`` (AdamW, schedule, early stopping on val, device, seed) plus
    the loader settings. Shared by the student and every trained baseline."""

    amp: AmpMode = Field("off", description="autocast on CUDA (ignored on the CPU): off|bf16|fp16")


class LatencyParams(_Params):
    """CPU latency per sample at batch 1: ``samples`` timed calls after ``warmup`` untimed ones."""

    samples: int = Field(50, ge=50)
    warmup: int = Field(5, ge=0)
    threads: int = Field(1, ge=1, description="torch CPU threads while timing (restored after)")


class EvaluationParams(_Params):
    """Test-split evaluation: percentile bootstrap, calibration bins, latency, the reference model."""

    n_bootstrap: int = Field(1000, ge=1000, description="resamples for the intervals (>= 1000)")
    level: float = Field(0.95, gt=0.5, lt=1.0)
    seed: int = Field(0, ge=0)
    ece_bins: int = Field(10, ge=2)
    latency: LatencyParams = Field(default_factory=LatencyParams)
    reference: Reference = Field("no_kd", description="model the paired differences are against")


class DistillParams(MindLossConfig):
    """Everything the ``distill`` stage reads: the MIND loss (inherited, top level) and the rest."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    combine: EnsembleCombine = Field("mean_logits", description="ensemble rule on cached logits")
    data: DataSetting = "partial"
    routing: Routing = "fused"
    max_teacher_fraction: float | None = Field(0.1, gt=0.0)
    student: ModelParams
    baselines: BaselineParams
    fit: DistillFitParams = Field(default_factory=DistillFitParams)
    evaluation: EvaluationParams = Field(default_factory=EvaluationParams)

    def loss_config(self, alpha: float | None = None) -> MindLossConfig:
        """The MIND loss settings; ``alpha`` overrides (0 for the no-KD student and the baselines)."""
        values = self.model_dump(include=set(MindLossConfig.model_fields))
        if alpha is not None:
            values["alpha"] = alpha
        return MindLossConfig(**values)
