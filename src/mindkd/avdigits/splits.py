"""Train / val / test splits of the two digit sources, each disjoint by what could leak.

- **Audio, by speaker**: a parameter names the val and test speakers; every other speaker found is
  train. A voice heard in training is never scored, so the audio models are judged on unseen
  speakers. Every named speaker must be one found in the folder.
- **Images, by image**, stratified by digit and seeded: each digit's images are shuffled and cut
  into the split shares with the largest-remainder rule (``apportion``), so every split holds every
  digit in the proportions asked for. ``load_digits`` records no writer, so a writer may appear in
  two splits; each image is in exactly one.

>>> apportion(10, [4, 1, 1]).tolist()
[7, 2, 1]
>>> apportion(3, [1, 1, 1, 1]).tolist()
[1, 1, 1, 0]
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from mindkd.processing.checks import require_columns

logger = logging.getLogger(__name__)

SPLITS: tuple[str, str, str] = ("train", "val", "test")
#: Stream numbers of the seeded generators: each decision has its own, so changing one never
#: moves another (``np.random.default_rng([seed, stream])``).
STREAM_IMAGE_SPLIT = 1
STREAM_MISSING_IMAGE = 2
STREAM_MISSING_AUDIO = 3
STREAM_PAIRING = 4


class SplitError(ValueError):
    """Split settings that do not fit the data (unknown speakers, overlaps, empty splits)."""


def rng(seed: int, stream: int) -> np.random.Generator:
    """The generator of one seeded decision."""
    return np.random.default_rng([int(seed), int(stream)])


def apportion(total: int, weights: Sequence[float] | np.ndarray) -> np.ndarray:
    """Integers summing to ``total`` proportional to ``weights`` (largest remainder; ties go to the
    earlier weight)."""
    w = np.asarray(weights, dtype=np.float64)
    if total < 0 or not len(w) or (w < 0).any() or w.sum() <= 0:
        raise ValueError(f"cannot apportion {total} over weights {w.tolist()}")
    quota = total * w / w.sum()
    counts = np.floor(quota).astype(np.int64)
    remainder = np.round(quota - counts, 12)  # float noise must not break a tie
    order = np.argsort(-remainder, kind="stable")
    counts[order[: total - int(counts.sum())]] += 1
    return counts


def speaker_splits(found: Sequence[str], val: Sequence[str], test: Sequence[str]) -> dict[str, str]:
    """``speaker -> split`` for every speaker ``found``: ``val`` and ``test`` as named, the rest train.

    Raises ``SplitError`` listing every problem at once: a named speaker not found, a speaker named
    twice, an empty val or test list, no speaker left for train.
    """
    speakers = sorted(set(found))
    problems = []
    for split, names in (("val", val), ("test", test)):
        if not names:
            problems.append(f"no {split} speaker (avdigits.source.speakers.{split} is empty)")
        unknown = sorted(set(names) - set(speakers))
        if unknown:
            problems.append(
                f"{split} speaker(s) {unknown} are not in the recordings (found: {speakers})"
            )
    twice = sorted(set(val) & set(test))
    if twice:
        problems.append(f"speaker(s) {twice} named for both val and test")
    train = [s for s in speakers if s not in set(val) | set(test)]
    if not train:
        problems.append(f"no speaker left for train (found: {speakers})")
    if problems:
        raise SplitError(
            "avdigits.source.speakers: " + "; ".join(problems) + ". Name found speakers only."
        )
    mapping = {s: "train" for s in train}
    mapping.update({s: "val" for s in val})
    mapping.update({s: "test" for s in test})
    return mapping


def assign_speaker_splits(
    recordings: pd.DataFrame, val: Sequence[str], test: Sequence[str]
) -> pd.Series:
    """The split of each recording (same index as ``recordings``), from its speaker."""
    require_columns(recordings, ["speaker"], "the recordings table", SplitError)
    mapping = speaker_splits(recordings["speaker"].unique().tolist(), val, test)
    split = recordings["speaker"].map(mapping)
    logger.info(
        "Audio splits by speaker: %s",
        {s: sorted(k for k, v in mapping.items() if v == s) for s in SPLITS},
    )
    return split.rename("split")


def split_shares(shares: Mapping[str, float]) -> np.ndarray:
    """The (train, val, test) shares as weights; raises ``SplitError`` naming a bad key."""
    if set(shares) != set(SPLITS):
        raise SplitError(
            f"avdigits.source.image_shares needs exactly the keys {list(SPLITS)}, got {list(shares)}"
        )
    weights = np.array([float(shares[s]) for s in SPLITS])
    if not np.isfinite(weights).all() or (weights <= 0).any():
        raise SplitError(f"avdigits.source.image_shares must all be > 0, got {dict(shares)}")
    return weights / weights.sum()


def assign_image_splits(
    keys: Sequence[str] | pd.Series,
    digits: np.ndarray | pd.Series,
    shares: Mapping[str, float],
    seed: int,
) -> np.ndarray:
    """The split of each image (same order as ``keys``), stratified by digit and seeded.

    Images are ordered by key before shuffling, so the result does not depend on the input order.
    """
    weights = split_shares(shares)
    key_array = np.asarray(keys, dtype=object)
    digit_array = np.asarray(digits, dtype=np.int64)
    if len(key_array) != len(digit_array):
        raise SplitError(f"{len(key_array)} image keys for {len(digit_array)} digits")
    if len(set(key_array.tolist())) != len(key_array):
        raise SplitError("image keys are not unique")
    generator = rng(seed, STREAM_IMAGE_SPLIT)
    out = np.empty(len(key_array), dtype=object)
    for digit in np.unique(digit_array):
        members = np.flatnonzero(digit_array == digit)
        members = members[np.argsort(key_array[members].astype(str), kind="stable")]
        shuffled = members[generator.permutation(len(members))]
        counts = apportion(len(members), weights)
        out[shuffled] = np.repeat(np.array(SPLITS, dtype=object), counts)
    return out
