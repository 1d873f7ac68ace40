"""Scores of many models on one test set: per subset and head, with seeded bootstrap intervals.

Inputs are two tables:

* **predictions**, long: ``model``, ``key``, ``head`` and ``logit_0 .. logit_{K-1}``; one row per
  sample a head applies to (``routed`` is the prediction a model serves);
* **samples**: ``key``, ``kind`` (``paired`` / ``ehr_only`` / ...), the label columns and, for the
  resamples by subject, ``subject_id``.

A head is scored on a subset (``full``: every test sample; ``paired``: the samples with both
modalities) only when it covers every sample of the subset, so all numbers of one subset are
computed on the same samples. Every model of one subset is scored on the *same* bootstrap resamples
(``subject_resamples``: by subject, so a subject's stays move together), so differences between
models get paired intervals.
AUROC / AUPRC are macro averages over labels for multilabel tasks and one-vs-rest for multiclass
tasks, which also get accuracy, macro-F1 and linearly weighted κ (``metrics_for``;
``mindkd.training.metrics``).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

from mindkd.models.batch import TaskKind
from mindkd.training.metrics import (
    MetricFn,
    Resamples,
    accuracy,
    auprc,
    auroc,
    bootstrap,
    expected_calibration_error,
    linear_kappa,
    macro_f1,
    reliability_table,
)

from .calibration import calibration_inputs, probabilities

logger = logging.getLogger(__name__)

METRICS: dict[str, MetricFn] = {"auroc": auroc, "auprc": auprc}  # every task
#: Multiclass tasks also: of the arg-max class (mindkd.training.metrics).
CLASS_METRICS: dict[str, MetricFn] = {
    "accuracy": accuracy,
    "macro_f1": macro_f1,
    "kappa": linear_kappa,
}
ALL_METRICS: tuple[str, ...] = (*METRICS, *CLASS_METRICS)


def metrics_for(kind: TaskKind, ordinal: bool = False) -> dict[str, MetricFn]:
    """The metrics scored for a task of ``kind``: AUROC / AUPRC (macro, one-vs-rest for multiclass)
    and, for multiclass, accuracy and macro-F1, plus linearly weighted κ when the classes are
    ``ordinal`` (length of stay; a distance between digits means nothing)."""
    if kind != "multiclass":
        return dict(METRICS)
    classes = {k: f for k, f in CLASS_METRICS.items() if ordinal or k != "kappa"}
    return METRICS | classes


def scored_metrics(table: pd.DataFrame) -> list[str]:
    """The metrics a score table holds (in ``ALL_METRICS`` order)."""
    return [m for m in ALL_METRICS if m in table.columns]


class BootstrapConfig(BaseModel):
    """Percentile bootstrap intervals: resamples, level and seed (teacher report, evaluation)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    n_bootstrap: int = Field(1000, ge=1000, description="resamples for the intervals (>= 1000)")
    level: float = Field(0.95, gt=0.5, lt=1.0)
    seed: int = Field(0, ge=0)

    @property
    def alpha(self) -> float:
        return 1.0 - self.level


SUBSETS: tuple[str, ...] = ("full", "paired", "ehr_only")
HEAD_ORDER: tuple[str, ...] = ("routed", "ehr", "cxr", "fused")
#: The widest subset each head covers: the routed and EHR heads every stay, the others the paired.
HEAD_SUBSET: dict[str, str] = {"routed": "full", "ehr": "full", "cxr": "paired", "fused": "paired"}


class ScoreSettings(BootstrapConfig):
    """Bootstrap and calibration settings of an evaluation."""

    ece_bins: int = Field(10, ge=2)


@dataclass
class Scores:
    """``table``: one row per (model, subset, head); ``differences``: model − reference, paired;
    ``reliability``: the reliability bins of every scored (model, subset, head)."""

    table: pd.DataFrame
    differences: pd.DataFrame
    reliability: pd.DataFrame
    draws: dict[tuple[str, str, str, str], np.ndarray] = field(default_factory=dict, repr=False)


def logit_columns(predictions: pd.DataFrame) -> list[str]:
    columns = [c for c in predictions.columns if str(c).startswith("logit_")]
    if not columns:
        raise ValueError("the predictions have no logit_* columns")
    return columns


