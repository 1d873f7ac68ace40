"""Figures of a run: ROC / PR curves per head, reliability, training curves, cohort flow, comparison.

Each function takes plain tables or dicts (what the catalog loads) and returns a
``matplotlib.figure.Figure`` built without pyplot: no global figure registry (nothing to close,
nothing leaks between nodes), any thread, the Agg renderer when the catalog's ``MatplotlibDataset``
saves it. Multilabel curves are micro-averaged over every observed (sample, label) entry; the
legend gives the macro AUROC / AUPRC of the scores table, the numbers the comparison table reports.

* ``roc_pr_figure``, ``reliability_figure``: the test-set evaluation per head;
* ``training_curves_figure``: train / val loss and val AUROC per epoch, the kept epoch marked;
* ``cohort_flow_figure``: stays kept after each cohort step, and the final cohort by split;
* ``comparison_figure``: AUROC / AUPRC bars with bootstrap intervals, full and paired test sets;
* ``confusion_figure``: a multiclass task's row-normalised confusion matrix per model.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator
from sklearn.metrics import precision_recall_curve, roc_curve

from mindkd.models.batch import TaskKind

from .calibration import probabilities
from .scoring import HEAD_SUBSET, aligned_logits, subset_keys


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
    observed = y[np.isfinite(y)]
    if observed.size:  # a classifier without skill: precision = prevalence at every recall
        prevalence = float(observed.mean())
        pr_ax.axhline(prevalence, color="grey", linestyle=":", linewidth=1)
        pr_ax.annotate(
            f"prevalence {prevalence:.2f}",
            (0, prevalence),
            xytext=(4, 3),
            textcoords="offset points",
            ha="left",
            fontsize="x-small",
            color="grey",
        )
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
    """Observed frequency against mean predicted probability per bin, one line per model (top), and
    how many predictions fall in each bin (bottom, log scale): a sparse bin's point is noise."""
    fig = Figure(figsize=(5.5, 6.5), layout="constrained")
    ax, counts_ax = fig.subplots(2, 1, sharex=True, height_ratios=(3, 1))
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
        (line,) = ax.plot(
            rows["mean_predicted"], rows["observed"], marker="o", markersize=3, label=model
        )
        counts_ax.plot(
            rows["mean_predicted"], rows["count"], marker="o", markersize=3, color=line.get_color()
        )
    ax.set(
        ylabel="observed frequency",
        xlim=(0, 1),
        ylim=(-0.02, 1.02),
        title=f"{title} reliability, head={head}, {subset} test set",
    )
    ax.legend(fontsize="small")
    counts_ax.set(xlabel="mean predicted probability", ylabel="predictions in bin", yscale="log")
    return fig


def confusion_figure(
    predictions: pd.DataFrame,
    samples: pd.DataFrame,
    labels: Sequence[str],
    models: Sequence[str],
    *,
    head: str = "routed",
    title: str = "",
) -> Figure:
    """Confusion matrices of a multiclass task, one panel per model: the arg-max class of
    ``head`` against the true class on the full test set, each row normalised to 1 (the share of
    that true class predicted as each class), the count of the row in its label."""
    keys = subset_keys(samples)["full"]
    y = samples.set_index("key").loc[keys, list(labels)].to_numpy(dtype=np.float64)
    known = np.isfinite(y).all(axis=1) & (y.sum(axis=1) == 1.0)
    true = y[known].argmax(axis=1)
    k = len(labels)
    panels = [
        (model, logits[known].argmax(axis=1))
        for model in models
        if (logits := aligned_logits(predictions, model, head, keys)) is not None
    ]
    columns = min(3, max(1, len(panels)))
    rows = max(1, math.ceil(len(panels) / columns))
    fig = Figure(figsize=(4.6 * columns, 4.2 * rows + 0.4), layout="constrained")
    axes = np.atleast_1d(fig.subplots(rows, columns, squeeze=False)).ravel()
    support = np.bincount(true, minlength=k)
    names = [str(label) for label in labels]
    image = None
    for ax, (model, predicted) in zip(axes, panels, strict=False):
        counts = np.zeros((k, k))
        np.add.at(counts, (true, predicted), 1.0)
        with np.errstate(invalid="ignore", divide="ignore"):
            shares = counts / counts.sum(axis=1, keepdims=True)
        image = ax.imshow(shares, vmin=0.0, vmax=1.0, cmap="Blues")
        accuracy = float(np.trace(counts) / counts.sum()) if counts.sum() else math.nan
        ax.set_title(f"{model} (accuracy {accuracy:.3f})", fontsize="medium")
        ax.set_xticks(range(k), names, rotation=90, fontsize="x-small")
        ax.set_yticks(
            range(k),
            [f"{n} ({c})" for n, c in zip(names, support, strict=True)],
            fontsize="x-small",
        )
        ax.set(xlabel="predicted class", ylabel="true class (test stays)")
    for ax in axes[len(panels) :]:
        ax.set_axis_off()
    if image is not None:
        fig.colorbar(image, ax=axes.tolist(), shrink=0.6, label="share of the true class")
    fig.suptitle(f"{title} confusion matrices, head={head}, full test set, row-normalised")
    return fig


