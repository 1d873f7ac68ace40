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
        baselines.no_kd                  NoKdParams: the student's own head dropout and fit settings
        baselines.zero_filled            ZeroFilledParams: single-head joint fusion, filled X-ray
        baselines.medfuse                MedFuseParams: teacher-sized MedFuse (LSTM over tokens)
        mckd                             MckdConfig: the ``mckd`` variant (MIND's student, MCKD)
        mfh                              MfhParams: the modality-focusing diagnostic
        fit                              LoaderFitConfig: FitConfig + loader settings (MIND's;
                                         a baseline's ``fit`` block overrides its lr / weight decay)
        evaluation                       EvaluationParams: bootstrap, calibration, latency

Every model forbids unknown keys, and the project checks the whole parameter tree against them
before any node runs (``mindkd.pipelines.params``): a misspelt ``temprature`` or ``distil`` fails at
start-up, whichever pipeline is selected. Every node of the pipeline takes the whole ``params:distill``
(one typed object; Kedro cannot type a key and one of its sub-keys at once).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from mindkd.evaluation.mfh import MfhParams
from mindkd.evaluation.scoring import ScoreSettings
from mindkd.models.registry import list_fusions, with_ehr_channels
from mindkd.models.spec import EhrInput, EncoderSpec, ImageNormaliser, MissingImage
from mindkd.models.student import Routing
from mindkd.tasks import TaskDefinition
from mindkd.training.fit import LoaderFitConfig
from mindkd.training.losses import EnsembleCombine, MindLossConfig
from mindkd.training.mckd import MckdConfig
from mindkd.training.spec import VARIANTS, DataSetting, ModelSpec, sized_spec

Reference = Literal["no_kd", "zero_filled", "medfuse", "teachers"]


class _Params(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ModelParams(_Params):
    """Two encoders and a fusion module (``mindkd.models.list_fusions()``) with its settings."""

    ehr_encoder: EncoderSpec
    cxr_encoder: EncoderSpec
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


class FitOverrides(_Params):
    """A baseline's own optimiser settings; an unset one is the shared ``fit`` block's.

    They exist so that every method can be tuned on val (``kedro run --pipelines tune``) without
    changing another's: MIND's are ``fit.lr`` / ``fit.weight_decay`` themselves.
    """

    lr: float | None = Field(None, gt=0.0)
    weight_decay: float | None = Field(None, ge=0.0)

    def apply(self, fit: LoaderFitConfig) -> LoaderFitConfig:
        """``fit`` with the values set here."""
        return fit.model_copy(update=self.model_dump(exclude_none=True))


class NoKdParams(_Params):
    """Baseline (a): the student (its encoders and fusion) trained with ``alpha = 0``."""

    head_dropout: float | None = Field(None, ge=0.0, lt=1.0, description="None: the student's")
    fit: FitOverrides = Field(default_factory=FitOverrides)


class ZeroFilledParams(ModelParams):
    """Baseline (b): single-head joint fusion; a missing X-ray is filled with ``missing_image``:
    ``black`` (raw pixels 0, the literal zero image) or ``mean`` (0 after normalisation: the
    train-mean image)."""

    missing_image: MissingImage = "black"
    fit: FitOverrides = Field(default_factory=FitOverrides)


class MedFuseParams(_Params):
    """MedFuse (Hayat et al., 2022): modality tokens through one LSTM; a missing X-ray is no token."""

    ehr_encoder: EncoderSpec
    cxr_encoder: EncoderSpec
    token_dim: int = Field(256, ge=1)
    hidden: int = Field(256, ge=1)
    dropout: float = Field(0.0, ge=0.0, lt=1.0)
    fit: FitOverrides = Field(default_factory=FitOverrides)

    @model_validator(mode="after")
    def _consistent(self) -> MedFuseParams:
        self.ehr_encoder.check_modality("ehr", "baselines.medfuse.ehr_encoder")
        self.cxr_encoder.check_modality("cxr", "baselines.medfuse.cxr_encoder")
        return self


class BaselineParams(_Params):
    """The trained baselines; (a) no-KD is the student itself with ``alpha = 0``."""

    no_kd: NoKdParams = Field(default_factory=NoKdParams)
    zero_filled: ZeroFilledParams
    medfuse: MedFuseParams


class LatencyParams(_Params):
    """CPU latency per sample at batch 1: ``samples`` timed calls after ``warmup`` untimed ones."""

    samples: int = Field(50, ge=50)
    warmup: int = Field(5, ge=0)
    threads: int = Field(1, ge=1, description="torch CPU threads while timing (restored after)")


class EvaluationParams(ScoreSettings):
    """Test-split evaluation: percentile bootstrap, calibration bins, latency, the reference model."""

    latency: LatencyParams = Field(default_factory=LatencyParams)
    reference: Reference = Field("no_kd", description="model the paired differences are against")
    subgroup_min_size: int = Field(
        20, ge=1, description="patient groups with fewer test stays are reported unscored"
    )


class DistillParams(MindLossConfig):
    """Everything the ``distill`` stage reads: the MIND loss (inherited, top level) and the rest."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    combine: EnsembleCombine = Field("mean_logits", description="ensemble rule on cached logits")
    data: DataSetting = "partial"
    routing: Routing = "fused"
    max_teacher_fraction: float | None = Field(0.1, gt=0.0)
    student: ModelParams
    baselines: BaselineParams
    mckd: MckdConfig = Field(default_factory=MckdConfig)
    mfh: MfhParams = Field(default_factory=MfhParams)
    fit: LoaderFitConfig = Field(default_factory=LoaderFitConfig)
    evaluation: EvaluationParams = Field(default_factory=EvaluationParams)

    def loss_config(self, alpha: float | None = None) -> MindLossConfig:
        """The MIND loss settings; ``alpha`` overrides (0 for the no-KD student and the baselines)."""
        values = self.model_dump(include=set(MindLossConfig.model_fields))
        if alpha is not None:
            values["alpha"] = alpha
        return MindLossConfig(**values)

    def architecture(self, variant: str) -> dict[str, Any]:
        """The network fields of ``variant``'s spec (``mindkd.models.spec.NetworkSpec``)."""
        if variant in ("mind", "mckd"):
            return {"architecture": "multi_head", **self.student.model_dump()}
        if variant == "no_kd":
            dropout = self.baselines.no_kd.head_dropout
            student = self.student.model_dump()
            if dropout is not None:
                student["head_dropout"] = dropout
            return {"architecture": "multi_head", **student}
        if variant == "zero_filled":
            fields = self.baselines.zero_filled.model_dump(exclude={"fit"})
            return {"architecture": "zero_filled", **fields}
        if variant == "medfuse":
            medfuse = self.baselines.medfuse
            return {
                "architecture": "medfuse",
                "ehr_encoder": medfuse.ehr_encoder.model_dump(),
                "cxr_encoder": medfuse.cxr_encoder.model_dump(),
                "fusion": "medfuse",
                "fusion_settings": medfuse.model_dump(include={"token_dim", "hidden", "dropout"}),
            }
        raise ValueError(f"unknown variant {variant!r}; known: {VARIANTS}")

    def fit_for(self, variant: str) -> LoaderFitConfig:
        """``variant``'s fit settings: the shared ``fit`` block with its baseline's overrides."""
        if variant in ("mind", "mckd"):
            return self.fit
        if variant not in VARIANTS:
            raise ValueError(f"unknown variant {variant!r}; known: {VARIANTS}")
        overrides: FitOverrides = getattr(self.baselines, variant).fit
        return overrides.apply(self.fit)

    def spec_fields(
        self, variant: str, task: TaskDefinition, image: ImageNormaliser, ehr_input: EhrInput
    ) -> dict[str, Any]:
        """Every field of ``variant``'s model card but its sizes (``mindkd.training.spec``).

        Only ``mind`` distils from the teachers (``alpha`` from the parameters); the others train
        with ``alpha = 0``, ``mckd`` with its own cross-modal term (``mckd``). The EHR encoder
        takes ``ehr_input.width`` columns per hour (``in_channels`` in its settings).
        """
        architecture = self.architecture(variant)
        ehr = architecture["ehr_encoder"]
        ehr["settings"] = with_ehr_channels(ehr["name"], ehr["settings"], ehr_input.width)
        return {
            "variant": variant,
            "task": task.name,
            "kind": task.kind,
            "labels": task.labels,
            "loss": self.loss_config(None if variant == "mind" else 0.0),
            "mckd": self.mckd if variant == "mckd" else None,
            "combine": self.combine,
            "data": self.data,
            "routing": self.routing,
            "fit": self.fit_for(variant),
            "image": image,
            "ehr_input": ehr_input,
            **architecture,
        }

    def model_spec(
        self,
        variant: str,
        task: TaskDefinition,
        teacher_sizes: Mapping[str, int],
        image: ImageNormaliser,
        ehr_input: EhrInput,
    ) -> ModelSpec:
        """``variant``'s model card with its size next to the teachers' (``sized_spec``: raises
        ``StudentTooLargeError`` when a student exceeds ``max_teacher_fraction``)."""
        fields = self.spec_fields(variant, task, image, ehr_input)
        return sized_spec(fields, teacher_sizes, self.max_teacher_fraction)