def subset_keys(samples: pd.DataFrame) -> dict[str, pd.Index]:
    """The keys of each subset: ``full`` (every sample), ``paired`` (kind == paired) and
    ``ehr_only`` (kind == ehr_only: the X-ray is missing, the EHR head serves)."""
    return {
        "full": pd.Index(samples["key"]),
        "paired": pd.Index(samples.loc[samples["kind"] == "paired", "key"]),
        "ehr_only": pd.Index(samples.loc[samples["kind"] == "ehr_only", "key"]),
    }


def aligned_logits(
    predictions: pd.DataFrame, model: str, head: str, keys: pd.Index
) -> np.ndarray | None:
    """``(n, K)`` logits of ``model``'s ``head`` in the order of ``keys``; None unless it covers all."""
    rows = predictions[(predictions["model"] == model) & (predictions["head"] == head)]
    if rows.empty:
        return None
    indexed = rows.set_index("key")[logit_columns(predictions)]
    if indexed.index.has_duplicates:
        raise ValueError(f"{model}/{head}: more than one prediction for some keys")
    if not keys.isin(indexed.index).all():
        return None
    return indexed.loc[keys].to_numpy(dtype=np.float64)


def score_predictions(
    predictions: pd.DataFrame,
    samples: pd.DataFrame,
    labels: Sequence[str],
    kind: TaskKind,
    settings: ScoreSettings,
    *,
    models: Sequence[str] | None = None,
    reference: str | None = None,
    contrast: str | None = None,
    subsets: Sequence[str] | None = None,
    heads: Sequence[str] = HEAD_ORDER,
    warn: bool = True,
    ordinal: bool = False,
) -> Scores:
    """AUROC / AUPRC with percentile intervals, ECE and reliability bins, per model, subset, head
    (``subsets``: those of ``subset_keys``, all by default; ``heads``: the heads scored;
    ``ordinal``: a multiclass task's classes are ordered, so linearly weighted κ too). Skipped
    bootstrap resamples are in the table (``<metric>_skipped``), and also logged unless ``warn`` is
    False.

    ``differences``: every model − ``reference``; and ``contrast`` (the student) − every other
    model, each pair on the same resamples (``paired_differences``), one row per pair."""
    models = list(models or dict.fromkeys(predictions["model"]))
    labelled = samples.set_index("key")
    rows: list[dict[str, object]] = []
    bins: list[pd.DataFrame] = []
    draws: dict[tuple[str, str, str, str], np.ndarray] = {}
    for subset, keys in subset_keys(samples).items():
        if keys.empty or (subsets is not None and subset not in subsets):
            continue
        y = labelled.loc[keys, list(labels)].to_numpy(dtype=np.float64)
        resamples = subject_resamples(labelled.loc[keys], settings.n_bootstrap, settings.seed)
        usable = int(defined_resamples(y, resamples).sum())
        for model in models:
            for head in heads:
                logits = aligned_logits(predictions, model, head, keys)
                if logits is None:
                    continue
                row, values, reliability = _score_one(
                    y,
                    logits,
                    kind,
                    resamples,
                    settings=settings,
                    usable=usable,
                    warn=warn,
                    ordinal=ordinal,
                )
                rows.append({"model": model, "subset": subset, "head": head, **row})
                draws.update({(model, subset, head, m): v for m, v in values.items()})
                bins.append(reliability.assign(model=model, subset=subset, head=head))
    table = pd.DataFrame(rows)
    reliability = (
        pd.concat(bins, ignore_index=True) if bins else pd.DataFrame(columns=["model", "bin"])
    )
    front = ["model", "subset", "head"]
    reliability = reliability[front + [c for c in reliability.columns if c not in front]]
    differences = paired_differences(table, draws, reference, settings.level)
    if contrast is not None and not table.empty:
        pairs = [differences]
        for other in dict.fromkeys(table["model"]):
            if other in (contrast, reference):
                continue
            two = table[table["model"].isin([contrast, other])]
            pairs.append(paired_differences(two, draws, other, settings.level))
        differences = pd.concat(
            [d for d in pairs if not d.empty] or [differences], ignore_index=True
        )
    return Scores(table=table, differences=differences, reliability=reliability, draws=draws)