# ------------------------------------------------------------------------------- training curves
#: One training phase's report, as the teachers and distill stages save it: ``monitor``,
#: ``best_epoch``, ``best_score``, ``epochs`` (one record per epoch: ``epoch``, ``train/loss``,
#: ``val/loss``, ``val/<metric>``, ...) and optional extras (``parameters``, ``stopped_early``).
History = Mapping[str, Any]

LOSS_STYLE: dict[str, dict[str, Any]] = {
    "train/loss": {"color": "tab:blue", "label": "train loss"},
    "val/loss": {"color": "tab:orange", "linestyle": "--", "label": "val loss"},
}
METRIC_COLOR = "tab:green"
SELECTED_COLOR = "tab:red"
SELECTED_LABEL = "selected epoch"


def selected_epoch(history: History) -> int | None:
    """The epoch whose weights were kept: ``best_epoch`` when recorded, else the best ``monitor``
    value (lowest for a loss, highest otherwise); None without epochs."""
    epochs = [int(record["epoch"]) for record in history.get("epochs", [])]
    best = history.get("best_epoch")
    if best is not None and int(best) in epochs:
        return int(best)
    monitor = history.get("monitor") or "val/auroc"
    values = _series(history, monitor)
    if not np.isfinite(values).any():
        return None
    pick = np.nanargmin if "loss" in monitor else np.nanargmax
    return epochs[int(pick(values))]


def _series(history: History, key: str) -> np.ndarray:
    return np.array(
        [np.nan if r.get(key) is None else float(r[key]) for r in history.get("epochs", [])],
        dtype=np.float64,
    )


def _plot_phase(
    axes: tuple[Axes, Axes], history: History, metric: str, *, offset: int = 0, faded: bool = False
) -> None:
    """One phase's curves at x = epoch + offset; the selected epoch marked on both axes."""
    loss_ax, metric_ax = axes
    epochs = _series(history, "epoch")
    alpha = 0.45 if faded else 1.0
    for key, style in LOSS_STYLE.items():
        values = _series(history, key)
        if np.isfinite(values).any():
            loss_ax.plot(offset + epochs, values, marker=".", alpha=alpha, **style)
    values = _series(history, metric)
    metric_ax.plot(
        offset + epochs, values, color=METRIC_COLOR, marker=".", alpha=alpha, label=metric
    )
    best = selected_epoch(history)
    if best is None:
        return
    for ax in axes:
        ax.axvline(offset + best, color=SELECTED_COLOR, linestyle=":", linewidth=1, alpha=alpha)
    metric_ax.plot(
        [offset + best],
        [values[epochs == best][0]],
        marker="*",
        markersize=11,
        color=SELECTED_COLOR,
        linestyle="none",
        alpha=alpha,
        label=f"{SELECTED_LABEL} (pre-training)" if faded else SELECTED_LABEL,
    )


def _curves_panel(
    axes: tuple[Axes, Axes], name: str, history: History, pretrain: History | None, metric: str
) -> None:
    loss_ax, metric_ax = axes
    pretrained = bool(pretrain and pretrain.get("epochs"))
    if pretrain and pretrained:  # pre-training epochs at 1 - P .. 0, fine-tuning keeps 1 .. F
        before = len(pretrain["epochs"])
        _plot_phase(axes, pretrain, metric, offset=-before, faded=True)
        for ax in axes:
            ax.axvspan(0.5 - before, 0.5, color="grey", alpha=0.12, linewidth=0)
        loss_ax.text(
            0.02, 0.95, "pre-training", transform=loss_ax.transAxes, va="top", color="dimgrey"
        )
    _plot_phase(axes, history, metric)
    loss_ax.set_title(_panel_title(name, history, metric), fontsize="medium")
    if not history.get("epochs"):
        loss_ax.text(0.5, 0.5, "no epochs recorded", transform=loss_ax.transAxes, ha="center")
    kd = np.nan_to_num(np.abs(_series(history, "train/kd"))).sum() > 0
    loss_ax.set_ylabel("loss (task + KD)" if kd else "loss")
    loss_ax.tick_params(labelbottom=False)
    metric_ax.set_ylabel(metric)
    metric_ax.set_xlabel("epoch (≤ 0: pre-training)" if pretrained else "epoch")
    first = 1 - len(pretrain["epochs"]) if pretrain and pretrained else 1
    last = max(len(history.get("epochs", [])), 1)
    metric_ax.set_xlim(first - 0.5, last + 0.5)  # whole epochs, even for a single one
    metric_ax.xaxis.set_major_locator(MaxNLocator(integer=True, min_n_ticks=1))


