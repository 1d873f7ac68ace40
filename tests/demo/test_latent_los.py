"""The demo's length of stay: learnable from both latents, with exact class probabilities."""

from __future__ import annotations

import numpy as np
import pandas as pd

from mindkd.demo import latent
from mindkd.demo.cohort import LOS_MAX_H, LOS_MEDIAN_H, LOS_MIN_H, LOS_SIGMA
from mindkd.evaluation.calibration import probabilities
from mindkd.evaluation.truth import truth_predictions
from mindkd.mimic.los import LOS_COLUMNS, los_class

SETTINGS = {"median_h": LOS_MEDIAN_H, "sigma": LOS_SIGMA, "min_h": LOS_MIN_H, "max_h": LOS_MAX_H}


def _draw(n: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Latents and stay lengths drawn the generator's way (cohort._layout_times)."""
    rng = np.random.default_rng(seed)
    z_e, z_i = rng.standard_normal((n, 4)), rng.standard_normal((n, 4))
    r = latent.LOS_LATENT_R
    noise = np.sqrt(1 - r**2) * rng.standard_normal(n) + r * latent.los_score(z_e, z_i)
    hours = np.clip(np.exp(np.log(LOS_MEDIAN_H) + LOS_SIGMA * noise), LOS_MIN_H, LOS_MAX_H)
    return z_e, z_i, hours


def test_class_probabilities_match_simulated_stays() -> None:
    """Over stays of at least 48 h, the mean true probability of each class equals its frequency,
    given both latents, the EHR latent alone, or the image latent alone; and the latents carry
    signal (the class is far more predictable than its marginal)."""
    z_e, z_i, hours = _draw(200_000, seed=1)
    kept = hours >= 48
    observed = np.bincount(los_class(hours[kept] - 48), minlength=10) / kept.sum()
    p = latent.los_class_probabilities(z_e[kept], z_i[kept], **SETTINGS)
    for key in ("p", "p_ehr_only", "p_cxr_only"):
        np.testing.assert_allclose(p[key].sum(axis=1), 1.0, atol=1e-9)
        np.testing.assert_allclose(p[key].mean(axis=0), observed, atol=0.004)
    assert observed[-1] > 0.02  # "14 days and more" occurs (LOS_MAX_H is 30 days)
    # a top decile of the score: its stays are far longer than the bottom decile's
    score = latent.los_score(z_e[kept], z_i[kept])
    top, bottom = score > np.quantile(score, 0.9), score < np.quantile(score, 0.1)
    assert np.median(hours[kept][top]) > 3 * np.median(hours[kept][bottom])


def test_the_ceiling_of_a_multiclass_task_is_log_probabilities() -> None:
    """softmax of the ceiling's logits gives back the truth's probabilities (not logit(p))."""
    z_e, z_i, _ = _draw(5, seed=2)
    p = latent.los_class_probabilities(z_e, z_i, **SETTINGS)["p"]
    truth = pd.DataFrame(p, columns=[f"p_{c}" for c in LOS_COLUMNS]).assign(stay_id=range(5))
    samples = pd.DataFrame({"key": range(5), "kind": "ehr_only"})
    ceiling = truth_predictions(truth, samples, "los", LOS_COLUMNS, "multiclass")
    assert ceiling is not None and set(ceiling["head"]) == {"routed"}  # no paired stay here
    routed = ceiling[ceiling["head"] == "routed"][[f"logit_{k}" for k in range(10)]].to_numpy()
    np.testing.assert_allclose(probabilities(routed, "multiclass"), p, atol=1e-9)