def _score_one(
    y: np.ndarray,
    logits: np.ndarray,
    kind: TaskKind,
    resamples: Resamples,
    *,
    settings: ScoreSettings,
    usable: int,
    warn: bool = True,
    ordinal: bool = False,
) -> tuple[dict[str, object], dict[str, np.ndarray], pd.DataFrame]:
    """The row of one (model, subset, head), its usable bootstrap draws and its reliability bins.

    The draws are kept when they are exactly the ``usable`` resamples of the subset (those where
    some label has both classes; every resample for the class metrics), so they line up with every
    other model's draws.
    """
    probs = probabilities(logits, kind)
    scores = probs if kind == "multiclass" else logits
    row: dict[str, object] = {"n": len(y), "positives": float(np.nansum(y))}
    values: dict[str, np.ndarray] = {}
    for name, fn in metrics_for(kind, ordinal).items():
        result = bootstrap(fn, y, scores, alpha=settings.alpha, resamples=resamples, warn=warn)
        row |= {
            name: result.point,
            f"{name}_low": result.low,
            f"{name}_high": result.high,
            f"{name}_skipped": result.n_skipped,
        }
        lined_up = usable if name in METRICS else resamples.n_resamples
        if len(result.values) == lined_up:
            values[name] = result.values
    y_cal, p_cal = calibration_inputs(y, probs, kind)
    row["ece"] = expected_calibration_error(y_cal, p_cal, settings.ece_bins)
    row["n_bootstrap"] = resamples.n_resamples
    return row, values, reliability_table(y_cal, p_cal, settings.ece_bins)


def subject_resamples(samples: pd.DataFrame, n_resamples: int, seed: int) -> Resamples:
    """The bootstrap resamples of ``samples``: by subject when they carry ``subject_id`` (a
    subject's stays are not independent, so they are drawn together), else by row."""
    if "subject_id" in samples.columns:
        return Resamples.of_groups(samples["subject_id"], n_resamples, seed)
    return Resamples.of_rows(len(samples), n_resamples, seed)


def defined_resamples(y: np.ndarray, resamples: Resamples) -> np.ndarray:
    """``(R,)`` bool: the resamples on which some label has both classes (AUROC / AUPRC defined).

    Depends on the labels only, so it is the same for every model scored on these resamples.
    """
    y2 = np.asarray(y, dtype=np.float64).reshape(len(y), -1)
    counts = resamples.weights()  # (R, n) draws
    positives = counts @ (y2 == 1.0)  # (R, K)
    negatives = counts @ (y2 == 0.0)
    return ((positives > 0) & (negatives > 0)).any(axis=1)


def paired_differences(
    table: pd.DataFrame,
    draws: Mapping[tuple[str, str, str, str], np.ndarray],
    reference: str | None,
    level: float,
) -> pd.DataFrame:
    """``model − reference`` per subset, head and metric, with a paired percentile interval.

    Both models were scored on the same resamples, so the interval is that of the per-resample
    difference over the resamples where the metric is defined (the same for both: it depends on
    the labels only); NaN when the draws could not be lined up.
    """
    columns = ["model", "reference", "subset", "head", "metric", "difference", "low", "high"]
    if reference is None or table.empty or reference not in set(table["model"]):
        return pd.DataFrame(columns=columns)
    points = table.set_index(["model", "subset", "head"])
    rows = []
    for (model, subset, head), row in points.iterrows():
        if model == reference or (reference, subset, head) not in points.index:
            continue
        ref = points.loc[(reference, subset, head)]
        for metric in scored_metrics(table):
            a, b = (
                draws.get((model, subset, head, metric)),
                draws.get((reference, subset, head, metric)),
            )
            low = high = math.nan
            if a is not None and b is not None:
                low, high = np.percentile(a - b, [50 * (1 - level), 100 - 50 * (1 - level)])
            rows.append(
                [model, reference, subset, head, metric, row[metric] - ref[metric], low, high]
            )
    return pd.DataFrame(rows, columns=columns)
