"""Nodes of the ``distill`` pipeline: the MIND student, its baselines and their evaluation.

Per task (namespace ``<task>.distill``): ``assemble_distill_samples`` -> ``select_distill_samples``
(train / val in the ``data`` setting, the full test split) -> ``fit_image_normaliser`` (train images
only); ``read_teacher_targets`` and ``count_teacher_parameters`` read the teachers' logit cache, the
only teacher output this stage sees: it never builds or runs a teacher.

Per model variant (namespace ``<task>.distill.<variant>``, variants in ``mindkd.training.spec.VARIANTS``):
``specify_<variant>`` -> ``train_model`` -> ``track_training_curves``, ``predict_test_set``,
``measure_compression`` (and ``export_student`` for MIND). The teacher ensembles are scored from the
cache (``<task>.distill.teachers``).

Evaluation: ``collect_test_predictions`` (plus the Bayes ceiling when the demo truth exists) ->
``evaluate_test_predictions`` -> ``tabulate_comparison``, ``render_comparison``, plots (ROC / PR per
head, reliability, the comparison bars, every variant's training curves), metrics.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from torch import Tensor

from mindkd.evaluation import (
    CEILING,
    comparison_table,
    ensemble_compression,
    mfh,
    model_compression,
    reliability_figure,
    roc_pr_figure,
    score_predictions,
    to_markdown,
    truth_predictions,
)
from mindkd.evaluation.plots import (
    comparison_figure,
    confusion_figure,
    subgroup_figure,
    training_curves_figure,
)
from mindkd.evaluation.scoring import ALL_METRICS, HEAD_SUBSET, Scores
from mindkd.evaluation.subgroups import SCORES as SUBGROUP_SCORES
from mindkd.evaluation.subgroups import metric_key, score_subgroups, subgroup_markdown
from mindkd.io.array_store import ArrayStore
from mindkd.io.logit_cache import LogitCache, logit_columns
from mindkd.models.spec import EhrInput, ImageNormaliser
from mindkd.processing.normalise import store_layout
from mindkd.serving import StudentPyfunc
from mindkd.tasks import TaskParams
from mindkd.tracking.curves import training_curves
from mindkd.training import samples as sampling
from mindkd.training import students as glue
from mindkd.training import targets as teacher_targets
from mindkd.training.losses import ensemble_targets
from mindkd.training.spec import VARIANTS, ModelSpec

from .params import DistillParams

logger = logging.getLogger(__name__)

History = dict[str, Any]
TEACHERS = "teachers"
TRACKED = (  # evaluation columns logged as MLflow metrics (the class metrics: multiclass tasks)
    *(f"{metric}{part}" for metric in ALL_METRICS for part in ("", "_low", "_high")),
    "ece",
    "n",
)


# ------------------------------------------------------------------------------------- samples
def assemble_distill_samples(
    cohort: pd.DataFrame,
    pairs: pd.DataFrame,
    timeseries: ArrayStore,
    image_store: ArrayStore,
    task: TaskParams,
) -> pd.DataFrame:
    """Every cohort stay with its paired image or none, split, kind (paired / ehr_only), labels."""
    labels = task.definition.labels
    samples = sampling.assemble_samples(cohort, pairs, timeseries, image_store, labels)
    for split in sampling.SPLITS:
        logger.info(
            "%s %s: %s", task.name, split, sampling.describe(sampling.split_rows(samples, split))
        )
    return samples


def select_distill_samples(
    samples: pd.DataFrame, params: DistillParams
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Train and val samples of the ``data`` setting (paired | partial); every test stay."""
    chosen = sampling.select_setting(samples, params.data)
    train, val = (sampling.split_rows(chosen, s) for s in ("train", "val"))
    return train, val, sampling.split_rows(samples, "test")


def fit_image_normaliser(train_samples: pd.DataFrame, image_store: ArrayStore) -> dict[str, Any]:
    """Pixel mean / std of the train split's images (fitted on train only) and the image side."""
    return glue.fit_image_normaliser(train_samples, image_store).model_dump()