def _panel_title(name: str, history: History, metric: str) -> str:
    """``name, N params`` over ``best <metric> 0.812 @ 7, early stop``."""
    first = [name] + (
        [f"{int(history['parameters']):,} params"] if history.get("parameters") else []
    )
    second = []
    best = selected_epoch(history)
    if best is not None:
        score = _series(history, metric)[_series(history, "epoch") == best][0]
        shown = f"{score:.3f}" if np.isfinite(score) else "undefined"
        second.append(f"best {metric} {shown} @ {best}")
    if history.get("stopped_early"):
        second.append("early stop")
    return ", ".join(first) + ("\n" + ", ".join(second) if second else "")


def training_curves_figure(
    histories: Mapping[str, History],
    pretrain: Mapping[str, History | None] | None = None,
    *,
    metric: str = "val/auroc",
    columns: int = 4,
    title: str = "",
) -> Figure:
    """Train / val loss (top) and ``metric`` on val (bottom) per epoch, one column per model.

    Models wrap after ``columns``; a model with a pre-training history (CXR teachers) shows it first,
    shaded, and its fine-tuning epochs after it. A red star and dotted line mark the epoch whose
    weights were kept (``selected_epoch``).
    """
    names = list(histories)
    cols = max(1, min(columns, len(names)))
    rows = max(1, math.ceil(len(names) / cols))
    fig = Figure(figsize=(3.6 * cols, 4.6 * rows), layout="constrained")
    grid = fig.add_gridspec(2 * rows, cols)
    for i, name in enumerate(names):
        row, col = divmod(i, cols)
        loss_ax = fig.add_subplot(grid[2 * row, col])
        metric_ax = fig.add_subplot(grid[2 * row + 1, col], sharex=loss_ax)
        before = (pretrain or {}).get(name)
        _curves_panel((loss_ax, metric_ax), name, histories[name], before, metric)
    handles, labels = _unique_legend(fig.axes)
    if handles:
        fig.legend(handles, labels, loc="outside lower center", ncols=len(handles))
    fig.suptitle(f"{title} training curves".strip())
    return fig


def _unique_legend(axes: Sequence[Axes]) -> tuple[list[Any], list[str]]:
    seen: dict[str, Any] = {}
    for ax in axes:
        for handle, label in zip(*ax.get_legend_handles_labels(), strict=True):
            seen.setdefault(label, handle)
    return list(seen.values()), list(seen)


# ----------------------------------------------------------------------------------- cohort flow
def cohort_flow_figure(
    flow: pd.DataFrame, pairing: Mapping[str, Any] | None = None, *, title: str = ""
) -> Figure:
    """The cohort funnel: stays kept after each step (``flow``: step, kept, dropped, reason), the
    drop of each step in red with its reason; with ``pairing`` (the pairing report) a second panel
    splits the final cohort by split into stays with an X-ray (paired) and EHR-only stays."""
    fig = Figure(figsize=(12 if pairing else 8, 0.55 * len(flow) + 2.2), layout="constrained")
    axes = fig.subplots(1, 2, width_ratios=(2.2, 1)) if pairing else [fig.subplots()]
    ax = axes[0]
    y = np.arange(len(flow))
    kept = flow["kept"].to_numpy(dtype=np.float64)
    dropped = flow["dropped"].to_numpy(dtype=np.float64)
    ax.barh(y, kept, color="tab:blue", label="kept")
    ax.barh(y, dropped, left=kept, color="tab:red", alpha=0.55, label="dropped at this step")
    for i, (k, d) in enumerate(zip(kept, dropped, strict=True)):
        text = f"{int(k):,}" + (f"  (−{int(d):,})" if d else "")
        ax.text(k + d, i, " " + text, va="center", fontsize="small")
    labels = [_step_label(r.step, r.reason, first=i == 0) for i, r in enumerate(flow.itertuples())]
    ax.set_yticks(y, labels, fontsize="small")
    ax.invert_yaxis()
    ax.set_xlim(0, (kept + dropped).max(initial=1) * 1.22)
    ax.set(xlabel="ICU stays", title="cohort selection, step by step")
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.13), ncols=2, fontsize="small")
    if pairing:
        _pairing_panel(axes[1], pairing)
    fig.suptitle(f"{title} cohort flow".strip())
    return fig


