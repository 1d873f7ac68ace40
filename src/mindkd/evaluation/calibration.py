"""Probabilities from logits and the (outcome, probability) pairs calibration is measured on.

Binary / multilabel tasks: per-label sigmoid; every observed label entry is one prediction.
Multiclass: softmax; the top-label confidence against whether the top label is right (labels as
class indices, or one-hot rows turned into indices). ECE and reliability bins come from
``mindkd.training.metrics``.
"""

from __future__ import annotations

import numpy as np

from mindkd.models.batch import TaskKind


def probabilities(logits: np.ndarray, kind: TaskKind) -> np.ndarray:
    """Sigmoid (binary / multilabel) or softmax (multiclass) of ``(n, K)`` logits, float64."""
    z = np.asarray(logits, dtype=np.float64)
    if kind == "multiclass":
        shifted = z - z.max(axis=1, keepdims=True)
        expd = np.exp(shifted)
        return expd / expd.sum(axis=1, keepdims=True)
    return 0.5 * (1.0 + np.tanh(0.5 * z))  # stable sigmoid


def calibration_inputs(
    y: np.ndarray, probs: np.ndarray, kind: TaskKind
) -> tuple[np.ndarray, np.ndarray]:
    """``(y, p)`` in the form ``reliability_table`` expects for the task kind."""
    y = np.asarray(y, dtype=np.float64)
    if kind != "multiclass" or y.ndim == 1:
        return y, probs
    known = np.isfinite(y).all(axis=1)
    classes = np.where(known, np.nan_to_num(y).argmax(axis=1), -1).astype(np.float64)
    return classes, probs


def logit(p: np.ndarray, eps: float = 1e-6) -> np.ndarray:
    """``log(p / (1 − p))`` with p clipped to ``[eps, 1 − eps]``."""
    q = np.clip(np.asarray(p, dtype=np.float64), eps, 1.0 - eps)
    return np.log(q) - np.log1p(-q)
