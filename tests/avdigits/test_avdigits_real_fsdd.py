"""The adapter on the real Free Spoken Digit Dataset in ../shared/data (skipped when absent).

Expectations come from the raw files themselves (names split with pandas, headers read with the
standard library's ``wave``), not from the code under test.
"""

from __future__ import annotations

import wave
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mindkd.avdigits import features, fsdd, splits
from mindkd.pipelines.avdigits.params import SpeakerSplit

RECORDINGS = (
    Path(__file__).resolve().parents[2]
    / ".."
    / "shared"
    / "data"
    / "free-spoken-digit-dataset"
    / "recordings"
)

pytestmark = pytest.mark.skipif(
    not RECORDINGS.is_dir(),
    reason=f"the real FSDD recordings are not at {RECORDINGS} (the `shared` folder beside the repo)",
)


@pytest.fixture(scope="module")
def raw_names() -> pd.DataFrame:
    names = pd.Series(sorted(p.name for p in RECORDINGS.iterdir()))
    parts = names.str.removesuffix(".wav").str.split("_", expand=True)
    return pd.DataFrame(
        {
            "file": names,
            "digit": parts[0].astype(int),
            "speaker": parts[1],
            "take": parts[2].astype(int),
        }
    )


@pytest.fixture(scope="module")
def indexed() -> tuple[pd.DataFrame, pd.DataFrame]:
    return fsdd.index_recordings(RECORDINGS)


def test_every_real_recording_is_indexed(
    raw_names: pd.DataFrame, indexed: tuple[pd.DataFrame, pd.DataFrame]
) -> None:
    recordings, skipped = indexed
    assert len(raw_names) == 3000 and skipped.empty
    assert sorted(recordings["file"]) == raw_names["file"].tolist()
    assert recordings["speaker"].nunique() == 6
    assert recordings.groupby("speaker").size().tolist() == [500] * 6
    assert recordings.groupby("digit").size().tolist() == [300] * 10
    assert sorted(recordings["speaker"].unique()) == sorted(fsdd.SPEAKERS)
    merged = recordings.merge(raw_names, on="file", suffixes=("", "_raw"))
    assert (merged["digit"] == merged["digit_raw"]).all()
    assert (merged["take"] == merged["take_raw"]).all()
    assert recordings["stay_id"].is_unique


def test_the_default_speaker_split_holds_out_two_voices(
    indexed: tuple[pd.DataFrame, pd.DataFrame],
) -> None:
    recordings, _ = indexed
    held_out = SpeakerSplit()
    split = splits.assign_speaker_splits(recordings, held_out.val, held_out.test)
    assert split.value_counts().to_dict() == {"train": 2000, "val": 500, "test": 500}
    assert (recordings.groupby(split)["speaker"].nunique() == [1, 4, 1]).all()  # test, train, val


def test_features_of_a_subset(indexed: tuple[pd.DataFrame, pd.DataFrame]) -> None:
    recordings, _ = indexed
    subset = recordings[recordings["take"] == 0]  # 60: one take per speaker and digit
    waves = fsdd.read_waveforms(RECORDINGS, subset["file"].tolist())
    spec = features.MelSpec()
    store = features.build_log_mel_store(subset["stay_id"], waves, spec)
    assert store.arrays["values"].shape == (60, 96, 80)
    frames = []
    for name in subset["file"]:
        with wave.open(str(RECORDINGS / name)) as handle:
            assert (handle.getframerate(), handle.getnchannels(), handle.getsampwidth()) == (
                8000,
                1,
                2,
            )
            frames.append(handle.getnframes())
    expected = np.minimum(1 + (np.array(frames) - 256) // 80, 96)
    assert store.index["length"].tolist() == expected.tolist()
    values = store.arrays["values"]
    assert np.isfinite(values).all()
    assert (values[..., :40].std(axis=(0, 1)) > 0.5).all()  # speech fills every band
