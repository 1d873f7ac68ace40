"""The latent model that puts learnable signal into both modalities.

Per ICU admission: an EHR latent ``z_e`` and an image latent ``z_i`` (each 4-d, independent
N(0, 1)); per patient a chronic factor ``c`` ~ N(0, 1).

- In-hospital death: ``logit = b0 + W_EHR · z_e + W_CXR · z_i``, ``b0`` solved for
  ``MORTALITY_RATE``. The per-modality truths are the exact conditional expectations
  ``E[p | z_e]`` and ``E[p | z_i]`` (Gauss-Hermite quadrature over the other modality).
- Phenotype k: ``logit = a_k + ehr_k · z_e + cxr_k · z_i + chronic_k · c``, ``a_k`` solved for
  the phenotype's prevalence (``vocab.PHENOTYPES``); the per-modality truths ``E[p | z_e]`` and
  ``E[p | z_i]`` integrate the rest out (``phenotype_unimodal_probabilities``).
- ICU length of stay (hours): ``log los = log median + σ (√(1 − r²) ε + r s)`` with the unit-variance
  score ``s = (W_LOS_EHR · z_e + W_LOS_CXR · z_i) / norm`` and ε ~ N(0, 1), clipped to
  ``[min, max]``: the marginal is the same log-normal for any r, and the class of the stay left
  after 48 h (``mindkd.mimic.los``) has exact probabilities given both latents or one
  (``los_class_probabilities``).

EHR components shift the vital-sign trajectories (``ehr.py``); image components draw the findings
on the X-rays (``cxr.py``).
"""

from __future__ import annotations

from functools import cache

import numpy as np

from mindkd.demo.vocab import PHENOTYPES

LATENT_DIM = 4
MORTALITY_RATE = 0.12
#: Mortality weights on z_e (haemodynamic, respiratory, metabolic, neuro): norm ~1.33.
W_EHR: tuple[float, ...] = (1.0, 0.6, 0.45, 0.45)
#: Mortality weights on z_i (heart size, opacity, effusion, devices): norm ~1.10.
W_CXR: tuple[float, ...] = (0.55, 0.8, 0.45, 0.25)
#: Spread of a study's image latent around its ICU stay's z_i.
STUDY_NOISE_SD = 0.25
#: Correlation of an out-of-stay image latent with the patient's chronic factor, per component.
CHRONIC_IMAGE_LOADING: tuple[float, ...] = (0.6, 0.3, 0.4, 0.0)

#: Length-of-stay loadings on z_e and z_i (respiratory and opacity lead), and the correlation r of
#: log length of stay with the score they make.
W_LOS_EHR: tuple[float, ...] = (0.5, 0.9, 0.35, 0.2)
W_LOS_CXR: tuple[float, ...] = (0.25, 0.6, 0.4, 0.0)
LOS_LATENT_R = 0.75

_QUADRATURE_NODES = 48


def sigmoid(x: np.ndarray) -> np.ndarray:
    """Numerically stable logistic function."""
    return 0.5 * (1.0 + np.tanh(0.5 * np.asarray(x, dtype=np.float64)))


@cache
def _hermite() -> tuple[np.ndarray, np.ndarray]:
    nodes, weights = np.polynomial.hermite_e.hermegauss(_QUADRATURE_NODES)
    return nodes, weights / weights.sum()


def expected_sigmoid(mean: np.ndarray, sd: float) -> np.ndarray:
    """``E[sigmoid(mean + sd * Z)]`` for Z ~ N(0, 1), elementwise over ``mean``."""
    nodes, weights = _hermite()
    mean = np.asarray(mean, dtype=np.float64)
    return sigmoid(mean[..., None] + sd * nodes) @ weights


def solve_intercept(rate: float, sd: float) -> float:
    """The intercept b with ``E[sigmoid(b + sd * Z)] = rate`` (bisection; monotone in b)."""
    low, high = -20.0, 20.0
    for _ in range(80):
        mid = 0.5 * (low + high)
        if float(expected_sigmoid(np.array(mid), sd)) < rate:
            low = mid
        else:
            high = mid
    return 0.5 * (low + high)


@cache
def mortality_intercept() -> float:
    """b0 giving ``MORTALITY_RATE`` positives in expectation."""
    sd = float(np.hypot(np.linalg.norm(W_EHR), np.linalg.norm(W_CXR)))
    return solve_intercept(MORTALITY_RATE, sd)


def mortality_probabilities(z_e: np.ndarray, z_i: np.ndarray) -> dict[str, np.ndarray]:
    """True death probability and its per-modality conditional expectations, shape (n,)."""
    b0 = mortality_intercept()
    eta_e = z_e @ np.asarray(W_EHR)
    eta_i = z_i @ np.asarray(W_CXR)
    return {
        "p_death": sigmoid(b0 + eta_e + eta_i),
        "p_death_ehr_only": expected_sigmoid(b0 + eta_e, float(np.linalg.norm(W_CXR))),
        "p_death_cxr_only": expected_sigmoid(b0 + eta_i, float(np.linalg.norm(W_EHR))),
    }


