"""Audio splits disjoint by speaker, image splits disjoint by image and stratified by digit."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mindkd.avdigits import splits
from mindkd.avdigits.splits import SplitError

SPEAKERS = ["george", "jackson", "lucas", "nicolas", "theo", "yweweler"]


def _recordings() -> pd.DataFrame:
    """6 speakers x 10 digits x 3 takes, rows shuffled (interleaved speakers)."""
    rows = [(s, d, t) for s in SPEAKERS for d in range(10) for t in range(3)]
    table = pd.DataFrame(rows, columns=["speaker", "digit", "take"])
    return table.sample(frac=1.0, random_state=3).reset_index(drop=True)


def test_apportion() -> None:
    assert splits.apportion(10, [4, 1, 1]).tolist() == [7, 2, 1]
    assert splits.apportion(0, [1, 2]).tolist() == [0, 0]
    for total in range(40):
        counts = splits.apportion(total, [0.6, 0.25, 0.15])
        assert counts.sum() == total
        assert np.all(np.abs(counts - total * np.array([0.6, 0.25, 0.15])) < 1)
    with pytest.raises(ValueError, match="cannot apportion"):
        splits.apportion(3, [0, 0])


def test_no_speaker_is_in_two_splits() -> None:
    recordings = _recordings()
    split = splits.assign_speaker_splits(recordings, ["yweweler"], ["theo"])
    per_speaker = split.groupby(recordings["speaker"]).agg(lambda s: sorted(set(s)))
    assert per_speaker.to_dict() == {
        "george": ["train"],
        "jackson": ["train"],
        "lucas": ["train"],
        "nicolas": ["train"],
        "theo": ["test"],
        "yweweler": ["val"],
    }
    assert split.value_counts().to_dict() == {"train": 120, "val": 30, "test": 30}
    speakers_by_split = recordings.groupby(split)["speaker"].agg(set)
    assert not speakers_by_split["train"] & (speakers_by_split["val"] | speakers_by_split["test"])
    assert not speakers_by_split["val"] & speakers_by_split["test"]


def test_several_held_out_speakers() -> None:
    mapping = splits.speaker_splits(SPEAKERS, ["lucas", "nicolas"], ["theo", "george"])
    assert sorted(k for k, v in mapping.items() if v == "train") == ["jackson", "yweweler"]


def test_every_speaker_problem_is_listed_at_once() -> None:
    with pytest.raises(SplitError) as caught:
        splits.speaker_splits(SPEAKERS, ["yweweler", "bob"], ["theo", "yweweler", "zed"])
    message = str(caught.value)
    assert "avdigits.source.speakers" in message
    assert "val speaker(s) ['bob'] are not in the recordings" in message
    assert "test speaker(s) ['zed']" in message and "found: ['george'" in message
    assert "['yweweler'] named for both val and test" in message
    with pytest.raises(SplitError, match="no speaker left for train"):
        splits.speaker_splits(["a", "b"], ["a"], ["b"])
    with pytest.raises(SplitError, match="no val speaker"):
        splits.speaker_splits(SPEAKERS, [], ["theo"])


def _images(n_per_digit: int = 37) -> pd.DataFrame:
    keys = [f"digit-{i:04d}" for i in range(10 * n_per_digit)]
    table = pd.DataFrame({"dicom_id": keys, "digit": np.arange(10 * n_per_digit) % 10})
    return table.sample(frac=1.0, random_state=5).reset_index(drop=True)


def test_image_splits_are_disjoint_stratified_and_seeded() -> None:
    table = _images()
    shares = {"train": 4, "val": 1, "test": 1}
    split = splits.assign_image_splits(table["dicom_id"], table["digit"], shares, seed=42)
    assert set(split) == {"train", "val", "test"}  # one split per image, by construction
    counts = pd.crosstab(table["digit"], split)
    # 37 per digit at 4:1:1 -> 24.67, 6.17, 6.17 -> 25, 6, 6 (largest remainder)
    assert (counts["train"] == 25).all() and (counts["val"] == 6).all()
    assert (counts["test"] == 6).all()
    # the row order of the input does not matter; the seed does
    again = table.iloc[::-1].reset_index(drop=True)
    split_again = splits.assign_image_splits(again["dicom_id"], again["digit"], shares, seed=42)
    assert dict(zip(again["dicom_id"], split_again, strict=True)) == dict(
        zip(table["dicom_id"], split, strict=True)
    )
    other = splits.assign_image_splits(table["dicom_id"], table["digit"], shares, seed=7)
    assert (other != split).any()


@pytest.mark.parametrize(
    ("shares", "message"),
    [
        ({"train": 1, "val": 1}, "exactly the keys"),
        ({"train": 1, "val": 0, "test": 1}, "must all be > 0"),
    ],
)
def test_bad_image_shares(shares: dict[str, float], message: str) -> None:
    table = _images(2)
    with pytest.raises(SplitError, match=message):
        splits.assign_image_splits(table["dicom_id"], table["digit"], shares, seed=1)
