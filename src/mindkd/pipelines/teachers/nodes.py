"""Nodes of the ``teachers`` pipeline: train each member, cache its logits once, report the ensembles.

Once per CXR slot, for every task (namespace ``cxr_pretrain.<slot>``): ``pretrain_cxr_teacher``.
Per member (namespace ``<task>.teacher_<slot>``): ``train_ehr_teacher`` or ``finetune_cxr_teacher``
(from the slot's pre-trained weights, or ``initial_cxr_teacher``'s for a source without CheXpert
labels) -> weights and history; ``track_training_curves`` -> MLflow curves;
``predict_ehr_logits`` / ``predict_cxr_logits`` -> the member's logits for every key it can see.
Per task: ``fingerprint_teacher_inputs`` (``training.samples.fingerprint_inputs``),
``assemble_logit_cache`` (all members, keyed by slot name),
``evaluate_teachers`` -> report, ``tabulate_teacher_report`` and ``track_teacher_metrics``;
``plot_teacher_training_curves`` -> one figure of every member's curves.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from torch import Tensor

from mindkd.evaluation import teachers as reporting
from mindkd.evaluation.plots import training_curves_figure
from mindkd.io.array_store import ArrayStore
from mindkd.io.logit_cache import LogitCache, logit_columns
from mindkd.io.torch_state import state_dict_sha256
from mindkd.mimic.cxr import FINDINGS
from mindkd.models.spec import MemberSpec
from mindkd.tasks import TaskParams
from mindkd.tracking.curves import training_curves
from mindkd.training import samples as sampling
from mindkd.training import teachers as glue
from mindkd.training.fit import cpu_state

from .params import CacheParams, FitParams, Recipe, ReportParams

logger = logging.getLogger(__name__)

History = dict[str, Any]
#: Key suffix of a member's pre-training history among ``plot_teacher_training_curves``' inputs.
PRETRAIN_SUFFIX = "__pretrain"


def train_ehr_teacher(
    cohort: pd.DataFrame,
    timeseries: ArrayStore,
    member: MemberSpec,
    fit: FitParams,
    task: TaskParams,
) -> tuple[dict[str, Tensor], History]:
    """Train one EHR member on the train stays of the cohort, early-stopping on the val stays.

    Its input width is the store's (``ehr.categorical``: 34 or 59 columns per hour)."""
    spec = task.definition.spec
    samples = sampling.ehr_samples(cohort, timeseries, spec.labels)
    train, val = (sampling.split_rows(samples, s) for s in ("train", "val"))
    width = glue.ehr_width(timeseries)
    model = glue.build_teacher(member, spec.num_outputs, seed=fit.seed, ehr_channels=width)
    result = glue.train_teacher(
        model,
        glue.ehr_dataset(train, timeseries, spec.labels),
        glue.ehr_dataset(val, timeseries, spec.labels),
        spec.kind,
        fit,
    )
    return result.state_dict, glue.history_report(result, model)


def pretrain_cxr_teacher(
    image_labels: pd.DataFrame,
    subject_splits: pd.DataFrame,
    image_store: ArrayStore,
    member: MemberSpec,
    fit: FitParams,
    recipe: Recipe,
) -> tuple[dict[str, Tensor], History]:
    """Pre-train a CXR member on the 14 CheXpert findings of train-split images (val early-stops).

    It reads no task label: one run serves every task's fine-tuning. With ``recipe:
    finetune_only`` nothing is trained: the member's seeded initial weights are returned, and the
    history is empty.
    """
    model = glue.build_teacher(member, len(FINDINGS), seed=fit.seed)
    if recipe == "finetune_only":
        return cpu_state(model), {"recipe": recipe, "epochs": []}
    samples = sampling.pretrain_image_samples(image_labels, subject_splits, image_store, FINDINGS)
    train, val = (sampling.split_rows(samples, s) for s in ("train", "val"))
    logger.info("CheXpert pre-training on %d train / %d val images", len(train), len(val))
    result = glue.train_teacher(
        model,
        glue.image_dataset(train, image_store, FINDINGS),
        glue.image_dataset(val, image_store, FINDINGS),
        "multilabel",
        fit,
    )
    return result.state_dict, {"recipe": recipe, **glue.history_report(result, model)}


