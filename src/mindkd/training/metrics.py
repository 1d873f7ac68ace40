"""Evaluation metrics: AUROC, AUPRC, calibration, and percentile-bootstrap confidence intervals.

Labels ``y`` are ``(N,)`` or ``(N, K)`` floats in {0, 1} with NaN for unknown entries (each label is
scored on its observed samples); for a multiclass task ``y`` may be ``(N,)`` class indices with
``(N, K)`` scores, scored one-vs-rest. Multilabel metrics are macro averages over the labels that have
both classes in the evaluated set; the others are skipped and counted (``LabelwiseScore.n_skipped``).

AUROC and AUPRC are computed by one sort per label and cumulative sums over tie groups, with sample
*weights*; a bootstrap resample is the same computation with the weights given by how often each sample
was drawn, so 1000 resamples cost one sort and a few ``(R, N)`` array operations per label. Both equal
scikit-learn's ``roc_auc_score`` / ``average_precision_score`` (ties included; tested).

Multiclass tasks also get the metrics a length-of-stay reader expects, of the arg-max prediction:
``accuracy``, ``macro_f1`` and ``linear_kappa`` (Cohen's κ with linear weights over the ordered
classes, as mimic3-benchmarks reports). Each is a function of the (weighted) confusion matrix, so a
bootstrap resample is one ``(R, N) @ (N, K²)`` product; they equal scikit-learn's ``accuracy_score``,
``f1_score(average="macro")`` and ``cohen_kappa_score(weights="linear", labels=range(K))`` (tested).
"""

from __future__ import annotations

import logging
import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd

logger = logging.getLogger(__name__)

MetricFn = Callable[[np.ndarray, np.ndarray], float]
_CHUNK_ELEMENTS = 1 << 22  # (resamples × samples) per vectorised chunk: ~32 MB of float64


@dataclass(frozen=True)
class LabelwiseScore:
    """A macro-averaged score with its per-label values (NaN where a label was skipped)."""

    value: float
    per_label: np.ndarray
    n_skipped: int

    @property
    def n_labels(self) -> int:
        return int(self.per_label.shape[0])


@dataclass(frozen=True)
class BootstrapResult:
    """A percentile bootstrap: the point estimate on all samples and the (1 − α) interval."""

    point: float
    low: float
    high: float
    n_resamples: int
    n_skipped: int  # resamples where the metric was undefined (e.g. one class drawn)
    values: np.ndarray  # (n_resamples - n_skipped,) the metric on each usable resample


