"""CheXpert study labels of MIMIC-CXR-JPG: the uncertain-label policy and label coverage.

The label files hold, per study and finding, 1.0 (positive), 0.0 (negative), -1.0 (uncertain) or a
blank (not mentioned). Training code reads NaN as "masked out of the loss". This module turns the
raw values into training targets under an explicit policy:

- ``policy`` for uncertain labels: ``"zeros"`` (-1 -> 0), ``"ones"`` (-1 -> 1) or ``"ignore"``
  (-1 -> NaN, masked);
- ``blank_as_negative``: blanks -> 0 (the common "not mentioned means absent" reading); by default
  they stay NaN (masked).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Literal, get_args

import numpy as np
import pandas as pd

from mindkd.mimic.cxr import FINDINGS

logger = logging.getLogger(__name__)

UncertainPolicy = Literal["zeros", "ones", "ignore"]
UNCERTAIN_POLICIES: tuple[str, ...] = get_args(UncertainPolicy)
STUDY_KEYS: tuple[str, str] = ("subject_id", "study_id")
_ALLOWED_VALUES = (1.0, 0.0, -1.0)


class LabelValueError(ValueError):
    """A label column holds a value other than 1, 0, -1 or blank."""


def apply_uncertain_policy(
    labels_df: pd.DataFrame,
    policy: UncertainPolicy,
    *,
    blank_as_negative: bool = False,
    findings: Sequence[str] = FINDINGS,
) -> pd.DataFrame:
    """Map raw CheXpert values of the ``findings`` columns to targets (float32, NaN = masked).

    Args:
        labels_df: a chexpert/negbio label table (``subject_id``, ``study_id`` and the findings).
        policy: what an uncertain (-1) label becomes: ``"zeros"`` -> 0, ``"ones"`` -> 1,
            ``"ignore"`` -> NaN (masked out of the loss).
        blank_as_negative: blanks (not mentioned) -> 0 instead of NaN.
        findings: the label columns (default: the 14 CheXpert findings).

    Returns a copy with the label columns mapped; other columns are untouched.
    Raises ``ValueError`` for an unknown policy or missing columns and ``LabelValueError`` listing
    every label column that holds another value.
    """
    if policy not in UNCERTAIN_POLICIES:
        raise ValueError(
            f"unknown uncertain-label policy {policy!r}; choose one of {list(UNCERTAIN_POLICIES)}"
        )
    missing = [column for column in findings if column not in labels_df.columns]
    if missing:
        raise ValueError(f"label table lacks finding column(s) {missing}")
    values = labels_df[list(findings)].apply(pd.to_numeric, errors="coerce").astype("float32")
    _check_values(labels_df, values)

    uncertain = {"zeros": 0.0, "ones": 1.0, "ignore": np.nan}[policy]
    mapped = values.mask(values == -1.0, uncertain)
    if blank_as_negative:
        mapped = mapped.where(values.notna(), 0.0)
    result = labels_df.copy()
    result[list(findings)] = mapped.astype("float32")
    logger.info(
        "CheXpert labels: %d studies, %d uncertain values -> %s, blanks -> %s",
        len(result),
        int((values == -1.0).to_numpy().sum()),
        policy,
        "0" if blank_as_negative else "masked",
    )
    return result


def _check_values(raw: pd.DataFrame, numeric: pd.DataFrame) -> None:
    problems = []
    for column in numeric.columns:
        bad = (numeric[column].notna() & ~numeric[column].isin(_ALLOWED_VALUES)) | (
            numeric[column].isna() & raw[column].notna()
        )
        if bad.any():
            examples = raw.loc[bad, column].drop_duplicates().head(5).tolist()
            problems.append(f"{column!r}: {int(bad.sum())} value(s), e.g. {examples}")
    if problems:
        raise LabelValueError(
            "CheXpert label columns may hold only 1, 0, -1 or blank; found:\n  - "
            + "\n  - ".join(problems)
        )


def studies_without_labels(studies: pd.DataFrame, labels_df: pd.DataFrame) -> pd.DataFrame:
    """The distinct (subject_id, study_id) of ``studies`` that have no row in ``labels_df``.

    ``len(result)`` is the count to put in the data report.
    """
    keys = list(STUDY_KEYS)
    wanted = studies[keys].drop_duplicates()
    present = labels_df[keys].drop_duplicates()
    merged = wanted.merge(present, on=keys, how="left", indicator=True)
    missing = merged.loc[merged["_merge"] == "left_only", keys].reset_index(drop=True)
    if len(missing):
        logger.warning("%d of %d studies have no CheXpert label row", len(missing), len(wanted))
    return missing


def label_images(
    images: pd.DataFrame, labels_df: pd.DataFrame, findings: Sequence[str] = FINDINGS
) -> pd.DataFrame:
    """Attach each image's study labels (inner join on subject_id, study_id).

    Images of studies without a label row are dropped; count them with ``studies_without_labels``.
    Raises ``ValueError`` when ``labels_df`` has more than one row for a study.
    """
    keys = list(STUDY_KEYS)
    duplicated = labels_df.duplicated(keys)
    if duplicated.any():
        examples = labels_df.loc[duplicated, keys].head(5).to_dict("records")
        raise ValueError(
            f"{int(duplicated.sum())} duplicated label rows per study, e.g. {examples}"
        )
    return images.merge(labels_df[[*keys, *findings]], on=keys, how="inner", validate="many_to_one")
