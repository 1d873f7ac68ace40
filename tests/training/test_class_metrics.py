"""Accuracy, macro-F1 and linearly weighted κ of multiclass predictions, point and bootstrap."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import accuracy_score, cohen_kappa_score, f1_score

from mindkd.training.metrics import (
    Resamples,
    accuracy,
    bootstrap,
    class_pairs,
    linear_kappa,
    macro_f1,
)

K = 10


def _case(seed: int, n: int = 300) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """One-hot labels (two classes never occur), scores with signal, and their class indices."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, K - 2, n)
    scores = rng.normal(size=(n, K))
    scores[np.arange(n), y] += rng.normal(1.0, 1.0, n)
    return np.eye(K)[y], scores, y, scores.argmax(axis=1)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_point_values_equal_scikit_learn(seed: int) -> None:
    onehot, scores, y, predicted = _case(seed)
    assert accuracy(onehot, scores) == pytest.approx(accuracy_score(y, predicted), abs=1e-12)
    assert macro_f1(onehot, scores) == pytest.approx(
        f1_score(y, predicted, average="macro"), abs=1e-12
    )
    expected = cohen_kappa_score(y, predicted, weights="linear", labels=list(range(K)))
    assert linear_kappa(onehot, scores) == pytest.approx(expected, abs=1e-12)


def test_kappa_weighs_distance_between_ordered_classes() -> None:
    """One class off costs less than five off: a linear κ, not an unweighted one."""
    y = np.repeat(np.arange(K), 20)
    near = np.eye(K)[np.clip(y + 1, 0, K - 1)]  # predicted one class later
    far = np.eye(K)[np.clip(y + 5, 0, K - 1)]
    assert accuracy(np.eye(K)[y], near) == accuracy(np.eye(K)[y], far) == pytest.approx(0.1)
    assert linear_kappa(np.eye(K)[y], near) > linear_kappa(np.eye(K)[y], far) + 0.3


def test_unknown_rows_count_nowhere() -> None:
    onehot, scores, y, predicted = _case(3)
    masked = onehot.copy()
    masked[:50] = np.nan  # label unknown
    true, _, _ = class_pairs(masked, scores)
    assert (true[:50] == -1).all()
    assert accuracy(masked, scores) == pytest.approx(accuracy_score(y[50:], predicted[50:]))


def test_the_bootstrap_equals_scikit_learn_on_every_resample() -> None:
    """The vectorised confusion-matrix path: one resample at a time with scikit-learn agrees."""
    onehot, scores, y, predicted = _case(4, n=120)
    groups = np.repeat(np.arange(60), 2)  # resampled by group, two rows each
    resamples = Resamples.of_groups(groups, n_resamples=200, seed=7)
    result = bootstrap(linear_kappa, onehot, scores, resamples=resamples)
    manual = [
        cohen_kappa_score(y[rows], predicted[rows], weights="linear", labels=list(range(K)))
        for rows in (resamples.rows(r) for r in range(200))
    ]
    np.testing.assert_allclose(result.values, manual, atol=1e-12)
    f1 = bootstrap(macro_f1, onehot, scores, resamples=resamples)
    manual_f1 = [
        f1_score(y[rows], predicted[rows], average="macro")
        for rows in (resamples.rows(r) for r in range(200))
    ]
    np.testing.assert_allclose(f1.values, manual_f1, atol=1e-12)
    assert f1.n_skipped == 0 and result.low < result.point < result.high