def _step_label(step: str, reason: Any, *, first: bool, width: int = 40) -> str:
    """``step`` over its reason; after the first step the reason is what the step drops."""
    text = reason if isinstance(reason, str) else ""
    text = text if first or not text else f"drops: {text}"
    short = text if len(text) <= width else text[: width - 1] + "…"
    return f"{step}\n{short}" if short else step


def _pairing_panel(ax: Axes, pairing: Mapping[str, Any]) -> None:
    by_split = pairing.get("by_split", {})
    splits = [s for s in ("train", "val", "test") if s in by_split] + [
        s for s in by_split if s not in ("train", "val", "test")
    ]
    rows = [*splits, "all"]
    paired = [by_split[s]["paired"] for s in splits] + [pairing.get("paired", 0)]
    ehr_only = [by_split[s]["ehr_only"] for s in splits] + [pairing.get("ehr_only", 0)]
    y = np.arange(len(rows))
    ax.barh(y, paired, color="tab:purple", label="paired (EHR + X-ray)")
    ax.barh(y, ehr_only, left=paired, color="tab:grey", alpha=0.6, label="EHR only")
    for i, (p, e) in enumerate(zip(paired, ehr_only, strict=True)):
        share = f"\n {p / (p + e):.0%} paired" if p + e else ""
        ax.text(p + e, i, f" {p:,} + {e:,}{share}", va="center", fontsize="small")
    ax.set_yticks(y, rows)
    ax.invert_yaxis()
    ax.set_xlim(0, max(p + e for p, e in zip(paired, ehr_only, strict=True)) * 1.45 or 1)
    ax.set(xlabel="ICU stays", title="final cohort by split")
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.13), fontsize="small")


# ------------------------------------------------------------------------------ comparison bars
SUBSET_STYLE = {
    "full": {"color": "tab:blue", "label": "full test"},
    "paired": {"color": "tab:orange", "label": "paired test"},
    "ehr_only": {"color": "tab:grey", "label": "EHR-only test"},
}
DISPLAY_NAME = {"bayes_ceiling": "Bayes ceiling\n(demo truth)", "teachers": "teacher\nensembles"}
REFERENCE_MODELS = {"bayes_ceiling"}  # not a model one could deploy: drawn lighter
BAR_WIDTH = 0.27


def comparison_figure(
    table: pd.DataFrame,
    *,
    metrics: Sequence[str] = ("auroc", "auprc"),
    level: float = 0.95,
    highlight: str = "mind",
    title: str = "",
) -> Figure:
    """Routed AUROC and AUPRC of every model of the comparison table, full, paired and EHR-only
    test subsets side by side, with the bootstrap intervals (``<metric>_low`` / ``_high``) as error bars.

    One bar container per (metric, subset), in the table's model order; a model missing from a
    subset has a zero-height bar without a label. The values are printed at the foot of the bars.
    """
    models = list(dict.fromkeys(table["model"]))
    subsets = [s for s in SUBSET_STYLE if s in set(table["subset"])]  # the subsets scored
    indexed = table.set_index(["model", "subset"])
    fig = Figure(figsize=(max(7.0, 1.15 * len(models) * len(metrics)), 4.8), layout="constrained")
    axes = fig.subplots(1, len(metrics), squeeze=False)[0]
    for ax, metric in zip(axes, metrics, strict=True):
        for j, subset in enumerate(subsets):
            centre = (len(subsets) - 1) / 2
            _subset_bars(ax, indexed, models, metric, subset, offset=(j - centre) * BAR_WIDTH)
        if metric == "auroc":
            ax.axhline(0.5, color="grey", linestyle=":", linewidth=1)
        ax.set_xticks(np.arange(len(models)), [DISPLAY_NAME.get(m, m) for m in models])
        for tick, model in zip(ax.get_xticklabels(), models, strict=True):
            tick.set_fontsize("small")
            if model == highlight:
                tick.set_fontweight("bold")
        name = metric.upper()
        ax.set(ylim=(0, 1.05), ylabel=name, title=f"{name}, {level:.0%} bootstrap CI")
    handles, labels = _unique_legend(axes)
    fig.legend(handles, labels, loc="outside lower center", ncols=len(handles))
    fig.suptitle(f"{title} MIND vs baselines and teachers: routed prediction, test split".strip())
    return fig