def initial_cxr_teacher(member: MemberSpec, fit: FitParams) -> tuple[dict[str, Tensor], History]:
    """The member's seeded initial weights and an empty history: the start of a CXR member of a
    source without CheXpert labels (AV-digits), which fine-tunes from scratch."""
    model = glue.build_teacher(member, len(FINDINGS), seed=fit.seed)
    return cpu_state(model), {"recipe": "finetune_only", "epochs": []}


def finetune_cxr_teacher(
    pretrained: dict[str, Tensor],
    pairs: pd.DataFrame,
    cohort: pd.DataFrame,
    image_store: ArrayStore,
    member: MemberSpec,
    fit: FitParams,
    task: TaskParams,
) -> tuple[dict[str, Tensor], History]:
    """Replace the head and fine-tune on the task labels of the train-split paired images."""
    spec = task.definition.spec
    samples = sampling.paired_image_samples(pairs, cohort, spec.labels)
    train, val = (sampling.split_rows(samples, s) for s in ("train", "val"))
    logger.info("Fine-tuning on %d train / %d val paired images", len(train), len(val))
    model = glue.build_teacher(member, spec.num_outputs, seed=fit.seed)
    glue.load_encoder(model, pretrained)
    result = glue.train_teacher(
        model,
        glue.image_dataset(train, image_store, spec.labels),
        glue.image_dataset(val, image_store, spec.labels),
        spec.kind,
        fit,
    )
    return result.state_dict, glue.history_report(result, model)


def track_training_curves(
    history: History, pretrain_history: History | None = None
) -> dict[str, list[dict[str, float]]]:
    """Per-epoch curves for MLflow: ``<history key>`` (``pretrain/<key>`` for pre-training), step = epoch.

    The distillation terms (``*/kd*``) are left out: teachers train on the task loss alone.
    """
    pretrain = training_curves(pretrain_history, prefix="pretrain/", exclude=("/kd",), best=False)
    return pretrain | training_curves(history, exclude=("/kd",), best=False)


def predict_ehr_logits(
    weights: dict[str, Tensor],
    cohort: pd.DataFrame,
    timeseries: ArrayStore,
    member: MemberSpec,
    cache: CacheParams,
    task: TaskParams,
) -> glue.MemberLogits:
    """The member's logits for every cohort stay (all splits), from its saved weights."""
    spec = task.definition.spec
    samples = sampling.ehr_samples(cohort, timeseries, spec.labels)
    model = glue.build_teacher(member, spec.num_outputs, ehr_channels=glue.ehr_width(timeseries))
    glue.load_weights(model, weights)
    logits = glue.predict_member(
        model,
        glue.ehr_dataset(samples, timeseries, spec.labels),
        cache.batch_size,
        cache.device,
    )
    return glue.MemberLogits(
        modality="ehr",
        keys=samples["key"].astype(str).to_numpy(),
        splits=samples["split"].to_numpy(),
        logits=logits,
        provenance=glue.member_provenance(model, member, state_dict_sha256(weights)),
    )


def predict_cxr_logits(
    weights: dict[str, Tensor],
    pairs: pd.DataFrame,
    cxr_only: pd.DataFrame,
    image_store: ArrayStore,
    member: MemberSpec,
    cache: CacheParams,
    task: TaskParams,
) -> glue.MemberLogits:
    """The member's logits for every task image in the store: paired and CXR-only, all splits."""
    spec = task.definition.spec
    keys = sampling.image_cache_keys(pairs, cxr_only, image_store)
    model = glue.build_teacher(member, spec.num_outputs)
    model.load_state_dict(weights)
    dataset = glue.image_dataset(
        keys.assign(**dict.fromkeys(spec.labels, np.nan)), image_store, spec.labels
    )
    return glue.MemberLogits(
        modality="cxr",
        keys=keys["key"].astype(str).to_numpy(),
        splits=keys["split"].to_numpy(),
        logits=glue.predict_member(model, dataset, cache.batch_size, cache.device),
        provenance=glue.member_provenance(model, member, state_dict_sha256(weights)),
    )


