"""Typed parameters of the ``teachers`` pipeline (``parameters_teachers.yml``, key ``<task>.teachers``).

Layout per task namespace (``ihm``, ``pheno``, ``los``), and the shared pre-training::

    cxr_pretrain                                CxrPretrainParams  recipe + CheXpert pre-training of
                                                                   every CXR slot, once for all tasks
    cxr_pretrain.members.<slot>                 MemberSpec         the encoder each slot pre-trains
    <task>.teachers.ehr.fit                     FitParams          training of every EHR member
    <task>.teachers.ehr.members.<slot>          MemberSpec       one per slot of tasks.TEACHER_MEMBERS
    <task>.teachers.cxr.fit                     FitParams          fine-tuning on the task labels
    <task>.teachers.cxr.members.<slot>          MemberSpec
    <task>.teachers.cache                       CacheParams        the logit-cache forward pass
    <task>.teachers.report                      ReportParams       bootstrap intervals, ensemble rule

``TeachersParams`` is the whole block; the nodes take its parts. Every model forbids unknown keys,
and the project checks the whole parameter tree against these models before any node runs
(``mindkd.pipelines.params``), so a misspelt setting or block (``fitt``) fails at start-up, whichever
pipeline is selected. The member slots are checked there too: they must be exactly those of
``mindkd.tasks.TEACHER_MEMBERS``, and a task's CXR slot must name the encoder and settings its
``cxr_pretrain`` slot pre-trains (the fine-tuning starts from those weights).
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from mindkd.evaluation.scoring import BootstrapConfig
from mindkd.models.spec import MemberSpec
from mindkd.training.fit import AmpMode, LoaderFitConfig
from mindkd.training.losses import EnsembleCombine

Recipe = Literal["pretrain_then_finetune", "finetune_only"]


class _Params(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class FitParams(LoaderFitConfig):
    """One training phase: ``mindkd.training.FitConfig`` (AdamW + scheduler, early stopping on val,
    device, AMP, seed) plus the loader settings of the teachers."""

    amp: AmpMode = Field("bf16", description="autocast on CUDA (ignored on the CPU): off|bf16|fp16")


class PretrainParams(_Params):
    """How CXR members start: CheXpert pre-training then task fine-tuning, or fine-tuning only.

    ``pretrain_then_finetune``: train on the 14 CheXpert findings (NaN = masked) of the train-split
    images of ``cxr_image_labels`` (subjects of val/test excluded), early-stopping on val images; then
    replace the head and fine-tune on the task labels of the paired images.
    """

    recipe: Recipe = "pretrain_then_finetune"
    fit: FitParams = Field(default_factory=FitParams)


class CxrPretrainParams(PretrainParams):
    """``cxr_pretrain``: the CheXpert pre-training of every CXR member slot, run once and shared by
    every task (it reads no task label), then fine-tuned per task (``<task>.teachers.cxr``)."""

    members: dict[str, MemberSpec]


class CacheParams(_Params):
    """The single deterministic forward pass of every member over every key it can see."""

    batch_size: int = Field(256, ge=1)
    device: str = "auto"


class ReportParams(BootstrapConfig):
    """Evaluation of members and ensembles: bootstrap intervals and the ensemble rule."""

    combine: EnsembleCombine = Field(
        "mean_logits", description="ensemble: mean of logits or of probs"
    )
    splits: tuple[Literal["val", "test"], ...] = ("val", "test")

    @field_validator("splits")
    @classmethod
    def _non_empty(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if not value:
            raise ValueError("report.splits must name at least one of val, test")
        return value


class EhrTeachersParams(_Params):
    """``<task>.teachers.ehr``: the training of every EHR member and what each slot is."""

    fit: FitParams
    members: dict[str, MemberSpec]


class CxrTeachersParams(EhrTeachersParams):
    """``<task>.teachers.cxr``: as for EHR; the members start from the shared ``cxr_pretrain``."""


class TeachersParams(_Params):
    """The whole ``<task>.teachers`` block. The slots under ``members`` are tasks.TEACHER_MEMBERS'
    (checked with the project's parameters, ``mindkd.pipelines.params``)."""

    ehr: EhrTeachersParams
    cxr: CxrTeachersParams
    cache: CacheParams
    report: ReportParams
