"""The AV-digits tables in the schemas the clinical teachers and distill pipelines read.

Each table declares its columns and dtypes here, next to the code that makes it:

- ``cohort`` (``COHORT_COLUMNS``): one row per recording: ``stay_id`` (the stable recording id,
  ``fsdd.recording_id``), ``subject_id``, the recording's speaker, digit, take, file and duration,
  its ``split`` and the one-hot labels ``digit_0`` ... ``digit_9`` (float32, ``LABELS``).
  ``subject_id`` equals ``stay_id``: **one subject per recording**, so the evaluation's subject
  bootstrap resamples recordings. Resampling speakers would be degenerate: the test split holds one
  speaker, and a bootstrap over one cluster has no spread.
- ``images`` (``IMAGE_COLUMNS``): one row per image of the store: ``dicom_id``, ``subject_id`` (a
  stable id of its own, ``image_subject_id``), ``digit``, ``split``.
- ``subgroups`` (``SUBGROUP_COLUMNS``): ``stay_id`` and the attributes ``SUBGROUP_ATTRIBUTES``
  (speaker, accent and sex from FSDD's speaker table, a recording-duration band).
- ``subject_splits``: ``subject_id, split`` of every subject of the cohort and the image-only
  samples (what the clinical ``subject_splits`` table gives the CXR pre-training step).

>>> one_hot(np.array([2, 0])).iloc[:, :3].to_numpy().tolist()
[[0.0, 0.0, 1.0], [1.0, 0.0, 0.0]]
>>> duration_band(pd.Series([0.2, 0.3, 0.5, 0.9])).tolist()
['under_0.30s', '0.30-0.45s', '0.45-0.60s', '0.60s_plus']
"""

from __future__ import annotations

import hashlib

import numpy as np
import pandas as pd

from mindkd.avdigits.fsdd import SPEAKERS
from mindkd.processing.checks import require_columns

DIGITS: tuple[int, ...] = tuple(range(10))
LABELS: tuple[str, ...] = tuple(f"digit_{d}" for d in DIGITS)
UNKNOWN = "Unknown"

COHORT_COLUMNS: dict[str, str] = {
    "stay_id": "int64",
    "subject_id": "int64",
    "speaker": "str",
    "digit": "int64",
    "take": "int64",
    "file": "str",
    "duration_s": "float64",
    "split": "str",
    **dict.fromkeys(LABELS, "float32"),
}
IMAGE_COLUMNS: dict[str, str] = {
    "dicom_id": "str",
    "subject_id": "int64",
    "digit": "int64",
    "split": "str",
}
SUBGROUP_ATTRIBUTES: tuple[str, ...] = ("speaker", "accent", "sex", "duration_band")
SUBGROUP_COLUMNS: dict[str, str] = {"stay_id": "int64", **dict.fromkeys(SUBGROUP_ATTRIBUTES, "str")}
SUBJECT_SPLIT_COLUMNS: dict[str, str] = {"subject_id": "int64", "split": "str"}
DURATION_BANDS: tuple[tuple[str, float], ...] = (  # (label, lower bound in s)
    ("under_0.30s", 0.0),
    ("0.30-0.45s", 0.30),
    ("0.45-0.60s", 0.45),
    ("0.60s_plus", 0.60),
)
_ID_BYTES = 6


class TableError(ValueError):
    """An input table lacks a column or disagrees with another."""


def one_hot(digits: np.ndarray | pd.Series) -> pd.DataFrame:
    """``digit_0`` ... ``digit_9`` (float32) of each digit."""
    d = np.asarray(digits, dtype=np.int64)
    if len(d) and (d.min() < 0 or d.max() > DIGITS[-1]):
        raise TableError(f"digits must lie in 0..9, got {sorted(set(d.tolist()))}")
    hot = (d[:, None] == np.array(DIGITS)[None, :]).astype(np.float32)
    return pd.DataFrame(hot, columns=list(LABELS))


def build_cohort(recordings: pd.DataFrame, split: pd.Series) -> pd.DataFrame:
    """``COHORT_COLUMNS`` of every recording (same order), with its split and one-hot digit."""
    require_columns(
        recordings,
        ["stay_id", "speaker", "digit", "take", "file", "duration_s"],
        "recordings",
        TableError,
    )
    if len(split) != len(recordings) or split.isna().any():
        raise TableError("every recording needs a split")
    table = recordings.reset_index(drop=True)
    cohort = table[["stay_id", "speaker", "digit", "take", "file", "duration_s"]].assign(
        subject_id=table["stay_id"].to_numpy(), split=split.to_numpy()
    )
    cohort = pd.concat([cohort, one_hot(cohort["digit"])], axis=1)
    return cohort[list(COHORT_COLUMNS)].astype(COHORT_COLUMNS)


def image_subject_id(key: str) -> int:
    """A stable 48-bit subject id of an image (BLAKE2b of its key)."""
    digest = hashlib.blake2b(f"sklearn-digits/{key}".encode(), digest_size=_ID_BYTES)
    return int.from_bytes(digest.digest(), "big")


def build_images(keys: pd.Series, digits: pd.Series, split: np.ndarray) -> pd.DataFrame:
    """``IMAGE_COLUMNS`` of every image (same order)."""
    table = pd.DataFrame(
        {
            "dicom_id": np.asarray(keys, dtype=object),
            "subject_id": [image_subject_id(str(k)) for k in keys],
            "digit": np.asarray(digits, dtype=np.int64),
            "split": split,
        }
    )
    return table.astype(IMAGE_COLUMNS)


def duration_band(seconds: pd.Series) -> pd.Series:
    """The ``DURATION_BANDS`` label of each duration."""
    bounds = [lower for _, lower in DURATION_BANDS] + [np.inf]
    bands = pd.cut(seconds, bins=bounds, right=False, labels=[label for label, _ in DURATION_BANDS])
    return bands.astype(object).where(bands.notna(), UNKNOWN)


def stay_subgroups(cohort: pd.DataFrame) -> pd.DataFrame:
    """``SUBGROUP_COLUMNS`` of every recording of ``cohort`` (same order).

    Sex and accent come from FSDD's speaker table (``fsdd.SPEAKERS``); a speaker it does not list
    is ``Unknown``. FSDD's six speakers are all male: ``sex`` is one group.
    """
    require_columns(cohort, ["stay_id", "speaker", "duration_s"], "the cohort", TableError)
    known = cohort["speaker"].map(lambda s: SPEAKERS.get(str(s)))
    table = pd.DataFrame(
        {
            "stay_id": cohort["stay_id"].to_numpy(),
            "speaker": cohort["speaker"].astype(str).to_numpy(),
            "accent": known.map(lambda s: s.accent if s else UNKNOWN).to_numpy(),
            "sex": known.map(lambda s: s.gender.capitalize() if s else UNKNOWN).to_numpy(),
            "duration_band": duration_band(cohort["duration_s"]).to_numpy(),
        }
    )
    return table.astype(SUBGROUP_COLUMNS)


def subject_splits(cohort: pd.DataFrame, cxr_only: pd.DataFrame) -> pd.DataFrame:
    """``subject_id, split`` of every recording subject and every image-only subject, once each.

    Raises ``TableError`` when a subject id carries two splits (or a recording and an image share
    one).
    """
    both = pd.concat(
        [cohort[["subject_id", "split"]], cxr_only[["subject_id", "split"]]], ignore_index=True
    )
    if both["subject_id"].duplicated().any():
        raise TableError("a subject id is used twice across recordings and image-only samples")
    return both.sort_values("subject_id", ignore_index=True).astype(SUBJECT_SPLIT_COLUMNS)