# ------------------------------------------------------------------------------------- teachers
def read_teacher_targets(
    teacher_logits: LogitCache,
    samples: pd.DataFrame,
    fingerprint: dict[str, Any],
    params: DistillParams,
    task: TaskParams,
    members: Mapping[str, Sequence[str]] | None = None,
) -> pd.DataFrame:
    """Ensemble targets per stay from the logit cache (EHR; CXR where paired), ``combine`` applied.

    The cache must hold every member of the ensemble (``members``: slots per modality; None: those
    its provenance records) for every key, and come from the current inputs (its input
    fingerprint and every key's split), or the node fails naming the cache and what to re-run.
    """
    definition = task.definition
    return teacher_targets.read_targets(
        teacher_logits,
        samples,
        task=definition.name,
        kind=definition.kind,
        num_outputs=len(definition.labels),
        combine=params.combine,
        members=members,
        fingerprint=fingerprint,
    )


def teacher_targets_reader(
    members: Mapping[str, Sequence[str]],
) -> Callable[[LogitCache, pd.DataFrame, dict[str, Any], DistillParams, TaskParams], pd.DataFrame]:
    """``read_teacher_targets`` for the ensemble of ``members`` (the node the pipeline wires; a
    closure rather than a ``partial`` keeps the signature Kedro reads parameter types from)."""

    def read_teacher_targets_of_members(
        teacher_logits: LogitCache,
        samples: pd.DataFrame,
        fingerprint: dict[str, Any],
        params: DistillParams,
        task: TaskParams,
    ) -> pd.DataFrame:
        return read_teacher_targets(teacher_logits, samples, fingerprint, params, task, members)

    read_teacher_targets_of_members.__doc__ = read_teacher_targets.__doc__
    return read_teacher_targets_of_members


def count_teacher_parameters(teacher_logits: LogitCache) -> dict[str, int]:
    """Parameters of every member and of both ensembles, from the cache's provenance."""
    return teacher_targets.teacher_parameter_counts(teacher_logits)


def predict_teacher_ensembles(
    kd_targets: pd.DataFrame, test_samples: pd.DataFrame, params: DistillParams, task: TaskParams
) -> pd.DataFrame:
    """Teacher ensembles as a model: EHR for every stay, CXR and their combination where paired."""
    definition = task.definition
    k = len(definition.labels)
    cached = teacher_targets.targets_for(kd_targets, test_samples, k)
    paired = test_samples["kind"].eq("paired").to_numpy()
    both = np.stack([cached["ehr"][paired], cached["cxr"][paired]])  # (2, n_paired, K)
    fused = ensemble_targets(both, combine=params.combine, kind=definition.kind)
    routed = cached["ehr"].copy()
    routed[paired] = fused
    stays = test_samples["stay_id"].to_numpy()
    heads = {
        "ehr": (stays, cached["ehr"]),
        "cxr": (stays[paired], cached["cxr"][paired]),
        "fused": (stays[paired], fused),
        "routed": (stays, routed),
    }
    return _long_predictions(heads, k)


def _long_predictions(heads: dict[str, tuple[np.ndarray, np.ndarray]], k: int) -> pd.DataFrame:
    frames = []
    for head, (stays, logits) in heads.items():
        frame = pd.DataFrame(logits, columns=logit_columns(k))
        frame.insert(0, "head", head)
        frame.insert(0, "stay_id", stays)
        frames.append(frame)
    return pd.concat(frames, ignore_index=True)


def describe_teacher_ensembles(teacher_sizes: dict[str, int]) -> dict[str, float]:
    """Size of both teacher ensembles (float32 bytes estimated; latency not measured here)."""
    total = int(teacher_sizes["ensembles_total"])
    return ensemble_compression(total, total)


# ------------------------------------------------------------------------------------- variants
def _specify(
    variant: str,
    params: DistillParams,
    task: TaskParams,
    teacher_sizes: dict[str, int],
    image_normaliser: dict[str, Any],
    timeseries: ArrayStore,
) -> dict[str, Any]:
    image = ImageNormaliser.model_validate(image_normaliser)
    ehr_input = EhrInput.model_validate(store_layout(timeseries).to_dict())
    spec = params.model_spec(variant, task.definition, teacher_sizes, image, ehr_input)
    return spec.model_dump(mode="json")