@cache
def phenotype_coefficients() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(intercepts (K,), EHR loadings (K, 4), image loadings (K, 4), chronic loadings (K,))."""
    ehr = np.array([p.ehr for p in PHENOTYPES], dtype=np.float64)
    cxr = np.array([p.cxr for p in PHENOTYPES], dtype=np.float64)
    chronic = np.array([p.chronic for p in PHENOTYPES], dtype=np.float64)
    sds = np.sqrt((ehr**2).sum(1) + (cxr**2).sum(1) + chronic**2)
    intercepts = np.array(
        [solve_intercept(p.prevalence, float(sd)) for p, sd in zip(PHENOTYPES, sds, strict=True)]
    )
    return intercepts, ehr, cxr, chronic


def phenotype_probabilities(z_e: np.ndarray, z_i: np.ndarray, chronic: np.ndarray) -> np.ndarray:
    """True phenotype probabilities, shape (n, 25), columns in ``vocab.PHENOTYPES`` order."""
    intercepts, ehr, cxr, load = phenotype_coefficients()
    return sigmoid(intercepts + z_e @ ehr.T + z_i @ cxr.T + np.outer(chronic, load))


def phenotype_unimodal_probabilities(z_e: np.ndarray, z_i: np.ndarray) -> dict[str, np.ndarray]:
    """True phenotype probabilities given one modality's latent, shape (n, 25) each: ``ehr_only``
    = ``E[p | z_e]`` (the image part and the chronic factor integrated out, Gauss-Hermite) and
    ``cxr_only`` = ``E[p | z_i]``. The chronic factor is independent of both in-stay latents."""
    intercepts, ehr, cxr, chronic = phenotype_coefficients()
    sd_without_cxr = np.sqrt((cxr**2).sum(1) + chronic**2)  # (K,): what z_e alone does not see
    sd_without_ehr = np.sqrt((ehr**2).sum(1) + chronic**2)
    eta_e = intercepts + z_e @ ehr.T  # (n, K)
    eta_i = intercepts + z_i @ cxr.T
    out = {"ehr_only": np.empty_like(eta_e), "cxr_only": np.empty_like(eta_i)}
    for k in range(len(intercepts)):
        out["ehr_only"][:, k] = expected_sigmoid(eta_e[:, k], float(sd_without_cxr[k]))
        out["cxr_only"][:, k] = expected_sigmoid(eta_i[:, k], float(sd_without_ehr[k]))
    return out


def outside_stay_image_latents(chronic: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Image latents of studies outside ICU stays: chronic factor plus noise, shape (n, 4)."""
    r = np.asarray(CHRONIC_IMAGE_LOADING)
    noise = rng.standard_normal((len(chronic), LATENT_DIM))
    return np.outer(chronic, r) + np.sqrt(1.0 - r**2) * noise


def _los_norm() -> float:
    return float(np.hypot(np.linalg.norm(W_LOS_EHR), np.linalg.norm(W_LOS_CXR)))


def los_score(z_e: np.ndarray, z_i: np.ndarray) -> np.ndarray:
    """The unit-variance length-of-stay score of each admission, shape (n,)."""
    return (z_e @ np.asarray(W_LOS_EHR) + z_i @ np.asarray(W_LOS_CXR)) / _los_norm()


def los_class_probabilities(
    z_e: np.ndarray,
    z_i: np.ndarray,
    *,
    median_h: float,
    sigma: float,
    min_h: float,
    max_h: float,
    hours: float = 48.0,
) -> dict[str, np.ndarray]:
    """True probability of each length-of-stay class (``mindkd.mimic.los``) of the stay left after
    ``hours``, given the stay lasts ``hours``: shape (n, 10) given both latents (``p``), given z_e
    only (``p_ehr_only``) and given z_i only (``p_cxr_only``).

    Given both latents log los ~ N(log median + σ r s, σ² (1 − r²)); given one, the other's part of
    s joins the noise. The clip at ``[min_h, max_h]`` puts the mass above ``max_h`` at ``max_h``.
    """
    from scipy.special import ndtr

    from mindkd.mimic.los import bucket_bounds_hours

    r, norm = LOS_LATENT_R, _los_norm()
    s_e = z_e @ np.asarray(W_LOS_EHR) / norm
    s_i = z_i @ np.asarray(W_LOS_CXR) / norm
    var_e = float(np.sum(np.square(W_LOS_EHR))) / norm**2  # variance of s_e; s_i has 1 − var_e
    mu = np.log(median_h)
    cases = {
        "p": (s_e + s_i, 1.0 - r**2),
        "p_ehr_only": (s_e, 1.0 - r**2 + r**2 * (1.0 - var_e)),
        "p_cxr_only": (s_i, 1.0 - r**2 + r**2 * var_e),
    }

    def below(x: float, mean: np.ndarray, sd: float) -> np.ndarray:
        """P(clip(los) < x)."""
        if x <= min_h:
            return np.zeros_like(mean)
        if x > max_h:
            return np.ones_like(mean)
        return ndtr((np.log(x) - mean) / sd)

    out: dict[str, np.ndarray] = {}
    for name, (score, residual) in cases.items():
        mean, sd = mu + sigma * r * score, sigma * float(np.sqrt(residual))
        start = below(hours, mean, sd)
        columns = [
            below(hours + high, mean, sd) - below(hours + low, mean, sd)
            for low, high in bucket_bounds_hours()
        ]
        with np.errstate(invalid="ignore", divide="ignore"):
            out[name] = np.stack(columns, axis=1) / (1.0 - start)[:, None]
    return out
