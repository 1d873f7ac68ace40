"""The MFH diagnostic (``mindkd.evaluation.mfh``) against the demo generator's own latent model.

The generator draws death and length of stay from an EHR latent and an image latent, independent,
with known weights; so for teachers that are the exact per-modality conditionals the true γ of
every (teacher, head) pair is known (``true_gamma``). The diagnostic sees only features (noisy
copies of a modality's latent plus channels of pure noise) and the teachers' logits, like the
pipeline's no-KD embeddings and cached ensembles.

Break-on-purpose checks run while writing these tests (each went red, then was restored):
* measuring γ̂ on the fitting rows (``val = train``): the cross-modal pairs read γ̂ ≈ 0.2 and
  ``test_a_modality_without_the_teachers_signal_reads_zero`` fails;
* multiclass logits not centred per row: ``test_los_gamma_matches_the_truth`` fails;
* the fused teacher's truth computed as 1 for a unimodal head: ``test_ihm_gamma_matches_the_truth``
  fails.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mindkd.demo.latent import (
    W_CXR,
    W_EHR,
    los_class_probabilities,
    mortality_probabilities,
)
from mindkd.evaluation.calibration import logit
from mindkd.evaluation.mfh import (
    MfhParams,
    Split,
    choose_ridge,
    gamma_table,
    head_features,
    teacher_logits,
    true_gamma,
)

PARAMS = MfhParams(n_bootstrap=200)


def _features(latent: np.ndarray, rng: np.random.Generator, junk: int = 12) -> np.ndarray:
    noisy = latent + rng.normal(scale=0.1, size=latent.shape)
    return np.concatenate([noisy, rng.normal(size=(len(latent), junk))], axis=1)


def _split(n: int, seed: int, task: str) -> tuple[Split, tuple[np.ndarray, np.ndarray]]:
    rng = np.random.default_rng(seed)
    z_e, z_i = rng.normal(size=(n, 4)), rng.normal(size=(n, 4))
    if task == "ihm":
        p = mortality_probabilities(z_e, z_i)
        e, c = logit(p["p_death_ehr_only"])[:, None], logit(p["p_death_cxr_only"])[:, None]
        kind = "binary"
    else:
        p = los_class_probabilities(z_e, z_i, median_h=60.0, sigma=0.9, min_h=4.0, max_h=720.0)
        e = np.log(np.clip(p["p_ehr_only"], 1e-12, 1))
        c = np.log(np.clip(p["p_cxr_only"], 1e-12, 1))
        kind = "multiclass"
    features = head_features(_features(z_e, rng), _features(z_i, rng))
    return Split(features, teacher_logits(e, c, kind, "mean_logits")), (e, c)


def _table(task: str, n_train: int = 3000, n_val: int = 2000) -> pd.DataFrame:
    train, _ = _split(n_train, 1, task)
    val, (e, c) = _split(n_val, 2, task)
    kind = "binary" if task == "ihm" else "multiclass"
    table = gamma_table(train, val, kind, PARAMS)
    exact = true_gamma(e, c, kind, "mean_logits")
    return table.merge(exact, on=["teacher", "head"])


def test_ihm_gamma_matches_the_truth() -> None:
    table = _table("ihm")
    assert len(table) == 9
    assert (table["gamma"] - table["gamma_true"]).abs().max() < 0.05, table
    # the fused teacher's share reachable from the EHR alone follows the generator's weights
    share = table.set_index(["teacher", "head"]).loc[("fused", "ehr"), "gamma_true"]
    weights = np.sum(np.square(W_EHR)) / (np.sum(np.square(W_EHR)) + np.sum(np.square(W_CXR)))
    assert share == pytest.approx(weights, abs=0.06)


def test_los_gamma_matches_the_truth() -> None:
    table = _table("los")
    assert (table["gamma"] - table["gamma_true"]).abs().max() < 0.06, table


def test_verdicts_follow_the_truth_where_it_is_clear() -> None:
    table = _table("ihm").set_index(["teacher", "head"])
    for pair in [("ehr", "ehr"), ("cxr", "cxr"), ("fused", "fused"), ("ehr", "fused")]:
        assert table.loc[pair, "verdict"] == "helps"
    for pair in [("ehr", "cxr"), ("cxr", "ehr")]:  # what MCKD's cross-modal term would use
        assert table.loc[pair, "verdict"] == "no help"
    assert table.loc[("ehr", "cxr"), "used_by"] == "MCKD"
    assert table.loc[("ehr", "ehr"), "used_by"] == "MIND"


def test_a_modality_without_the_teachers_signal_reads_zero() -> None:
    """Few samples and many noise channels: a map scored on its own fitting rows would find
    signal; γ̂ is measured on held-out rows, so it stays at 0."""
    rng = np.random.default_rng(0)
    train, _ = _split(150, 1, "ihm")
    val, _ = _split(150, 2, "ihm")
    noisy = {
        h: np.concatenate([f, rng.normal(size=(len(f), 40))], axis=1)
        for h, f in train.features.items()
    }
    noisy_val = {
        h: np.concatenate([f, rng.normal(size=(len(f), 40))], axis=1)
        for h, f in val.features.items()
    }
    weak = MfhParams(n_bootstrap=200, ridge=0.01)  # a penalty that lets the map memorise
    table = gamma_table(
        Split(noisy, train.teachers), Split(noisy_val, val.teachers), "binary", weak
    ).set_index(["teacher", "head"])
    for pair in [("ehr", "cxr"), ("cxr", "ehr")]:
        assert table.loc[pair, "gamma"] < 0.05
        assert table.loc[pair, "gamma_low"] < 0.0 < table.loc[("ehr", "ehr"), "gamma_low"]


def test_cross_validation_penalises_noise_and_spares_signal() -> None:
    rng = np.random.default_rng(4)
    x = rng.normal(size=(300, 30))
    assert choose_ridge(x, rng.normal(size=(300, 1))) >= 1e3  # nothing to learn: shrink it all
    assert choose_ridge(x, x[:, :3] @ np.ones((3, 1))) <= 1.0  # a clean linear signal


def test_too_few_samples_give_no_verdict() -> None:
    train, _ = _split(10, 1, "ihm")
    val, _ = _split(10, 2, "ihm")
    table = gamma_table(train, val, "binary", PARAMS)
    assert table["gamma"].isna().all() and table["verdict"].isna().all()


def test_thresholds_must_be_ordered() -> None:
    with pytest.raises(ValueError, match="fails_below"):
        MfhParams(helps_above=0.3, fails_below=0.4)