def specify_mind(
    params: DistillParams,
    task: TaskParams,
    teacher_sizes: dict[str, int],
    image_normaliser: dict[str, Any],
    timeseries: ArrayStore,
) -> dict[str, Any]:
    """The MIND student's card: multi-head student, MIND loss; fails above the size budget.

    Every card records the EHR input of ``timeseries`` (encoding, column names); its EHR encoder
    takes that store's width."""
    return _specify("mind", params, task, teacher_sizes, image_normaliser, timeseries)


def specify_no_kd(
    params: DistillParams,
    task: TaskParams,
    teacher_sizes: dict[str, int],
    image_normaliser: dict[str, Any],
    timeseries: ArrayStore,
) -> dict[str, Any]:
    """Baseline (a): the same student, the same code path, ``alpha = 0`` (no distillation)."""
    return _specify("no_kd", params, task, teacher_sizes, image_normaliser, timeseries)


def specify_zero_filled(
    params: DistillParams,
    task: TaskParams,
    teacher_sizes: dict[str, int],
    image_normaliser: dict[str, Any],
    timeseries: ArrayStore,
) -> dict[str, Any]:
    """Baseline (b): single-head joint fusion with the missing X-ray zero-filled, task loss."""
    return _specify("zero_filled", params, task, teacher_sizes, image_normaliser, timeseries)


def specify_medfuse(
    params: DistillParams,
    task: TaskParams,
    teacher_sizes: dict[str, int],
    image_normaliser: dict[str, Any],
    timeseries: ArrayStore,
) -> dict[str, Any]:
    """Baseline (d): teacher-sized MedFuse (LSTM over the modality tokens present), task loss."""
    return _specify("medfuse", params, task, teacher_sizes, image_normaliser, timeseries)


def specify_mckd(
    params: DistillParams,
    task: TaskParams,
    teacher_sizes: dict[str, int],
    image_normaliser: dict[str, Any],
    timeseries: ArrayStore,
) -> dict[str, Any]:
    """MCKD: the MIND student trained with meta-learned modality weights and cross-modal KD
    between its own heads (``distill.mckd``; no teacher ensemble), MIND's fit settings."""
    return _specify("mckd", params, task, teacher_sizes, image_normaliser, timeseries)


def train_model(
    spec: dict[str, Any],
    train_samples: pd.DataFrame,
    val_samples: pd.DataFrame,
    kd_targets: pd.DataFrame,
    timeseries: ArrayStore,
    image_store: ArrayStore,
) -> tuple[dict[str, Tensor], History]:
    """Fit the spec's model on train (early stopping on val); KD targets only when ``alpha > 0``;
    MCKD holds ``mckd.meta_fraction`` of the train subjects out for its meta steps."""
    card = ModelSpec.model_validate(spec)
    targets = kd_targets if card.uses_teachers else None
    meta = None
    if card.mckd is not None:  # MCKD steers its modality weights on held-out training subjects
        train_samples, meta_samples = glue.meta_split(
            train_samples, card.mckd.meta_fraction, card.fit.seed
        )
        meta = glue.build_dataset(meta_samples, card, timeseries, image_store)
    train = glue.build_dataset(train_samples, card, timeseries, image_store, targets)
    val = glue.build_dataset(val_samples, card, timeseries, image_store, targets)
    _, result = glue.train_model(card, train, val, meta=meta)
    history = {
        "variant": card.variant,
        "monitor": result.monitor,
        "best_epoch": result.best_epoch,
        "best_score": result.best_score,
        "stopped_early": result.stopped_early,
        "train_samples": train.kinds().to_dict(),
        **({"meta_samples": meta.kinds().to_dict()} if meta is not None else {}),
        "epochs": result.history,
    }
    return result.state_dict, history


def track_training_curves(history: History) -> dict[str, list[dict[str, float]]]:
    """Every per-epoch term (``train/<loss term>``, ``val/<metric or term>``, lr) for MLflow, and
    ``best/<monitor>``: the monitored value of the kept epoch (step = that epoch), what
    ``mindkd.tracking.registry`` ranks runs by."""
    return training_curves(history)


def predict_test_set(
    weights: dict[str, Tensor],
    spec: dict[str, Any],
    test_samples: pd.DataFrame,
    timeseries: ArrayStore,
    image_store: ArrayStore,
) -> pd.DataFrame:
    """Test logits per stay and head (ehr, cxr, fused where they apply; routed for every stay)."""
    card = ModelSpec.model_validate(spec)
    model = glue.load_model(card, weights)
    dataset = glue.build_dataset(test_samples, card, timeseries, image_store)
    return glue.predict_frame(model, dataset, card)