def _subset_bars(
    ax: Axes,
    indexed: pd.DataFrame,
    models: Sequence[str],
    metric: str,
    subset: str,
    *,
    offset: float,
) -> None:
    point, low, high = (
        np.array([_cell(indexed, m, subset, f"{metric}{part}") for m in models])
        for part in ("", "_low", "_high")
    )
    sizes = [_cell(indexed, m, subset, "n") for m in models]
    n = next((int(v) for v in sizes if np.isfinite(v)), None)
    style = SUBSET_STYLE[subset]
    x = np.arange(len(models)) + offset
    bars = ax.bar(
        x,
        np.nan_to_num(point, nan=0.0),
        BAR_WIDTH,
        color=style["color"],
        label=style["label"] + (f" (n={n})" if n is not None else ""),
    )
    # The interval is drawn from low to high, not relative to the bar: a percentile bootstrap
    # interval need not contain its point estimate (small or skewed samples), and a missing one
    # (NaN) draws nothing.
    known = np.isfinite(low) & np.isfinite(high)
    ax.errorbar(
        x[known],
        (low[known] + high[known]) / 2,
        yerr=np.abs(high[known] - low[known]) / 2,
        fmt="none",
        capsize=3,
        elinewidth=1,
        ecolor="black",
    )
    for i, (bar, model, value) in enumerate(zip(bars, models, point, strict=True)):
        if model in REFERENCE_MODELS:
            bar.set_alpha(0.55)
        if np.isfinite(value):
            ax.text(
                x[i],
                0.015,
                f"{value:.2f}",
                ha="center",
                va="bottom",
                rotation=90,
                fontsize="x-small",
                color="white",
            )


def _cell(indexed: pd.DataFrame, model: str, subset: str, column: str) -> float:
    if (model, subset) not in indexed.index or column not in indexed.columns:
        return math.nan
    value = indexed.loc[(model, subset), column]
    return float(value) if pd.notna(value) else math.nan


def subgroup_figure(
    table: pd.DataFrame,
    *,
    metric: str = "auroc",
    level: float = 0.95,
    title: str = "",
) -> Figure:
    """``metric`` with its bootstrap interval per group of each attribute (one panel each), one
    marker per model; a group without scores (too small, one class) is named with its status."""
    attributes = list(dict.fromkeys(table["attribute"]))
    models = list(dict.fromkeys(table["model"]))
    columns = 2
    rows = max(1, math.ceil(len(attributes) / columns))
    fig = Figure(figsize=(11.0, 3.2 * rows + 0.8), layout="constrained")
    axes = fig.subplots(rows, columns, squeeze=False).ravel()
    step = 0.8 / max(len(models), 1)
    for ax, attribute in zip(axes, attributes, strict=False):
        part = table[table["attribute"] == attribute]
        groups = list(dict.fromkeys(part["group"]))
        for j, model in enumerate(models):
            rows_m = part[part["model"] == model].set_index("group").reindex(groups)
            y = np.arange(len(groups)) + (j - (len(models) - 1) / 2) * step
            point = rows_m[metric].to_numpy(dtype=float)
            low = rows_m[f"{metric}_low"].to_numpy(dtype=float)
            high = rows_m[f"{metric}_high"].to_numpy(dtype=float)
            shown = np.isfinite(point)
            ax.errorbar(
                point[shown],
                y[shown],
                xerr=np.abs(np.vstack([point - low, high - point])[:, shown]),
                fmt="o",
                markersize=4,
                capsize=2,
                label=DISPLAY_NAME.get(model, model).replace("\n", " "),
            )
        sizes = part.drop_duplicates("group").set_index("group")
        labels = []
        for group in groups:
            status = str(sizes.loc[group, "status"])
            note = "" if status == "ok" else f" ({status})"
            labels.append(f"{group}\nn={int(sizes.loc[group, 'n'])}{note}")
        ax.set_yticks(np.arange(len(groups)), labels, fontsize="x-small")
        if metric == "auroc":
            ax.axvline(0.5, color="grey", linestyle=":", linewidth=1)
        ax.set(xlim=(0, 1), xlabel=metric.upper(), title=attribute.replace("_", " "))
        ax.invert_yaxis()
    for ax in axes[len(attributes) :]:
        ax.set_visible(False)
    handles, names = _unique_legend(list(axes[: len(attributes)]))
    fig.legend(handles, names, loc="outside lower center", ncols=min(len(handles), 6))
    fig.suptitle(
        f"{title} {metric.upper()} per patient group, routed prediction, test split, "
        f"{level:.0%} bootstrap CI".strip()
    )
    return fig