def as_label_matrix(y: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(y, scores)`` as float64 ``(N, K)`` arrays; multiclass indices become one-hot rows.

    ``y (N,)`` with ``scores (N,)`` or ``(N, 1)`` is binary; ``y (N,)`` with ``scores (N, K > 1)`` holds
    class indices (negative or NaN = unknown). Raises ``ValueError`` on mismatched shapes or non-finite
    scores where a label is observed.
    """
    y = np.asarray(y, dtype=np.float64)
    s = np.asarray(scores, dtype=np.float64)
    if s.ndim == 1:
        s = s[:, None]
    if y.ndim == 1 and s.shape[1] == 1:
        y = y[:, None]
    elif y.ndim == 1:
        known = np.isfinite(y) & (y >= 0)
        onehot = np.full(s.shape, np.nan)
        onehot[known] = 0.0
        onehot[np.flatnonzero(known), y[known].astype(np.int64)] = 1.0
        y = onehot
    if y.shape != s.shape or y.ndim != 2:
        raise ValueError(f"labels {y.shape} and scores {s.shape} do not match")
    bad = np.isfinite(y) & ~np.isfinite(s)
    if bad.any():
        raise ValueError(f"{int(bad.sum())} scores are NaN or infinite where a label is observed")
    return y, s


def _tie_groups(sorted_scores: np.ndarray) -> np.ndarray:
    """Start positions of runs of equal values in a sorted 1-D array."""
    change = np.empty(sorted_scores.shape[0], dtype=bool)
    change[:1] = True
    np.not_equal(sorted_scores[1:], sorted_scores[:-1], out=change[1:])
    return np.flatnonzero(change)


def _grouped_weights(
    y: np.ndarray, s: np.ndarray, w: np.ndarray, descending: bool
) -> tuple[np.ndarray, np.ndarray]:
    """Positive and negative weight per tie group of the sorted scores: two ``(R, G)`` arrays."""
    order = np.argsort(-s if descending else s, kind="stable")
    starts = _tie_groups(s[order])
    w = w[:, order]  # (R, n)
    pos = np.where(y[order] == 1.0, w, 0.0)
    neg = w - pos
    if starts.shape[0] == s.shape[0]:  # no ties: every sample is its own group
        return pos, neg
    return np.add.reduceat(pos, starts, axis=1), np.add.reduceat(neg, starts, axis=1)


def _auroc_weighted(y: np.ndarray, s: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Weighted Mann-Whitney AUROC of one label for each row of weights ``w (R, n)`` -> ``(R,)``.

    AUROC = Σ_pos w_i (W_neg(s < s_i) + ½ W_neg(s = s_i)) / (W_pos · W_neg); NaN where a class has no
    weight.
    """
    pos, neg = _grouped_weights(y, s, w, descending=False)  # (R, G) each, ascending scores
    neg_below = np.cumsum(neg, axis=1) - neg
    num = (pos * (neg_below + 0.5 * neg)).sum(axis=1)
    denom = pos.sum(axis=1) * neg.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(denom > 0, num / denom, np.nan)


def _auprc_weighted(y: np.ndarray, s: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Weighted average precision (scikit-learn's step-wise AP, no interpolation) -> ``(R,)``.

    AP = Σ_thresholds (ΔTP / W_pos) · precision, thresholds at the distinct scores, highest first; NaN
    where a class has no weight.
    """
    pos, neg = _grouped_weights(y, s, w, descending=True)
    tp = np.cumsum(pos, axis=1)
    predicted = tp + np.cumsum(neg, axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        precision = np.where(predicted > 0, tp / predicted, 0.0)
        n_pos, n_neg = pos.sum(axis=1), neg.sum(axis=1)
        ap = (pos * precision).sum(axis=1) / n_pos
        return np.where((n_pos > 0) & (n_neg > 0), ap, np.nan)


_Weighted = Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray]


def _labelwise_weighted(fn: _Weighted, y: np.ndarray, s: np.ndarray, w: np.ndarray) -> np.ndarray:
    """``fn`` on each label's observed samples: ``(R, K)`` values for weights ``w (R, N)``."""
    out = np.full((w.shape[0], y.shape[1]), np.nan)
    for k in range(y.shape[1]):
        observed = np.isfinite(y[:, k])
        if observed.all():
            out[:, k] = fn(y[:, k], s[:, k], w)
        elif observed.any():
            out[:, k] = fn(y[observed, k], s[observed, k], w[:, observed])
    return out


def _labelwise(fn: _Weighted, name: str, y: np.ndarray, scores: np.ndarray) -> LabelwiseScore:
    y2, s2 = as_label_matrix(y, scores)
    per_label = _labelwise_weighted(fn, y2, s2, np.ones((1, y2.shape[0])))[0]
    n_skipped = int(np.isnan(per_label).sum())
    if n_skipped:
        logger.warning(
            "%s: %d of %d labels have a single class in the evaluated set and were skipped",
            name,
            n_skipped,
            per_label.shape[0],
        )
    value = float(np.nanmean(per_label)) if n_skipped < per_label.shape[0] else math.nan
    return LabelwiseScore(value=value, per_label=per_label, n_skipped=n_skipped)


def auroc_labelwise(y: np.ndarray, scores: np.ndarray) -> LabelwiseScore:
    """AUROC per label and its macro mean over the labels with both classes (the others skipped)."""
    return _labelwise(_auroc_weighted, "AUROC", y, scores)


def auprc_labelwise(y: np.ndarray, scores: np.ndarray) -> LabelwiseScore:
    """Average precision per label and its macro mean over the labels with both classes."""
    return _labelwise(_auprc_weighted, "AUPRC", y, scores)


def auroc(y: np.ndarray, scores: np.ndarray) -> float:
    """Area under the ROC curve; macro over labels for multilabel / one-vs-rest multiclass.

    Scores may be logits or probabilities (AUROC depends only on their order). Labels with a single
    class in the evaluated set are skipped (logged); NaN when every label is skipped.
    """
    return auroc_labelwise(y, scores).value


def auprc(y: np.ndarray, scores: np.ndarray) -> float:
    """Area under the precision-recall curve as average precision; macro over labels like ``auroc``."""
    return auprc_labelwise(y, scores).value


def class_pairs(y: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray, int]:
    """``(true, predicted, K)`` class indices of a multiclass task: the rows with a known class
    (index labels or one-hot rows), the prediction the arg-max of the scores."""
    y2, s2 = as_label_matrix(y, scores)
    k = s2.shape[1]
    if k < 2:
        raise ValueError("class metrics need a multiclass task (K >= 2 scores per row)")
    known = np.isfinite(y2).all(axis=1) & (y2.sum(axis=1) == 1.0)
    true = np.full(len(y2), -1, dtype=np.int64)
    true[known] = y2[known].argmax(axis=1)
    return true, s2.argmax(axis=1).astype(np.int64), k


def _confusions(true: np.ndarray, pred: np.ndarray, k: int, w: np.ndarray) -> np.ndarray:
    """``(r, K, K)`` weighted confusion counts [true, predicted], one per row of ``w (r, n)``;
    rows whose class is unknown (``true < 0``) count nowhere."""
    known = true >= 0
    cells = np.zeros((len(true), k * k))
    cells[np.flatnonzero(known), true[known] * k + pred[known]] = 1.0
    return (w @ cells).reshape(-1, k, k)


def _accuracy_of(c: np.ndarray) -> np.ndarray:
    total = c.sum(axis=(1, 2))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(total > 0, np.trace(c, axis1=1, axis2=2) / total, np.nan)


def _macro_f1_of(c: np.ndarray) -> np.ndarray:
    """Mean F1 over the classes that occur as truth or prediction (scikit-learn's ``macro``)."""
    tp = np.diagonal(c, axis1=1, axis2=2)
    support, predicted = c.sum(axis=2), c.sum(axis=1)
    present = (support + predicted) > 0
    with np.errstate(invalid="ignore", divide="ignore"):
        f1 = np.where(present, 2.0 * tp / (support + predicted), 0.0)
        return np.where(present.any(axis=1), f1.sum(axis=1) / present.sum(axis=1), np.nan)


def _linear_kappa_of(c: np.ndarray) -> np.ndarray:
    """Cohen's κ with linear weights |i − j| over the K ordered classes (all K, present or not)."""
    k = c.shape[1]
    weights = np.abs(np.arange(k)[:, None] - np.arange(k)[None, :]).astype(np.float64)
    total = c.sum(axis=(1, 2))
    expected = c.sum(axis=2)[:, :, None] * c.sum(axis=1)[:, None, :]  # row x column marginals
    with np.errstate(invalid="ignore", divide="ignore"):
        expected = expected / total[:, None, None]
        observed = (c * weights).sum(axis=(1, 2))
        chance = (expected * weights).sum(axis=(1, 2))
        return np.where(chance > 0, 1.0 - observed / chance, np.nan)


_FromConfusions = Callable[[np.ndarray], np.ndarray]


def _class_metric(of: _FromConfusions, y: np.ndarray, scores: np.ndarray) -> float:
    true, pred, k = class_pairs(y, scores)
    return float(of(_confusions(true, pred, k, np.ones((1, len(true)))))[0])


def accuracy(y: np.ndarray, scores: np.ndarray) -> float:
    """Share of the samples with a known class whose arg-max score is that class."""
    return _class_metric(_accuracy_of, y, scores)


def macro_f1(y: np.ndarray, scores: np.ndarray) -> float:
    """Macro-averaged F1 of the arg-max predictions (classes seen as truth or prediction)."""
    return _class_metric(_macro_f1_of, y, scores)


def linear_kappa(y: np.ndarray, scores: np.ndarray) -> float:
    """Cohen's κ with linear weights, as mimic3-benchmarks reports for length of stay: the classes
    are ordered, and a prediction two classes off costs twice one class off."""
    return _class_metric(_linear_kappa_of, y, scores)


def _calibration_pairs(y: np.ndarray, p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Flat ``(outcome, probability)`` pairs: every observed label entry, or top-label for multiclass."""
    y = np.asarray(y, dtype=np.float64)
    p = np.asarray(p, dtype=np.float64)
    if y.ndim == 1 and p.ndim == 2 and p.shape[1] > 1:  # multiclass: top-label confidence
        known = np.isfinite(y) & (y >= 0)
        confidence = p[known].max(axis=1)
        correct = (p[known].argmax(axis=1) == y[known]).astype(np.float64)
        return correct, confidence
    y2, p2 = as_label_matrix(y, p)
    observed = np.isfinite(y2)
    return y2[observed], p2[observed]


def reliability_table(y: np.ndarray, p: np.ndarray, n_bins: int = 15) -> pd.DataFrame:
    """Equal-width bins of predicted probability with their mean prediction and observed frequency.

    ``p`` are probabilities in [0, 1]. Bin b holds ``b/n_bins <= p < (b+1)/n_bins`` (the last bin
    includes 1). Binary / multilabel: every observed label entry is one prediction; multiclass (``y``
    class indices, ``p (N, K)``): the top-label confidence against whether the top label is right.
    Columns: ``bin, lower, upper, count, mean_predicted, observed, gap`` (observed − mean_predicted;
    NaN for empty bins).
    """
    if n_bins < 1:
        raise ValueError(f"n_bins must be >= 1, got {n_bins}")
    outcome, prob = _calibration_pairs(y, p)
    if prob.size and (prob.min() < 0.0 or prob.max() > 1.0):
        raise ValueError(
            "p must be probabilities in [0, 1] (apply sigmoid / softmax to logits first)"
        )
    bins = np.minimum((prob * n_bins).astype(np.int64), n_bins - 1)
    count = np.bincount(bins, minlength=n_bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_p = np.bincount(bins, weights=prob, minlength=n_bins) / count
        observed = np.bincount(bins, weights=outcome, minlength=n_bins) / count
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    return pd.DataFrame(
        {
            "bin": np.arange(n_bins),
            "lower": edges[:-1],
            "upper": edges[1:],
            "count": count,
            "mean_predicted": mean_p,
            "observed": observed,
            "gap": observed - mean_p,
        }
    )


def expected_calibration_error(y: np.ndarray, p: np.ndarray, n_bins: int = 15) -> float:
    """ECE = Σ_b (n_b / n) · |observed_b − mean_predicted_b| over the bins of ``reliability_table``."""
    table = reliability_table(y, p, n_bins)
    total = int(table["count"].sum())
    if total == 0:
        return math.nan
    filled = table[table["count"] > 0]
    return float((filled["count"] / total * filled["gap"].abs()).sum())


def resample_indices(n: int, n_resamples: int, seed: int) -> np.ndarray:
    """Bootstrap draws: ``(n_resamples, n)`` indices in [0, n), from ``np.random.default_rng(seed)``."""
    rng = np.random.default_rng(seed)
    return rng.integers(0, n, size=(n_resamples, n))


@dataclass(frozen=True)
class Resamples:
    """Bootstrap resamples of ``n`` rows, drawn by *group* (cluster bootstrap).

    ``draws``: ``(R, G)`` group indices drawn with replacement per resample; ``groups``: ``(n,)``
    the group of each row, in ``[0, G)``. A resample holds every row of each drawn group, as often
    as the group was drawn, so rows of one group (the stays of one subject) always move together.
    With one row per group it is the ordinary row bootstrap, identical draw for draw to
    ``resample_indices(n, R, seed)`` with the same seed.

    >>> r = Resamples.of_groups(["s1", "s1", "s2"], n_resamples=4, seed=0)
    >>> w = r.weights()
    >>> bool((w[:, 0] == w[:, 1]).all()), w.shape
    (True, (4, 3))
    """

    draws: np.ndarray
    groups: np.ndarray

    @classmethod
    def of_rows(cls, n: int, n_resamples: int, seed: int) -> Resamples:
        """The ordinary bootstrap over rows (``resample_indices``)."""
        return cls(resample_indices(n, n_resamples, seed), np.arange(n))

    @classmethod
    def of_groups(cls, keys: object, n_resamples: int, seed: int) -> Resamples:
        """Resample the groups named by ``keys`` (one per row; e.g. subject ids), seeded."""
        codes, uniques = pd.factorize(pd.Series(np.asarray(keys)), sort=False)
        if (codes < 0).any():
            raise ValueError("every row needs a group key (found a missing one)")
        rng = np.random.default_rng(seed)
        g = len(uniques)
        return cls(rng.integers(0, g, size=(n_resamples, g)), codes.astype(np.int64))

    @property
    def n_resamples(self) -> int:
        return int(self.draws.shape[0])

    @property
    def n(self) -> int:
        return int(self.groups.shape[0])

    def weights(self, start: int = 0, stop: int | None = None) -> np.ndarray:
        """``(r, n)`` float64: how often each row is in resamples ``start:stop``."""
        draws = self.draws[start:stop]
        g = int(self.groups.max()) + 1 if self.n else 0
        return _draw_counts(draws, g)[:, self.groups]

    def rows(self, r: int) -> np.ndarray:
        """The row indices of resample ``r`` (each row as often as it was drawn)."""
        return np.repeat(np.arange(self.n), self.weights(r, r + 1)[0].astype(np.int64))


def _draw_counts(indices: np.ndarray, n: int) -> np.ndarray:
    """How often each sample was drawn, per resample: ``(R, n)`` float64 weights."""
    r = indices.shape[0]
    flat = (indices + n * np.arange(r)[:, None]).ravel()  # (R * n,)
    return np.bincount(flat, minlength=r * n).reshape(r, n).astype(np.float64)


def _vectorised_macro(fn: _Weighted) -> Callable[[np.ndarray, np.ndarray, Resamples], np.ndarray]:
    def batched(y: np.ndarray, scores: np.ndarray, resamples: Resamples) -> np.ndarray:
        y2, s2 = as_label_matrix(y, scores)
        n = y2.shape[0]
        step = max(1, _CHUNK_ELEMENTS // max(n, 1))
        out = np.empty(resamples.n_resamples)
        for start in range(0, resamples.n_resamples, step):
            w = resamples.weights(start, start + step)
            per_label = _labelwise_weighted(fn, y2, s2, w)  # (r, K)
            with warnings.catch_warnings():  # all-NaN rows ("mean of empty slice") become NaN
                warnings.simplefilter("ignore", RuntimeWarning)
                out[start : start + step] = np.nanmean(per_label, axis=1)
        return out

    return batched


def _vectorised_class(
    of: _FromConfusions,
) -> Callable[[np.ndarray, np.ndarray, Resamples], np.ndarray]:
    def batched(y: np.ndarray, scores: np.ndarray, resamples: Resamples) -> np.ndarray:
        true, pred, k = class_pairs(y, scores)
        step = max(1, _CHUNK_ELEMENTS // max(len(true) + k * k, 1))
        out = np.empty(resamples.n_resamples)
        for start in range(0, resamples.n_resamples, step):
            w = resamples.weights(start, start + step)
            out[start : start + step] = of(_confusions(true, pred, k, w))
        return out

    return batched


_VECTORISED: dict[
    Callable[..., float], Callable[[np.ndarray, np.ndarray, Resamples], np.ndarray]
] = {
    auroc: _vectorised_macro(_auroc_weighted),
    auprc: _vectorised_macro(_auprc_weighted),
    accuracy: _vectorised_class(_accuracy_of),
    macro_f1: _vectorised_class(_macro_f1_of),
    linear_kappa: _vectorised_class(_linear_kappa_of),
}


def bootstrap(
    metric_fn: MetricFn,
    y: np.ndarray,
    p: np.ndarray,
    *,
    n_resamples: int = 1000,
    seed: int = 0,
    alpha: float = 0.05,
    indices: np.ndarray | None = None,
    resamples: Resamples | None = None,
    warn: bool = True,
) -> BootstrapResult:
    """Percentile bootstrap of ``metric_fn(y, p)`` over samples (rows), seeded and reproducible.

    The resamples are ``resamples`` when given (e.g. ``Resamples.of_groups(subject_ids, ...)``: a
    cluster bootstrap), else one ``(R, N)`` index array (``indices``, or
    ``resample_indices(N, n_resamples, seed)``). ``auroc``, ``auprc`` and the class metrics
    (``accuracy``, ``macro_f1``, ``linear_kappa``: from per-resample confusion matrices) are
    evaluated on all resamples at once from draw counts; any other metric is called once per
    resample. A resample on which the metric is undefined (NaN, or a ``ValueError`` such as
    scikit-learn's "only one class present") is skipped and counted.
    The interval is the (α/2, 1 − α/2) percentiles of the usable resamples (NaN if there are none).
    Skipped resamples are logged as a warning unless ``warn`` is False (the caller reports
    ``n_skipped`` itself).
    """
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")
    y = np.asarray(y)
    p = np.asarray(p)
    n = y.shape[0]
    if p.shape[0] != n:
        raise ValueError(f"y has {n} rows but p has {p.shape[0]}")
    if resamples is None:
        if indices is None:
            if n_resamples < 1:
                raise ValueError(f"n_resamples must be >= 1, got {n_resamples}")
            indices = resample_indices(n, n_resamples, seed)
        indices = np.asarray(indices, dtype=np.int64)
        if indices.ndim != 2 or indices.shape[1] != n or indices.min() < 0 or indices.max() >= n:
            raise ValueError(f"indices must be (R, {n}) with values in [0, {n})")
        resamples = Resamples(indices, np.arange(n))
    elif resamples.n != n:
        raise ValueError(f"the resamples are of {resamples.n} rows, y has {n}")
    point = float(metric_fn(y, p))
    vectorised = _VECTORISED.get(metric_fn)
    if vectorised is not None:
        values = vectorised(y, p, resamples)
    elif indices is not None:
        values = np.array([_safe_metric(metric_fn, y[idx], p[idx]) for idx in indices])
    else:
        rows = (resamples.rows(r) for r in range(resamples.n_resamples))
        values = np.array([_safe_metric(metric_fn, y[idx], p[idx]) for idx in rows])
    usable = values[np.isfinite(values)]
    n_skipped = int(values.shape[0] - usable.shape[0])
    if n_skipped and warn:
        logger.warning(
            "bootstrap: %d of %d resamples left the metric undefined (one class drawn) and were "
            "skipped",
            n_skipped,
            values.shape[0],
        )
    if usable.size:
        low, high = np.percentile(usable, [100 * alpha / 2, 100 * (1 - alpha / 2)])
    else:
        low = high = math.nan
    return BootstrapResult(
        point=point,
        low=float(low),
        high=float(high),
        n_resamples=int(values.shape[0]),
        n_skipped=n_skipped,
        values=usable,
    )


def bootstrap_ci(
    metric_fn: MetricFn,
    y: np.ndarray,
    p: np.ndarray,
    *,
    n_resamples: int = 1000,
    seed: int = 0,
    alpha: float = 0.05,
) -> tuple[float, float, float]:
    """``(point, low, high)``: the metric and its (1 − α) percentile-bootstrap interval.

    See ``bootstrap`` for the resampling, the vectorised metrics and the skipped-resample count.
    """
    result = bootstrap(metric_fn, y, p, n_resamples=n_resamples, seed=seed, alpha=alpha)
    return result.point, result.low, result.high


def _safe_metric(metric_fn: MetricFn, y: np.ndarray, p: np.ndarray) -> float:
    try:
        return float(metric_fn(y, p))
    except ValueError:
        return math.nan