def measure_compression(
    weights: dict[str, Tensor],
    spec: dict[str, Any],
    test_samples: pd.DataFrame,
    timeseries: ArrayStore,
    image_store: ArrayStore,
    params: DistillParams,
) -> dict[str, float]:
    """Parameters, state-dict bytes and CPU latency per test sample at batch 1 (p50 / p95)."""
    card = ModelSpec.model_validate(spec)
    model = glue.load_model(card, weights)
    latency = params.evaluation.latency
    dataset = glue.build_dataset(test_samples, card, timeseries, image_store)
    batches = glue.single_sample_batches(dataset, latency.samples)
    return model_compression(
        model,
        lambda batch: model.predict(batch, card.routing),
        batches,
        teacher_parameters=card.teacher_parameters,
        warmup=latency.warmup,
        threads=latency.threads,
    )


def export_student(weights: dict[str, Tensor], spec: dict[str, Any]) -> StudentPyfunc:
    """The trained student behind the pyfunc interface (stays in, probabilities out), for the
    MLflow model of the run; its weights and spec become the model's artifacts."""
    return StudentPyfunc(ModelSpec.model_validate(spec).model_dump(mode="json"), weights)


# ------------------------------------------------------------------------------------- evaluation
def collect_test_predictions(
    test_samples: pd.DataFrame,
    truth: pd.DataFrame | None,
    task: TaskParams,
    **models: pd.DataFrame,
) -> pd.DataFrame:
    """Every model's test predictions in one table (``model`` column), plus the Bayes ceiling.

    The ceiling (demo data only) comes from the generator's true probabilities; it is evaluated,
    never trained on.
    """
    frames = [frame.assign(model=name) for name, frame in models.items()]
    definition = task.definition
    ceiling = truth_predictions(
        truth, _eval_samples(test_samples), definition.name, definition.labels, definition.kind
    )
    if ceiling is not None:
        frames.append(ceiling.rename(columns={"key": "stay_id"}))
    table = pd.concat(frames, ignore_index=True)
    front = ["model", "stay_id", "head"]
    return table[front + [c for c in table.columns if c not in front]]


def _eval_samples(test_samples: pd.DataFrame) -> pd.DataFrame:
    return test_samples.rename(columns={"stay_id": "key"})


def model_order(table: pd.DataFrame) -> list[str]:
    """The models of ``table`` in report order: the variants, the teachers, the ceiling."""
    known = [*VARIANTS, TEACHERS, CEILING]
    present = list(dict.fromkeys(table["model"]))
    return [m for m in known if m in present] + [m for m in present if m not in known]


