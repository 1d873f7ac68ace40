"""AUROC / AUPRC against scikit-learn, calibration on hand examples, the percentile bootstrap."""

from __future__ import annotations

import logging

import numpy as np
import pytest
from sklearn.metrics import average_precision_score, roc_auc_score

from mindkd.training import (
    auprc,
    auprc_labelwise,
    auroc,
    auroc_labelwise,
    bootstrap,
    bootstrap_ci,
    expected_calibration_error,
    reliability_table,
    resample_indices,
)

NAN = np.nan


@pytest.mark.parametrize("seed", range(5))
def test_auroc_and_auprc_equal_sklearn_on_random_data_with_ties(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = int(rng.integers(20, 400))
    y = (rng.random(n) < rng.uniform(0.1, 0.6)).astype(float)
    y[:2] = [0.0, 1.0]  # both classes present
    scores = np.round(rng.normal(size=n) + y, int(rng.integers(0, 3)))  # rounding makes ties
    assert auroc(y, scores) == pytest.approx(roc_auc_score(y, scores), abs=1e-12)
    assert auprc(y, scores) == pytest.approx(average_precision_score(y, scores), abs=1e-12)


def test_multilabel_macro_skips_single_class_labels_and_masks_nan(
    caplog: pytest.LogCaptureFixture,
) -> None:
    rng = np.random.default_rng(7)
    y = (rng.random((300, 4)) < 0.3).astype(float)
    y[:, 2] = 0.0  # one class only: skipped
    y[rng.random(300) < 0.2, 1] = NAN  # unknown entries of label 1
    scores = rng.normal(size=(300, 4)) + np.nan_to_num(y)
    with caplog.at_level(logging.WARNING, logger="mindkd.training.metrics"):
        result = auroc_labelwise(y, scores)
    assert result.n_skipped == 1 and result.n_labels == 4
    assert "1 of 4 labels" in caplog.text
    observed = ~np.isnan(y[:, 1])
    expected = [
        roc_auc_score(y[:, 0], scores[:, 0]),
        roc_auc_score(y[observed, 1], scores[observed, 1]),
        roc_auc_score(y[:, 3], scores[:, 3]),
    ]
    assert np.isnan(result.per_label[2])
    assert result.value == pytest.approx(np.mean(expected), abs=1e-12)
    ap = auprc_labelwise(y, scores)
    assert ap.per_label[1] == pytest.approx(
        average_precision_score(y[observed, 1], scores[observed, 1])
    )
    assert np.isnan(auroc(np.zeros(5), np.arange(5.0)))


def test_multiclass_one_vs_rest_from_class_indices() -> None:
    rng = np.random.default_rng(3)
    y = rng.integers(0, 3, size=200)
    probs = rng.dirichlet(np.ones(3), size=200)
    expected = roc_auc_score(y, probs, multi_class="ovr", average="macro")
    assert auroc(y, probs) == pytest.approx(expected, abs=1e-12)


def test_ece_and_reliability_table_on_hand_example() -> None:
    y = np.array([1.0, 0.0, 1.0, 1.0])
    p = np.array([0.9, 0.8, 0.3, 0.2])
    table = reliability_table(y, p, n_bins=2)
    # bin [0, .5): p .3, .2 -> mean .25, observed 1.0; bin [.5, 1]: p .9, .8 -> mean .85, observed .5
    assert table["count"].tolist() == [2, 2]
    np.testing.assert_allclose(table["mean_predicted"], [0.25, 0.85])
    np.testing.assert_allclose(table["observed"], [1.0, 0.5])
    # ECE = .5 · |1 − .25| + .5 · |.5 − .85| = .375 + .175
    assert expected_calibration_error(y, p, n_bins=2) == pytest.approx(0.55)
    assert expected_calibration_error(np.array([1.0, 0.0]), np.array([1.0, 0.0])) == 0.0
    with pytest.raises(ValueError, match="probabilities"):
        expected_calibration_error(y, p * 3)


@pytest.mark.filterwarnings("ignore:Only one class is present")
def test_bootstrap_with_fixed_indices_matches_hand_computation() -> None:
    y = np.array([0.0, 0.0, 1.0, 1.0])
    p = np.array([0.1, 0.4, 0.35, 0.8])
    indices = np.array(
        [
            [0, 1, 2, 3],  # all samples: 3 of 4 pairs ordered -> 0.75
            [0, 0, 2, 3],  # negatives .1 .1, positives .35 .8 -> 1.0
            [1, 1, 2, 2],  # negatives .4 .4, positives .35 .35 -> 0.0
            [0, 1, 1, 0],  # negatives only -> skipped
            [1, 2, 3, 3],  # negative .4; positives .35 .8 .8 -> 2/3
        ]
    )
    result = bootstrap(auroc, y, p, alpha=0.5, indices=indices)
    assert result.point == pytest.approx(0.75)
    assert result.n_skipped == 1 and result.n_resamples == 5
    np.testing.assert_allclose(result.values, [0.75, 1.0, 0.0, 2.0 / 3.0])
    # 25th / 75th percentiles of (0, 2/3, .75, 1) by linear interpolation: 0 + .75·(2/3), .75 + .25·.25
    assert result.low == pytest.approx(0.5)
    assert result.high == pytest.approx(0.8125)
    generic = bootstrap(roc_auc_score, y, p, alpha=0.5, indices=indices)  # per-resample path
    np.testing.assert_allclose(generic.values, result.values)
    assert generic.n_skipped == 1


def test_seeded_bootstrap_matches_an_independent_numpy_loop() -> None:
    rng = np.random.default_rng(11)
    n, r, seed = 8, 300, 5
    y = np.array([0.0, 1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0])  # P(no positive drawn) = (6/8)^8 ≈ 0.1
    p = rng.random(n)
    draws = np.random.default_rng(seed).integers(0, n, size=(r, n))
    values = []
    for idx in draws:
        if len(set(y[idx])) == 2:
            values.append(roc_auc_score(y[idx], p[idx]))
    expected_low, expected_high = np.percentile(values, [2.5, 97.5])

    point, low, high = bootstrap_ci(auroc, y, p, n_resamples=r, seed=seed)
    result = bootstrap(auroc, y, p, n_resamples=r, seed=seed)
    assert point == pytest.approx(roc_auc_score(y, p))
    assert result.n_skipped == r - len(values) > 0  # tiny n: some resamples draw one class
    np.testing.assert_allclose(result.values, values, atol=1e-12)
    assert (low, high) == pytest.approx((expected_low, expected_high), abs=1e-12)
    assert bootstrap_ci(auroc, y, p, n_resamples=r, seed=seed) == (point, low, high)
    assert bootstrap_ci(auroc, y, p, n_resamples=r, seed=seed + 1) != (point, low, high)
    np.testing.assert_array_equal(resample_indices(n, r, seed), draws)


def test_vectorised_multilabel_bootstrap_equals_per_resample_loop() -> None:
    rng = np.random.default_rng(2)
    y = (rng.random((40, 3)) < 0.3).astype(float)
    y[rng.random(40) < 0.2, 0] = NAN
    p = rng.random((40, 3))
    fast = bootstrap(auprc, y, p, n_resamples=50, seed=1)

    def per_resample(a: np.ndarray, b: np.ndarray) -> float:  # not auprc itself: the loop path
        return auprc(a, b)

    slow = bootstrap(per_resample, y, p, n_resamples=50, seed=1)
    np.testing.assert_allclose(fast.values, slow.values, atol=1e-12)
    assert (fast.low, fast.high) == pytest.approx((slow.low, slow.high), abs=1e-12)


def test_bootstrap_input_errors() -> None:
    y = np.array([0.0, 1.0, 0.0, 1.0])
    with pytest.raises(ValueError, match="alpha"):
        bootstrap_ci(auroc, y, y, alpha=1.5)
    with pytest.raises(ValueError, match="rows"):
        bootstrap_ci(auroc, y, y[:3])
    with pytest.raises(ValueError, match="NaN or infinite"):
        auroc(y, np.array([0.1, NAN, 0.3, 0.4]))
