"""The demo's per-modality phenotype truths: E[p | z_e] and E[p | z_i], checked by Monte Carlo."""

from __future__ import annotations

import numpy as np

from mindkd.demo import latent


def test_unimodal_phenotype_truths_integrate_the_rest_out() -> None:
    """For a few fixed latents of one modality, the mean true probability over 40 k draws of the
    other modality's latent and the chronic factor equals the closed form (Gauss-Hermite)."""
    rng = np.random.default_rng(3)
    fixed = rng.standard_normal((4, latent.LATENT_DIM))
    n = 40_000
    for own in ("ehr_only", "cxr_only"):
        exact = latent.phenotype_unimodal_probabilities(fixed, fixed)[own]  # (4, 25)
        for row in range(len(fixed)):
            other = rng.standard_normal((n, latent.LATENT_DIM))
            chronic = rng.standard_normal(n)
            mine = np.repeat(fixed[row : row + 1], n, axis=0)
            z_e, z_i = (mine, other) if own == "ehr_only" else (other, mine)
            simulated = latent.phenotype_probabilities(z_e, z_i, chronic).mean(axis=0)
            np.testing.assert_allclose(exact[row], simulated, atol=0.006)
    # and they are not the marginal: a modality's latent moves its phenotypes
    spread = latent.phenotype_unimodal_probabilities(fixed, fixed)["ehr_only"].std(axis=0)
    assert spread.max() > 0.05
