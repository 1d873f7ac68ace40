"""CheXpert labels: the uncertain-label policy, blanks, bad values and studies without labels."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mindkd.mimic.cxr import FINDINGS
from mindkd.processing.chexpert import (
    LabelValueError,
    apply_uncertain_policy,
    label_images,
    studies_without_labels,
)


def _labels() -> pd.DataFrame:
    table = pd.DataFrame({"subject_id": [1, 1, 2], "study_id": [11, 12, 21]})
    for finding in FINDINGS:
        table[finding] = np.nan
    table["Edema"] = [1.0, -1.0, np.nan]
    table["Pneumonia"] = [0.0, -1.0, -1.0]
    return table


def test_findings_are_the_fourteen_in_file_order() -> None:
    assert len(FINDINGS) == 14
    assert FINDINGS[0] == "Atelectasis"
    assert FINDINGS[8] == "No Finding"
    assert FINDINGS[-1] == "Support Devices"


@pytest.mark.parametrize(
    ("policy", "edema", "pneumonia"),
    [
        ("zeros", [1.0, 0.0, np.nan], [0.0, 0.0, 0.0]),
        ("ones", [1.0, 1.0, np.nan], [0.0, 1.0, 1.0]),
        ("ignore", [1.0, np.nan, np.nan], [0.0, np.nan, np.nan]),
    ],
)
def test_uncertain_policies(policy: str, edema: list[float], pneumonia: list[float]) -> None:
    result = apply_uncertain_policy(_labels(), policy)  # type: ignore[arg-type]
    np.testing.assert_array_equal(result["Edema"].to_numpy(), edema)
    np.testing.assert_array_equal(result["Pneumonia"].to_numpy(), pneumonia)
    assert result["Edema"].dtype == np.float32
    assert result["Atelectasis"].isna().all()  # blanks stay masked
    assert result["study_id"].tolist() == [11, 12, 21]


def test_blanks_as_negative() -> None:
    result = apply_uncertain_policy(_labels(), "ignore", blank_as_negative=True)
    np.testing.assert_array_equal(result["Edema"].to_numpy(), [1.0, np.nan, 0.0])
    assert (result["Atelectasis"] == 0.0).all()


def test_bad_values_and_policy_are_refused() -> None:
    labels = _labels()
    labels["Edema"] = labels["Edema"].astype(object)
    labels.loc[0, "Edema"] = 2.0
    labels.loc[2, "Edema"] = "yes"
    with pytest.raises(LabelValueError, match=r"'Edema': 2 value\(s\)"):
        apply_uncertain_policy(labels, "zeros")
    with pytest.raises(ValueError, match="unknown uncertain-label policy 'half'"):
        apply_uncertain_policy(_labels(), "half")  # type: ignore[arg-type]


def test_studies_without_labels_are_listed() -> None:
    studies = pd.DataFrame({"subject_id": [1, 1, 1, 3], "study_id": [11, 11, 13, 31]})
    missing = studies_without_labels(studies, _labels())
    assert missing.to_dict("records") == [
        {"subject_id": 1, "study_id": 13},
        {"subject_id": 3, "study_id": 31},
    ]


def test_label_images_joins_by_study() -> None:
    images = pd.DataFrame(
        {"dicom_id": ["a", "b", "c"], "subject_id": [1, 1, 3], "study_id": [11, 11, 31]}
    )
    labelled = label_images(images, apply_uncertain_policy(_labels(), "zeros"))
    assert labelled["dicom_id"].tolist() == ["a", "b"]
    assert labelled["Edema"].tolist() == [1.0, 1.0]
    with pytest.raises(ValueError, match="duplicated label rows"):
        label_images(images, pd.concat([_labels(), _labels()]))
