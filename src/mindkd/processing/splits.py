"""Subject-level train/val/test splits from a seeded hash of the subject id alone.

``assign_splits`` hashes ``f"{seed}:{subject_id}"`` with BLAKE2b (8-byte digest), reads the digest as
an unsigned integer scaled to ``u`` in [0, 1), and puts the subject in the first split whose
cumulative fraction exceeds ``u``. A subject's split therefore depends on nothing but its id, the
seed and the fractions: it is the same in every table (stays, X-rays), in every run and whichever
other subjects are present, so both modalities agree by construction and adding data never moves
a subject. Fractions are met in expectation (binomial noise, about 0.5 % on 10 000 subjects).
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterable, Sequence

import numpy as np
import pandas as pd

logger = logging.getLogger(__name__)

SPLITS: tuple[str, str, str] = ("train", "val", "test")
DEFAULT_FRACTIONS: tuple[float, float, float] = (0.7, 0.1, 0.2)
_TOLERANCE = 1e-6
_DIGEST_BYTES = 8


class SplitConfigError(ValueError):
    """The split configuration (``split.fractions``, ``split.seed``) is invalid."""


def validate_fractions(fractions: Sequence[float]) -> tuple[float, float, float]:
    """``fractions`` as a (train, val, test) tuple; raises naming ``split.fractions`` if invalid."""
    values = tuple(float(f) for f in fractions)
    problems: list[str] = []
    if len(values) != len(SPLITS):
        problems.append(f"needs {len(SPLITS)} values ({'/'.join(SPLITS)}), got {len(values)}")
    if any(not np.isfinite(f) or f < 0 for f in values):
        problems.append(f"each must be a finite number >= 0, got {list(values)}")
    if len(values) == len(SPLITS) and abs(sum(values) - 1.0) > _TOLERANCE:
        problems.append(f"must sum to 1, got {sum(values):.6g}")
    if problems:
        raise SplitConfigError(
            f"split.fractions {list(fractions)} is invalid: " + "; ".join(problems)
        )
    return values  # type: ignore[return-value]


def subject_uniform(subject_ids: Iterable[int], seed: int) -> np.ndarray:
    """The seeded hash of each subject id as a float in [0, 1) (float64, input order)."""
    scale = float(2 ** (8 * _DIGEST_BYTES))
    digests = [
        int.from_bytes(
            hashlib.blake2b(f"{seed}:{int(s)}".encode(), digest_size=_DIGEST_BYTES).digest(),
            "big",
        )
        for s in subject_ids
    ]
    # float64 has 53 bits: dividing a 64-bit integer can round up to exactly 1.0
    return np.minimum(np.array(digests, dtype=np.float64) / scale, np.nextafter(1.0, 0.0))


def assign_splits(
    subject_ids: Iterable[int] | pd.Series | np.ndarray,
    seed: int,
    fractions: Sequence[float] = DEFAULT_FRACTIONS,
) -> pd.DataFrame:
    """One row per unique subject: ``subject_id`` (int64, sorted) and ``split`` (train/val/test).

    Args:
        subject_ids: every subject seen in either modality (duplicates and order do not matter).
        seed: ``split.seed``; another seed gives another, equally stable, assignment.
        fractions: ``split.fractions``, (train, val, test), each >= 0, summing to 1.
    """
    bounds = np.cumsum(validate_fractions(fractions))
    ids = pd.Series(
        subject_ids if isinstance(subject_ids, pd.Series | np.ndarray) else list(subject_ids)
    )
    if ids.isna().any():
        raise SplitConfigError("subject_id has missing values; drop rows without a subject first")
    unique = np.unique(ids.to_numpy(dtype=np.int64))
    position = np.searchsorted(bounds, subject_uniform(unique.tolist(), seed), side="right")
    position = np.minimum(position, len(SPLITS) - 1)  # a sum of 1 - 1e-9 must not leave a gap
    split = pd.Categorical.from_codes(position, categories=list(SPLITS))
    table = pd.DataFrame({"subject_id": unique, "split": split.astype(str)})
    counts = table["split"].value_counts().reindex(list(SPLITS), fill_value=0)
    logger.info("Assigned %d subjects to splits (seed %s): %s", len(table), seed, counts.to_dict())
    return table
