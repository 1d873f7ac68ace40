"""Pairing stays with X-rays: view filter, study times, window edges, latest image, split safety."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mindkd.mimic.cxr import CxrSchemaError, study_datetime
from mindkd.processing.pairing import (
    PairingError,
    cxr_only_samples,
    pair_stays_with_images,
    pairing_report,
    require_paired_stays,
    select_task_images,
)

INTIME = pd.Timestamp("2150-03-01 10:00:00")
SECOND = pd.Timedelta(seconds=1)
H48 = pd.Timedelta(hours=48)


def _cohort(
    subjects: list[int], los_hours: float = 96.0, splits: list[str] | None = None
) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "subject_id": subjects,
            "hadm_id": [20000000 + s for s in subjects],
            "stay_id": [30000000 + s for s in subjects],
            # seconds resolution, as the EHR side reads timestamps; images are microseconds
            "intime": pd.Series([INTIME] * len(subjects)).astype("datetime64[s]"),
            "outtime": pd.Series([INTIME + pd.Timedelta(hours=los_hours)] * len(subjects)).astype(
                "datetime64[s]"
            ),
            "split": splits or ["train"] * len(subjects),
        }
    )


def _images(rows: list[tuple[int, str, pd.Timestamp]]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "dicom_id": [d for _, d, _ in rows],
            "subject_id": [s for s, _, _ in rows],
            "study_id": [50000000 + i for i in range(len(rows))],
            "study_datetime": pd.Series([t for _, _, t in rows]).astype("datetime64[us]"),
        }
    )


def test_study_time_before_ten_is_left_padded() -> None:
    dates = pd.Series([21500301, 21500301, 21500301, 21501231])
    times = pd.Series([83015.25, 5.0, 101500.0, 235959.5])
    result = study_datetime(dates, times)
    assert result.tolist() == [
        pd.Timestamp("2150-03-01 08:30:15.250"),
        pd.Timestamp("2150-03-01 00:00:05"),
        pd.Timestamp("2150-03-01 10:15:00"),
        pd.Timestamp("2150-12-31 23:59:59.500"),
    ]
    assert str(result.dtype) == "datetime64[us]"
    assert study_datetime(pd.Series([21500301, np.nan]), pd.Series([np.nan, 1.0])).isna().all()
    with pytest.raises(CxrSchemaError, match="StudyTime"):
        study_datetime(pd.Series([21500301]), pd.Series([126000.0]))  # minute 60


def test_view_filter_keeps_only_requested_views() -> None:
    metadata = pd.DataFrame(
        {
            "dicom_id": ["ap", "pa", "lat", "ll", "empty", "nan", "ap2"],
            "subject_id": [10000001] * 7,
            "study_id": [50000001] * 7,
            "ViewPosition": ["AP", "PA", "LATERAL", "LL", "", None, "AP"],
            "StudyDate": [21500301] * 7,
            "StudyTime": [83015.25] * 6 + [143000.0],
        }
    )
    selected = select_task_images(metadata)
    assert selected["dicom_id"].tolist() == ["ap", "ap2"]
    assert selected["study_datetime"].tolist() == [
        pd.Timestamp("2150-03-01 08:30:15.25"),
        pd.Timestamp("2150-03-01 14:30:00"),
    ]
    assert select_task_images(metadata, views=["AP", "PA"])["dicom_id"].tolist() == [
        "ap",
        "pa",
        "ap2",
    ]
    with pytest.raises(PairingError, match="non-empty list"):
        select_task_images(metadata, views="AP")


def test_first_48h_window_edges_are_inclusive() -> None:
    cohort = _cohort([1, 2, 3, 4])
    images = _images(
        [
            (1, "at_intime", INTIME),
            (2, "at_48h", INTIME + H48),
            (3, "after_48h", INTIME + H48 + SECOND),
            (4, "before_intime", INTIME - SECOND),
        ]
    )
    pairs = pair_stays_with_images(cohort, images, 48)
    assert pairs["stay_id"].tolist() == cohort["stay_id"].tolist()
    assert pairs["dicom_id"].tolist()[:2] == ["at_intime", "at_48h"]
    assert pairs["dicom_id"].isna().tolist() == [False, False, True, True]
    assert pairs.loc[1, "study_datetime"] == INTIME + H48
    assert list(pairs.columns) == [
        "stay_id",
        "subject_id",
        "dicom_id",
        "study_id",
        "study_datetime",
        "split",
    ]


def test_latest_image_inside_the_window_wins() -> None:
    cohort = _cohort([1])
    images = _images(
        [
            (1, "early", INTIME + pd.Timedelta(hours=1)),
            (1, "at_48h", INTIME + H48),
            (1, "middle", INTIME + pd.Timedelta(hours=30)),
            (1, "too_late", INTIME + H48 + SECOND),
            (1, "before", INTIME - pd.Timedelta(hours=2)),
            (2, "other_subject", INTIME + pd.Timedelta(hours=40)),
        ]
    )
    assert pair_stays_with_images(cohort, images, 48)["dicom_id"].tolist() == ["at_48h"]
    assert pair_stays_with_images(cohort, images, 24)["dicom_id"].tolist() == ["early"]
    # the whole-stay window (96 h here) reaches the image one second after 48 h
    assert pair_stays_with_images(cohort, images, "stay")["dicom_id"].tolist() == ["too_late"]


def test_stay_window_ends_at_outtime_inclusive() -> None:
    cohort = _cohort([1, 2], los_hours=60)
    outtime = INTIME + pd.Timedelta(hours=60)
    images = _images([(1, "at_out", outtime), (2, "after_out", outtime + SECOND)])
    pairs = pair_stays_with_images(cohort, images, "stay")
    assert pairs["dicom_id"].tolist()[0] == "at_out"
    assert pd.isna(pairs["dicom_id"].tolist()[1])


def test_ties_go_to_the_largest_dicom_id_and_bad_windows_raise() -> None:
    cohort = _cohort([1])
    same = INTIME + pd.Timedelta(hours=5)
    images = _images([(1, "b", same), (1, "c", same), (1, "a", same)])
    assert pair_stays_with_images(cohort, images, 48)["dicom_id"].tolist() == ["c"]
    with pytest.raises(PairingError, match="pairing window"):
        pair_stays_with_images(cohort, images, "first_24h")  # type: ignore[arg-type]
    with pytest.raises(PairingError, match="duplicated stay_id"):
        pair_stays_with_images(pd.concat([cohort, cohort]), images, "stay")


def test_pairing_report_counts_per_split() -> None:
    cohort = _cohort([1, 2, 3, 4, 5], splits=["train", "train", "val", "test", "test"])
    images = _images([(1, "i1", INTIME), (3, "i3", INTIME), (4, "i4", INTIME)])
    report = pairing_report(pair_stays_with_images(cohort, images, 48))
    assert report == {
        "stays": 5,
        "paired": 3,
        "ehr_only": 2,
        "paired_fraction": 0.6,
        "by_split": {
            "test": {"stays": 2, "paired": 1, "ehr_only": 1},
            "train": {"stays": 2, "paired": 1, "ehr_only": 1},
            "val": {"stays": 1, "paired": 1, "ehr_only": 0},
        },
    }


def _labelled(rows: list[tuple[str, int]]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "dicom_id": [d for d, _ in rows],
            "subject_id": [s for _, s in rows],
            "study_id": range(len(rows)),
            "Edema": [1.0, 0.0, np.nan, 1.0, 0.0, 1.0][: len(rows)],
            "split": ["test"] * len(rows),  # e.g. the official split: must be replaced
        }
    )


def test_cxr_only_samples_exclude_pairs_and_never_cross_splits() -> None:
    subject_splits = pd.DataFrame({"subject_id": [1, 2, 3], "split": ["train", "val", "test"]})
    cohort = _cohort([1, 2], splits=["train", "val"])
    images = _images([(1, "p1", INTIME), (2, "p2", INTIME)])
    pairs = pair_stays_with_images(cohort, images, 48)
    labelled = _labelled([("p1", 1), ("x1", 1), ("y1", 1), ("p2", 2), ("x2", 2), ("x3", 3)])

    samples = cxr_only_samples(labelled, pairs, subject_splits)
    assert samples["dicom_id"].tolist() == ["x1", "y1", "x2", "x3"]
    assert samples["split"].tolist() == ["train", "train", "val", "test"]
    np.testing.assert_array_equal(samples["Edema"].to_numpy(), [0.0, np.nan, 0.0, 1.0])
    merged = samples.merge(subject_splits, on="subject_id", suffixes=("", "_subject"))
    assert (merged["split"] == merged["split_subject"]).all()
    assert samples.groupby("subject_id")["split"].nunique().max() == 1


def test_cxr_only_samples_refuse_unsplit_subjects_and_disagreeing_pairs() -> None:
    subject_splits = pd.DataFrame({"subject_id": [1], "split": ["train"]})
    pairs = pair_stays_with_images(_cohort([1]), _images([(1, "p1", INTIME)]), 48)
    with pytest.raises(PairingError, match=r"1 subject\(s\) with X-rays have no split.*\[7\]"):
        cxr_only_samples(_labelled([("x1", 1), ("x7", 7)]), pairs, subject_splits)

    wrong = pairs.assign(split="test")
    with pytest.raises(PairingError, match="split other than their subject's split"):
        cxr_only_samples(_labelled([("x1", 1)]), wrong, subject_splits)
    with pytest.raises(PairingError, match="twice"):
        cxr_only_samples(_labelled([("x1", 1)]), pairs, pd.concat([subject_splits] * 2))


def test_sources_that_cannot_pair_stop_before_training() -> None:
    cohort = _cohort([1, 2, 3], splits=["train", "val", "test"])
    in_window = INTIME + pd.Timedelta(hours=5)
    foreign = _images([(91, "a", in_window), (92, "b", in_window)])  # other patients only
    pairs = pair_stays_with_images(cohort, foreign, 48)
    with pytest.raises(PairingError, match=r"no MIMIC-CXR-JPG subject overlaps.*mimic_iv_dir.*"
                       r"mimic_cxr_jpg_dir.*--cxr-for") as error:  # fmt: skip
        require_paired_stays(cohort, foreign, pairs, "ihm")
    assert "none of the 3 subjects of the ihm cohort" in str(error.value)
    # subject 2 (val) has an image, but only after the ihm cutoff: val has no pair
    late = _images([(1, "c", in_window), (2, "d", INTIME + H48 + SECOND), (3, "e", in_window)])
    pairs = pair_stays_with_images(cohort, late, 48)
    with pytest.raises(PairingError, match=r"ihm: no stay of split\(s\) \['val'\]"):
        require_paired_stays(cohort, late, pairs, "ihm")
    ok = _images([(1, "c", in_window), (2, "d", in_window)])
    require_paired_stays(cohort, ok, pair_stays_with_images(cohort, ok, 48), "ihm")
