"""AV-MNIST-style pairing of spoken and written digits, with missing modalities by design.

Per split, seeded, in this order (each decision has its own generator, ``splits.rng``):

1. **Image-only samples** (the CXR-only analogue): a share ``missing_audio`` of the split's images,
   ``round(share · n)``, spread over the digits in proportion (``splits.apportion``), is served
   without audio. These images are never paired.
2. **Audio-only samples** (the EHR-only analogue): a share ``missing_image`` of the split's
   recordings, chosen the same way, gets no image (``dicom_id`` null).
3. **Pairing**: every other recording gets an image of the **same digit** from the **same split**,
   drawn from the images left after step 1. Within each (split, digit) the images are dealt in a
   seeded random order, each used once; only when the recordings outnumber them is a new pass dealt
   (a fresh permutation), so an image is used ``floor`` or ``ceil`` of recordings / images times, and
   never twice while another image of that digit and split is unused.

So every sample has at least one modality, the image-only images and the paired images are disjoint,
and no image or recording crosses splits. Inputs are ordered by key before any draw: the result does
not depend on the row order of the tables given.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import pandas as pd

from mindkd.avdigits.splits import (
    SPLITS,
    STREAM_MISSING_AUDIO,
    STREAM_MISSING_IMAGE,
    STREAM_PAIRING,
    apportion,
    rng,
)
from mindkd.avdigits.tables import LABELS, one_hot
from mindkd.processing.checks import require_columns

logger = logging.getLogger(__name__)

PAIR_COLUMNS: dict[str, str] = {
    "stay_id": "int64",
    "subject_id": "int64",
    "dicom_id": "object",  # the image key, None for an audio-only recording
    "split": "str",
}
CXR_ONLY_COLUMNS: dict[str, str] = {
    "dicom_id": "str",
    "subject_id": "int64",
    "digit": "int64",
    "split": "str",
    **dict.fromkeys(LABELS, "float32"),
}


class PairingError(ValueError):
    """Inputs or settings with which recordings cannot be paired."""


@dataclass(frozen=True)
class PairedSamples:
    """The pairing's outputs: ``pairs`` (one row per recording), ``cxr_only`` (image-only samples)."""

    pairs: pd.DataFrame
    cxr_only: pd.DataFrame


def _round_half_up(x: float) -> int:
    return int(np.floor(x + 0.5))


def select_share(table: pd.DataFrame, key: str, share: float, seed: int, stream: int) -> np.ndarray:
    """A boolean mask (row order of ``table``) of ``round(share · n)`` rows of each split, spread over
    the digits in proportion to their counts, drawn at random (seeded) within each digit."""
    if not 0.0 <= share <= 1.0:
        raise PairingError(f"a missing share must lie in [0, 1], got {share}")
    generator = rng(seed, stream)
    chosen = np.zeros(len(table), dtype=bool)
    keys = table[key].to_numpy()
    digits = table["digit"].to_numpy(dtype=np.int64)
    splits = table["split"].to_numpy()
    for split in SPLITS:
        rows = np.flatnonzero(splits == split)
        if not len(rows):
            continue
        rows = rows[np.argsort(_sortable(keys[rows]), kind="stable")]
        present, counts = np.unique(digits[rows], return_counts=True)
        takes = apportion(_round_half_up(share * len(rows)), counts)
        for digit, take in zip(present, takes, strict=True):
            members = rows[digits[rows] == digit]
            chosen[members[generator.permutation(len(members))[:take]]] = True
    return chosen


def _sortable(keys: np.ndarray) -> np.ndarray:
    return keys.astype(str) if keys.dtype == object else keys


