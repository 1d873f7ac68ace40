"""AV-MNIST pairing: same digit, same split; missing shares realised and never overlapping."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mindkd.avdigits import pairing, tables
from mindkd.avdigits.pairing import PairingError

SPLIT_OF = {"a": "train", "b": "train", "c": "train", "d": "train", "e": "val", "f": "test"}


def _cohort(takes: int = 5) -> pd.DataFrame:
    """6 speakers x 10 digits x ``takes``; ids out of row order, splits interleaved."""
    rows = [(s, d, t) for s in SPLIT_OF for d in range(10) for t in range(takes)]
    table = pd.DataFrame(rows, columns=["speaker", "digit", "take"])
    table["stay_id"] = np.random.default_rng(1).permutation(len(table)) * 7 + 1000
    table["file"] = [f"{d}_{s}_{t}.wav" for s, d, t in rows]
    table["duration_s"] = 0.5
    table = table.sample(frac=1.0, random_state=2).reset_index(drop=True)
    return tables.build_cohort(table, table["speaker"].map(SPLIT_OF))


def _images(per_split: dict[str, int]) -> pd.DataFrame:
    """``per_split[s]`` images of every digit in split s; keys out of row order."""
    rows = [(d, s) for s, n in per_split.items() for d in range(10) for _ in range(n)]
    digits = np.array([d for d, _ in rows])
    split = np.array([s for _, s in rows], dtype=object)
    order = np.random.default_rng(4).permutation(len(rows))
    keys = pd.Series([f"digit-{i:04d}" for i in order])
    return tables.build_images(keys, pd.Series(digits), split).sample(frac=1.0, random_state=6)


def _pair(cohort: pd.DataFrame, images: pd.DataFrame, **kwargs: float) -> pairing.PairedSamples:
    settings = {"missing_image": 0.3, "missing_audio": 0.2, "seed": 11, **kwargs}
    return pairing.pair_samples(cohort, images, **settings)  # type: ignore[arg-type]


def test_every_recording_has_one_pair_row_with_an_image_of_its_digit_and_split() -> None:
    cohort, images = _cohort(), _images({"train": 12, "val": 4, "test": 6})
    out = _pair(cohort, images)
    pairs = out.pairs
    assert list(pairs.columns) == ["stay_id", "subject_id", "dicom_id", "split"]
    assert pairs["stay_id"].tolist() == cohort["stay_id"].tolist()  # cohort order, one row each
    assert (pairs["subject_id"] == cohort["subject_id"]).all()
    assert (pairs["split"] == cohort["split"]).all()
    paired = (
        pairs.dropna(subset=["dicom_id"])
        .merge(cohort[["stay_id", "digit"]], on="stay_id")
        .merge(images, on="dicom_id", suffixes=("", "_image"))
    )
    assert len(paired) == pairs["dicom_id"].notna().sum()
    assert (paired["digit"] == paired["digit_image"]).all()
    assert (paired["split"] == paired["split_image"]).all()


def test_missing_shares_are_realised_per_split_and_never_overlap() -> None:
    cohort, images = _cohort(), _images({"train": 12, "val": 4, "test": 6})
    out = _pair(cohort, images, missing_image=0.3, missing_audio=0.2)
    pairs, cxr_only = out.pairs, out.cxr_only
    audio_only = pairs["dicom_id"].isna().groupby(pairs["split"]).sum().to_dict()
    # round(0.3 · n) recordings per split: train 200 -> 60, val 50 -> 15, test 50 -> 15
    assert audio_only == {"test": 15, "train": 60, "val": 15}
    # round(0.2 · n) images per split: train 120 -> 24, val 40 -> 8, test 60 -> 12
    assert cxr_only["split"].value_counts().to_dict() == {"train": 24, "test": 12, "val": 8}
    # spread over the digits: within one of proportional
    per_digit = pairs[pairs["dicom_id"].isna()].merge(cohort[["stay_id", "digit"]], on="stay_id")
    assert per_digit.groupby(["split", "digit"]).size().between(1, 6).all()
    # image-only images are never paired; every sample has at least one modality
    assert not set(cxr_only["dicom_id"]) & set(pairs["dicom_id"].dropna())
    assert pairs["stay_id"].notna().all() and cxr_only["dicom_id"].notna().all()
    # image-only rows keep their image's split and digit, with one-hot labels
    merged = cxr_only.merge(images, on="dicom_id", suffixes=("", "_image"))
    assert (merged["split"] == merged["split_image"]).all()
    assert (merged["digit"] == merged["digit_image"]).all()
    labels = cxr_only[list(tables.LABELS)].to_numpy()
    assert (labels.argmax(axis=1) == cxr_only["digit"]).all() and (labels.sum(axis=1) == 1).all()


def test_images_are_reused_only_when_a_split_runs_out() -> None:
    cohort = _cohort()  # per digit: train 20, val 5, test 5 recordings
    plenty = _pair(cohort, _images({"train": 40, "val": 10, "test": 10}), missing_image=0.0)
    uses = plenty.pairs["dicom_id"].value_counts()
    assert uses.max() == 1  # enough images: none twice
    scarce_images = _images({"train": 7, "val": 2, "test": 3})
    scarce = _pair(cohort, scarce_images, missing_image=0.0, missing_audio=0.0)
    joined = scarce.pairs.merge(cohort[["stay_id", "digit"]], on="stay_id")
    for (split, digit), group in joined.groupby(["split", "digit"]):
        pool = scarce_images[(scarce_images["split"] == split) & (scarce_images["digit"] == digit)]
        counts = group["dicom_id"].value_counts().reindex(pool["dicom_id"], fill_value=0)
        assert counts.min() >= 1  # every image used before any is used again
        assert counts.max() - counts.min() <= 1  # passes: uses differ by one at most


def test_the_draws_are_seeded_and_ignore_row_order() -> None:
    cohort, images = _cohort(), _images({"train": 12, "val": 4, "test": 6})
    first = _pair(cohort, images)
    shuffled = _pair(cohort.iloc[::-1], images.iloc[::-1])
    key = ["stay_id", "dicom_id"]
    assert (
        first.pairs[key]
        .sort_values("stay_id", ignore_index=True)
        .equals(shuffled.pairs[key].sort_values("stay_id", ignore_index=True))
    )
    assert first.cxr_only["dicom_id"].tolist() == shuffled.cxr_only["dicom_id"].tolist()
    other = _pair(cohort, images, seed=12)
    assert not other.pairs["dicom_id"].equals(first.pairs["dicom_id"])


def test_a_split_and_digit_without_images_is_named() -> None:
    cohort, images = _cohort(), _images({"train": 5, "val": 2, "test": 2})
    images = images[~((images["split"] == "val") & (images["digit"] == 3))]
    with pytest.raises(PairingError, match=r"val/digit 3 \(\d+ recordings\).*missing_audio"):
        _pair(cohort, images)


@pytest.mark.parametrize("name", ["missing_image", "missing_audio"])
@pytest.mark.parametrize("value", [-0.1, 1.0])
def test_shares_outside_zero_one_fail(name: str, value: float) -> None:
    with pytest.raises(PairingError, match=f"avdigits.source.{name}"):
        _pair(_cohort(1), _images({"train": 2, "val": 1, "test": 1}), **{name: value})


def test_tables_schemas() -> None:
    cohort = _cohort(1)
    assert dict(zip(cohort.columns, cohort.dtypes.astype(str), strict=True)) == {
        **tables.COHORT_COLUMNS
    }
    assert (cohort["subject_id"] == cohort["stay_id"]).all()  # one subject per recording
    out = _pair(cohort, _images({"train": 2, "val": 1, "test": 1}))
    assert list(out.cxr_only.columns) == list(pairing.CXR_ONLY_COLUMNS)
    subjects = tables.subject_splits(cohort, out.cxr_only)
    assert subjects["subject_id"].is_unique and len(subjects) == len(cohort) + len(out.cxr_only)


def test_subgroups() -> None:
    cohort = pd.DataFrame(
        {
            "stay_id": [5, 6, 7],
            "speaker": ["lucas", "theo", "zed"],
            "duration_s": [0.29, 0.45, 2.0],
        }
    )
    groups = tables.stay_subgroups(cohort)
    assert list(groups.columns) == ["stay_id", *tables.SUBGROUP_ATTRIBUTES]
    assert groups.to_dict("list") == {
        "stay_id": [5, 6, 7],
        "speaker": ["lucas", "theo", "zed"],
        "accent": ["DEU/German", "USA/neutral", "Unknown"],
        "sex": ["Male", "Male", "Unknown"],
        "duration_band": ["under_0.30s", "0.45-0.60s", "0.60s_plus"],
    }