def evaluate_test_predictions(
    test_predictions: pd.DataFrame,
    test_samples: pd.DataFrame,
    params: DistillParams,
    task: TaskParams,
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """AUROC / AUPRC with bootstrap intervals and ECE per model, subset and head; differences to
    the reference model, and of MIND to every other model, on the same resamples; reliability
    bins."""
    definition = task.definition
    settings = params.evaluation
    scores: Scores = score_predictions(
        test_predictions.rename(columns={"stay_id": "key"}),
        _eval_samples(test_samples),
        definition.labels,
        definition.kind,
        settings,
        models=model_order(test_predictions),
        reference=settings.reference,
        contrast="mind",
        ordinal=definition.ordinal,
    )
    return scores.table, scores.differences, scores.reliability


def tabulate_comparison(
    evaluation: pd.DataFrame,
    differences: pd.DataFrame,
    params: DistillParams,
    **compression: dict[str, float],
) -> pd.DataFrame:
    """One row per model and test subset: routed scores with intervals, differences to the
    reference, per-head AUROC, cost."""
    scores = Scores(table=evaluation, differences=differences, reliability=pd.DataFrame())
    models = model_order(evaluation)
    return comparison_table(scores, compression, models, params.evaluation.reference)


def render_comparison(
    comparison: pd.DataFrame,
    subgroup_evaluation: pd.DataFrame,
    params: DistillParams,
    task: TaskParams,
) -> tuple[str, str]:
    """The comparison table and the per-group AUROC as markdown (for the versioned report and the
    MLflow artifact)."""
    settings = params.evaluation
    notes = [
        f"Test split; `full` = every test stay, `paired` = test stays with an X-ray. Routed "
        f"prediction: paired -> {params.routing} head, EHR-only -> EHR head.",
        f"{settings.level:.0%} percentile-bootstrap intervals, {settings.n_bootstrap} resamples "
        f"of subjects (seed {settings.seed}; a subject's stays are drawn together), the same "
        "resamples for every model of a subset; "
        f"Δ = model − {settings.reference} on those resamples.",
        "AUROC / AUPRC are macro averages over labels for multilabel tasks, one-vs-rest for "
        "multiclass ones (accuracy, macro-F1 and, for ordered classes, κ with linear weights: of "
        "the arg-max class). ECE: "
        f"{settings.ece_bins} equal-width bins. Teachers: float32 size estimated, latency not run.",
        f"MIND: alpha {params.alpha}, T {params.temperature}, distance {params.distance}, "
        f"combine {params.combine}, fused target {params.fused_target}, data {params.data}.",
    ]
    text = to_markdown(comparison, f"{task.name}: MIND vs baselines", settings.reference, notes)
    groups = subgroup_markdown(subgroup_evaluation)
    note = (
        f"Groups under {settings.subgroup_min_size} test stays are not scored; a group with one "
        "label value has no AUROC. Same bootstrap settings as above, within each group."
    )
    text = f"{text.rstrip()}\n\n{groups}\n{note}\n"
    return text, text


def plot_roc_pr(
    test_predictions: pd.DataFrame,
    test_samples: pd.DataFrame,
    evaluation: pd.DataFrame,
    task: TaskParams,
) -> tuple[Any, Any, Any, Any]:
    """ROC and PR curves per head (routed, ehr, cxr, fused) of every model that has the head."""
    definition = task.definition
    predictions = test_predictions.rename(columns={"stay_id": "key"})
    figures = [
        roc_pr_figure(
            predictions,
            _eval_samples(test_samples),
            evaluation,
            labels=definition.labels,
            kind=definition.kind,
            head=head,
            models=model_order(test_predictions),
            title=task.name,
        )
        for head in ("routed", "ehr", "cxr", "fused")
    ]
    return figures[0], figures[1], figures[2], figures[3]


def plot_confusion(
    test_predictions: pd.DataFrame, test_samples: pd.DataFrame, task: TaskParams
) -> Figure:
    """Row-normalised confusion matrix of every model's routed prediction (multiclass tasks)."""
    definition = task.definition
    return confusion_figure(
        test_predictions.rename(columns={"stay_id": "key"}),
        _eval_samples(test_samples),
        definition.labels,
        model_order(test_predictions),
        title=task.name,
    )


def plot_reliability(reliability: pd.DataFrame, task: TaskParams) -> Any:
    """Reliability diagram of every model's routed prediction on the full test set."""
    return reliability_figure(reliability, model_order(reliability), title=task.name)


def plot_comparison(comparison: pd.DataFrame, params: DistillParams, task: TaskParams) -> Figure:
    """AUROC / AUPRC bars of every model, full and paired test sets, with the bootstrap intervals."""
    level = params.evaluation.level
    return comparison_figure(comparison, level=level, title=f"{task.name}:")


def plot_training_curves(task: TaskParams, **histories: History) -> Figure:
    """Train / val loss and val AUROC per epoch of every variant (keyword = variant), kept epoch
    marked."""
    return training_curves_figure(histories, columns=4, title=f"{task.name} students:")


def evaluate_subgroups(
    test_predictions: pd.DataFrame,
    test_samples: pd.DataFrame,
    subgroups: pd.DataFrame,
    params: DistillParams,
    task: TaskParams,
) -> pd.DataFrame:
    """AUROC / AUPRC with intervals of every model's routed prediction per group of each column of
    the subgroup table (clinical: sex, age band, race, insurance); groups under
    ``evaluation.subgroup_min_size`` stays reported unscored."""
    definition = task.definition
    return score_subgroups(
        test_predictions.rename(columns={"stay_id": "key"}),
        _eval_samples(test_samples),
        subgroups,
        definition.labels,
        kind=definition.kind,
        settings=params.evaluation,
        models=model_order(test_predictions),
        min_size=params.evaluation.subgroup_min_size,
        attributes=[c for c in subgroups.columns if c != "stay_id"],  # the source's own groups
    )


def plot_subgroups(
    subgroup_evaluation: pd.DataFrame, params: DistillParams, task: TaskParams
) -> Figure:
    """AUROC per patient group of every model, with the bootstrap intervals."""
    return subgroup_figure(subgroup_evaluation, level=params.evaluation.level, title=task.name)


def track_evaluation_metrics(
    evaluation: pd.DataFrame,
    differences: pd.DataFrame,
    comparison: pd.DataFrame,
    subgroup_evaluation: pd.DataFrame,
    params: DistillParams,
) -> dict[str, dict[str, float]]:
    """MLflow metrics ``<model>.<subset>.<head>.<metric>[_low|_high]``, deltas and cost, and
    ``<model>.subgroup.<attribute>.<group>.<metric>[_low|_high]`` plus the group's ``n``.

    Deltas: ``<model>.<subset>.<head>.delta_<metric>[_low|_high]`` against the reference, and
    ``mind.<subset>.<head>.delta_<metric>_vs_<other>[_low|_high]`` against every other model."""
    metrics: dict[str, dict[str, float]] = {}
    values = [c for c in TRACKED if c in evaluation.columns]
    for _, row in evaluation.iterrows():
        for column in values:
            _put(metrics, f"{row['model']}.{row['subset']}.{row['head']}.{column}", row[column])
    reference = params.evaluation.reference
    for _, row in differences.iterrows():
        name = f"{row['model']}.{row['subset']}.{row['head']}.delta_{row['metric']}"
        if row["reference"] != reference:
            name += f"_vs_{row['reference']}"
        for part, column in (("", "difference"), ("_low", "low"), ("_high", "high")):
            _put(metrics, f"{name}{part}", row[column])
    for _, row in comparison.drop_duplicates("model").iterrows():
        for column in ("parameters", "state_dict_mb", "latency_p50_ms", "latency_p95_ms"):
            _put(metrics, f"{row['model']}.{column}", row[column])
    for _, row in subgroup_evaluation.iterrows():
        name = f"{row['model']}.subgroup.{row['attribute']}.{metric_key(row['group'])}"
        for column in ("n", *SUBGROUP_SCORES):
            _put(metrics, f"{name}.{column}", row[column])
    return metrics


def _put(metrics: dict[str, dict[str, float]], name: str, value: Any) -> None:
    if isinstance(value, int | float | np.number) and np.isfinite(value):
        metrics[name] = {"value": float(value), "step": 0}


# ------------------------------------------------------------------------------ modality focus
def _paired_split(
    samples: pd.DataFrame,
    model: Any,
    card: ModelSpec,
    kd_targets: pd.DataFrame,
    timeseries: ArrayStore,
    image_store: ArrayStore,
    params: DistillParams,
) -> mfh.Split:
    paired = samples[samples["kind"].eq("paired")].reset_index(drop=True)
    dataset = glue.build_dataset(paired, card, timeseries, image_store)
    positions, ehr, cxr = glue.embed_paired(model, dataset, card.fit.eval_batch_size)
    rows = paired.iloc[positions]
    targets = teacher_targets.targets_for(kd_targets, rows, len(card.labels))
    return mfh.Split(
        features=mfh.head_features(ehr, cxr),
        teachers=mfh.teacher_logits(targets["ehr"], targets["cxr"], card.kind, params.combine),
    )


def diagnose_modality_focus(
    weights: dict[str, Tensor],
    spec: dict[str, Any],
    train_samples: pd.DataFrame,
    val_samples: pd.DataFrame,
    kd_targets: pd.DataFrame,
    timeseries: ArrayStore,
    image_store: ArrayStore,
    params: DistillParams,
) -> pd.DataFrame:
    """MFH γ̂ of every (teacher, head) pair (``mindkd.evaluation.mfh``): the share of each teacher
    ensemble's decision that each head's input reproduces, from the no-KD student's embeddings of
    the paired stays (map fitted on train, measured on val; test is never read)."""
    card = ModelSpec.model_validate(spec)
    model = glue.load_model(card, weights)
    splits = [
        _paired_split(s, model, card, kd_targets, timeseries, image_store, params)
        for s in (train_samples, val_samples)
    ]
    table = mfh.gamma_table(splits[0], splits[1], card.kind, params.mfh)
    if table["gamma"].isna().all():
        logger.warning(
            "%s MFH: no verdict, %d paired train and %d paired val stays (mfh.min_samples: %d)",
            card.task,
            len(splits[0]),
            len(splits[1]),
            params.mfh.min_samples,
        )
        return table
    for _, row in table.iterrows():
        logger.info(
            "%s MFH %s -> %s: gamma %.3f [%.3f, %.3f] (%s)",
            card.task,
            row["teacher"],
            row["head"],
            row["gamma"],
            row["gamma_low"],
            row["gamma_high"],
            row["verdict"],
        )
    return table


#: The model whose head a (teacher, head) pair's measured gain is read from; the head is scored on
#: the widest test subset it covers (``scoring.HEAD_SUBSET``).
GAIN_OF = {"MIND": "mind", "MCKD": "mckd"}


def judge_modality_focus(
    gammas: pd.DataFrame,
    differences: pd.DataFrame,
    val_samples: pd.DataFrame,
    truth: pd.DataFrame | None,
    params: DistillParams,
    task: TaskParams,
) -> tuple[pd.DataFrame, str, dict[str, dict[str, float]]]:
    """The MFH verdict of each pair next to the measured gain of the head that distils from it
    (MIND's or MCKD's head minus the no-KD student's, AUROC, paired interval) and, on demo data,
    the true γ of the generator (``gamma_true``, ``truth_verdict``, on the same val stays).

    Returns the table, its markdown and the MLflow metrics ``mfh.<teacher>_to_<head>.<column>``."""
    definition = task.definition
    table = gammas.copy()
    gains = differences[(differences["reference"] == "no_kd") & (differences["metric"] == "auroc")]
    gains = gains.set_index(["model", "subset", "head"])
    for column in ("gain", "gain_low", "gain_high"):
        table[column] = np.nan
    table["gain_model"] = None
    table["gain_subset"] = None
    for i, row in table.iterrows():
        model = GAIN_OF.get(row["used_by"])
        key = (model, HEAD_SUBSET[row["head"]], row["head"])
        if model is None or key not in gains.index:
            continue
        found = gains.loc[key]
        table.loc[i, ["gain", "gain_low", "gain_high"]] = [
            found["difference"],
            found["low"],
            found["high"],
        ]
        table.loc[i, ["gain_model", "gain_subset"]] = [model, key[1]]
    truth_logits = _unimodal_truth(truth, val_samples, definition)
    if truth_logits is not None:
        exact = mfh.true_gamma(*truth_logits, definition.kind, params.combine)
        table = table.merge(exact, on=["teacher", "head"], how="left")
        table["truth_verdict"] = [params.mfh.verdict(g) for g in table["gamma_true"]]
    text = mfh.verdict_markdown(table, task.name, params.mfh)
    metrics: dict[str, dict[str, float]] = {}
    for _, row in table.iterrows():
        name = f"mfh.{row['teacher']}_to_{row['head']}"
        for column in ("gamma", "gamma_low", "gamma_high", "gamma_true"):
            if column in row.index:
                _put(metrics, f"{name}.{column}", row[column])
    return table, text, metrics


def _unimodal_truth(
    truth: pd.DataFrame | None, samples: pd.DataFrame, definition: Any
) -> tuple[np.ndarray, np.ndarray] | None:
    """The generator's per-modality truth logits of the paired ``samples`` (demo data), or None."""
    paired = samples[samples["kind"].eq("paired")].rename(columns={"stay_id": "key"})
    found = truth_predictions(truth, paired, definition.name, definition.labels, definition.kind)
    if found is None:
        return None
    heads = {head: found[found["head"] == head] for head in ("ehr", "cxr")}
    if any(frame.empty for frame in heads.values()):
        return None
    columns = [c for c in found.columns if str(c).startswith("logit_")]
    return tuple(heads[h][columns].to_numpy(dtype=np.float64) for h in ("ehr", "cxr"))  # type: ignore[return-value]