def deal_images(recordings: pd.DataFrame, pool: pd.DataFrame, seed: int) -> pd.Series:
    """The image (``dicom_id``) of each recording: same digit, same split, dealt in passes.

    Args:
        recordings: ``stay_id, digit, split`` of the recordings to pair.
        pool: ``dicom_id, digit, split`` of the images they may get.

    Returns the keys, indexed like ``recordings``. Raises ``PairingError`` listing every (split,
    digit) with recordings to pair and no image.
    """
    generator = rng(seed, STREAM_PAIRING)
    dealt = pd.Series(None, index=recordings.index, dtype=object)
    empty: list[str] = []
    for split in SPLITS:
        for digit in sorted(set(recordings["digit"]) | set(pool["digit"])):
            wanting = recordings[(recordings["split"] == split) & (recordings["digit"] == digit)]
            images = pool.loc[(pool["split"] == split) & (pool["digit"] == digit), "dicom_id"]
            keys = np.sort(images.astype(str).to_numpy())
            if not len(wanting):
                continue
            if not len(keys):
                empty.append(f"{split}/digit {digit} ({len(wanting)} recordings)")
                continue
            order = wanting.sort_values("stay_id").index
            passes = -(-len(order) // len(keys))  # ceil: a new pass only when the images run out
            dealing = np.concatenate([generator.permutation(len(keys)) for _ in range(passes)])
            dealt.loc[order] = keys[dealing[: len(order)]].astype(object)
    if empty:
        raise PairingError(
            "no image left to pair for " + ", ".join(empty) + ": lower "
            "`avdigits.source.missing_audio` or raise that split's `avdigits.source.image_shares`"
        )
    return dealt


def pair_samples(
    cohort: pd.DataFrame,
    images: pd.DataFrame,
    *,
    missing_image: float,
    missing_audio: float,
    seed: int,
) -> PairedSamples:
    """Pairs (one row per recording of ``cohort``, ``PAIR_COLUMNS``, cohort order) and image-only
    samples (``CXR_ONLY_COLUMNS``, key order), as the module doc describes.

    Args:
        cohort: ``stay_id, subject_id, digit, split`` (the AV-digits cohort).
        images: ``dicom_id, subject_id, digit, split`` (``tables.build_images``).
        missing_image: share of each split's recordings served audio-only, in [0, 1).
        missing_audio: share of each split's images served image-only, in [0, 1).
        seed: ``avdigits.source.seed``.
    """
    require_columns(cohort, ["stay_id", "subject_id", "digit", "split"], "the cohort", PairingError)
    require_columns(
        images, ["dicom_id", "subject_id", "digit", "split"], "the images", PairingError
    )
    for name, share in (("missing_image", missing_image), ("missing_audio", missing_audio)):
        if not 0.0 <= share < 1.0:
            raise PairingError(f"`avdigits.source.{name}` must lie in [0, 1), got {share}")
    if cohort["stay_id"].duplicated().any() or images["dicom_id"].duplicated().any():
        raise PairingError("stay_id (cohort) and dicom_id (images) must be unique")
    cohort, images = cohort.reset_index(drop=True), images.reset_index(drop=True)
    image_only = select_share(images, "dicom_id", missing_audio, seed, STREAM_MISSING_AUDIO)
    audio_only = select_share(cohort, "stay_id", missing_image, seed, STREAM_MISSING_IMAGE)
    dealt = deal_images(cohort.loc[~audio_only], images.loc[~image_only], seed)
    pairs = cohort[["stay_id", "subject_id", "split"]].assign(
        dicom_id=dealt.reindex(cohort.index).astype(object).where(lambda s: s.notna(), None)
    )
    pairs = pairs[list(PAIR_COLUMNS)].astype(PAIR_COLUMNS).reset_index(drop=True)
    cxr_only = images.loc[image_only, ["dicom_id", "subject_id", "digit", "split"]]
    cxr_only = cxr_only.sort_values("dicom_id", ignore_index=True)
    cxr_only = pd.concat([cxr_only, one_hot(cxr_only["digit"])], axis=1)
    cxr_only = cxr_only[list(CXR_ONLY_COLUMNS)].astype(CXR_ONLY_COLUMNS)
    logger.info(
        "AV-digits samples: %d paired, %d audio-only, %d image-only",
        int(pairs["dicom_id"].notna().sum()),
        int(pairs["dicom_id"].isna().sum()),
        len(cxr_only),
    )
    return PairedSamples(pairs=pairs, cxr_only=cxr_only)