def assemble_logit_cache(
    fingerprint: dict[str, Any], task: TaskParams, **members: glue.MemberLogits
) -> LogitCache:
    """One cache of every member's logits (keyword = member slot name) with its provenance."""
    definition = task.definition
    frames = []
    for name, member in members.items():
        frame = pd.DataFrame(member.logits, columns=logit_columns(member.logits.shape[1]))
        frame.insert(0, "member", name)
        frame.insert(0, "split", member.splits)
        frame.insert(0, "key", member.keys)
        frame.insert(0, "modality", member.modality)
        frames.append(frame)
    provenance = {
        "task": definition.name,
        "kind": definition.kind,
        "labels": list(definition.labels),
        "members": {name: m.provenance for name, m in members.items()},
        "inputs": fingerprint,
    }
    cache = LogitCache(table=pd.concat(frames, ignore_index=True), provenance=provenance)
    logger.info(
        "Logit cache of %s: %d rows, members %s", task.name, len(cache.table), list(members)
    )
    return cache


def evaluate_teachers(
    cache: LogitCache,
    cohort: pd.DataFrame,
    pairs: pd.DataFrame,
    task: TaskParams,
    params: ReportParams,
) -> dict[str, Any]:
    """Val/test AUROC and AUPRC (bootstrap CIs) of every member and ensemble, sizes, ensemble gains.

    EHR models are scored on every cohort stay of the split; CXR models on the paired images with
    their stay's task labels.
    """
    spec = task.definition.spec
    evaluated = {
        "ehr": cohort[["stay_id", "split", *spec.labels]].rename(columns={"stay_id": "key"}),
        "cxr": sampling.paired_image_samples(pairs, cohort, spec.labels),
    }
    settings = {"n_bootstrap": params.n_bootstrap, "level": params.level, "seed": params.seed}
    rows = [
        row
        for modality, table in evaluated.items()
        for split in params.splits
        for row in reporting.score_split(
            cache,
            modality,
            table,
            split,
            labels=spec.labels,
            kind=spec.kind,
            ordinal=task.definition.ordinal,
            combine=params.combine,
            **settings,
        )
    ]
    return {
        "task": spec.name,
        "kind": spec.kind,
        "combine": params.combine,
        **settings,
        "parameters": reporting.parameter_counts(cache),
        "rows": rows,
    }


def tabulate_teacher_report(report: dict[str, Any]) -> pd.DataFrame:
    """The report as a table: one row per member / ensemble, one column per split and metric."""
    return reporting.report_table(report)


def track_teacher_metrics(report: dict[str, Any]) -> dict[str, dict[str, float | int]]:
    """The report's numbers as MLflow metrics ``<model>.<split>.<metric>`` and ``<model>.parameters``."""
    return reporting.report_metrics(report)


def plot_teacher_training_curves(task: TaskParams, **histories: History) -> Figure:
    """Train / val loss and val AUROC per epoch of every member (keyword = slot), its pre-training
    first (keyword ``<slot>__pretrain``, CXR members), the kept epoch marked."""
    pretrain = {
        key.removesuffix(PRETRAIN_SUFFIX): value
        for key, value in histories.items()
        if key.endswith(PRETRAIN_SUFFIX)
    }
    finetune = {k: v for k, v in histories.items() if not k.endswith(PRETRAIN_SUFFIX)}
    return training_curves_figure(finetune, pretrain, columns=3, title=f"{task.name} teachers:")
