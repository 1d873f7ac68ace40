"""Figures of an evaluation: ROC and precision-recall curves per head, reliability diagrams.

Figures are built with ``matplotlib.figure.Figure`` (no pyplot state), so nodes can make them in
any thread and the catalog's ``MatplotlibDataset`` saves them. Multilabel curves are micro-averaged
over every observed (sample, label) entry; the legend gives the macro AUROC / AUPRC of the scores
table, the numbers the comparison table reports.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from sklearn.metrics import precision_recall_curve, roc_curve

from mindkd.models.batch import TaskKind

from .calibration import probabilities
from .scoring import aligned_logits, subset_keys

#: The subset each head is drawn on: the one where it covers every sample.
HEAD_SUBSET = {"routed": "full", "ehr": "full", "cxr": "paired", "fused": "paired"}


def _flat(y: np.ndarray, p: np.ndarray, kind: TaskKind) -> tuple[np.ndarray, np.ndarray]:
    """Observed (label, score) entries, one-vs-rest for multiclass one-hot rows."""
    observed = np.isfinite(y)
    return y[observed].astype(int), p[observed]


def roc_pr_figure(
    predictions: pd.DataFrame,
    samples: pd.DataFrame,
    scores: pd.DataFrame,
    *,
    labels: Sequence[str],
    kind: TaskKind,
    head: str,
    models: Sequence[str],
    title: str = "",
) -> Figure:
    """ROC (left) and PR (right) curves of every model that has ``head`` on its subset."""
    subset = HEAD_SUBSET[head]
    keys = subset_keys(samples)[subset]
    y = samples.set_index("key").loc[keys, list(labels)].to_numpy(dtype=np.float64)
    fig = Figure(figsize=(10, 4.5), layout="constrained")
    roc_ax, pr_ax = fig.subplots(1, 2)
    for model in models:
        logits = aligned_logits(predictions, model, head, keys) if len(keys) else None
        if logits is None:
            continue
        truth, p = _flat(y, probabilities(logits, kind), kind)
        if truth.min(initial=1) == truth.max(initial=0):
            continue  # one class only: no curve
        row = scores[(scores["model"] == model) & (scores["subset"] == subset)]
        row = row[row["head"] == head]
        auc = float(row["auroc"].iloc[0]) if len(row) else np.nan
        ap = float(row["auprc"].iloc[0]) if len(row) else np.nan
        fpr, tpr, _ = roc_curve(truth, p)
        precision, recall, _ = precision_recall_curve(truth, p)
        roc_ax.plot(fpr, tpr, label=f"{model} ({auc:.3f})")
        pr_ax.step(recall, precision, where="post", label=f"{model} ({ap:.3f})")
    roc_ax.plot([0, 1], [0, 1], color="grey", linestyle=":", linewidth=1)
    roc_ax.set(xlabel="false positive rate", ylabel="true positive rate", title="ROC (AUROC)")
    pr_ax.set(xlabel="recall", ylabel="precision", title="precision-recall (AUPRC)")
    for ax in (roc_ax, pr_ax):
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1.02)
        ax.legend(loc="lower right" if ax is roc_ax else "best", fontsize="small")
    averaged = " (micro-averaged curves; macro areas)" if len(labels) > 1 else ""
    fig.suptitle(f"{title} head={head}, {subset} test set, n={len(keys)}{averaged}")
    return fig


def reliability_figure(
    reliability: pd.DataFrame,
    models: Sequence[str],
    subset: str = "full",
    head: str = "routed",
    title: str = "",
) -> Figure:
    """Observed frequency against mean predicted probability per bin, one line per model."""
    fig = Figure(figsize=(5.5, 5), layout="constrained")
    ax = fig.subplots()
    ax.plot([0, 1], [0, 1], color="grey", linestyle=":", linewidth=1, label="perfect")
    for model in models:
        rows = reliability[
            (reliability["model"] == model)
            & (reliability["subset"] == subset)
            & (reliability["head"] == head)
            & (reliability["count"] > 0)
        ]
        if rows.empty:
            continue
        ax.plot(rows["mean_predicted"], rows["observed"], marker="o", markersize=3, label=model)
    ax.set(
        xlabel="mean predicted probability",
        ylabel="observed frequency",
        xlim=(0, 1),
        ylim=(0, 1),
        title=f"{title} reliability, head={head}, {subset} test set",
    )
    ax.legend(fontsize="small")
    return fig
