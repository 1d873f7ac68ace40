"""Indexing an FSDD folder: names parsed, bad files skipped and reported by name, stable ids."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from scipy.io import wavfile

from mindkd.avdigits import fsdd


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("0_george_0.wav", (0, "george", 0)),
        ("9_yweweler_49.wav", (9, "yweweler", 49)),
        ("3_theo2_7.wav", (3, "theo2", 7)),
        ("10_george_0.wav", None),  # two-digit "digit"
        ("0_george.wav", None),
        ("0_george_0.WAV", None),
        ("0_george_0.wav.bak", None),
        ("a_george_0.wav", None),
        ("0__0.wav", None),
        ("README.md", None),
    ],
)
def test_parse_name(name: str, expected: tuple[int, str, int] | None) -> None:
    assert fsdd.parse_name(name) == expected


def test_recording_ids_are_stable_and_depend_on_the_name_alone() -> None:
    assert fsdd.recording_id(0, "george", 0) == 200043808505301  # committed: ids never move
    ids = {fsdd.recording_id(d, s, t) for d in range(10) for s in ("a", "b") for t in range(50)}
    assert len(ids) == 1000
    assert max(ids) < 2**48


def test_index_counts_sorts_and_types(fsdd_folder: Path) -> None:
    recordings, skipped = fsdd.index_recordings(fsdd_folder)
    assert len(recordings) == 80 and skipped.empty
    assert list(recordings.columns) == list(fsdd.RECORDING_COLUMNS)
    assert recordings["stay_id"].is_unique
    assert recordings.groupby("speaker").size().to_dict() == dict.fromkeys(
        ("alice", "bob", "carol", "dave"), 20
    )
    assert recordings[["speaker", "digit", "take"]].equals(
        recordings[["speaker", "digit", "take"]].sort_values(["speaker", "digit", "take"])
    )
    row = recordings.set_index("file").loc["7_bob_1.wav"]
    rate, data = wavfile.read(fsdd_folder / "7_bob_1.wav")
    assert (row["digit"], row["speaker"], row["take"]) == (7, "bob", 1)
    assert row["samples"] == len(data) and row["duration_s"] == pytest.approx(len(data) / rate)
    assert row["stay_id"] == fsdd.recording_id(7, "bob", 1)


def _bad_files(folder: Path) -> dict[str, str]:
    """Write one file of every kind that must be skipped; return name -> reason kind."""
    pcm = np.zeros(800, dtype=np.int16)
    wavfile.write(folder / "1_alice_9.wav", 16000, pcm)  # 16 kHz
    wavfile.write(folder / "2_alice_9.wav", 8000, np.zeros((800, 2), dtype=np.int16))  # stereo
    wavfile.write(folder / "3_alice_9.wav", 8000, np.zeros(800, dtype=np.float32))  # float
    wavfile.write(folder / "4_alice_9.wav", 8000, np.zeros(800, dtype=np.uint8))  # 8-bit
    wavfile.write(folder / "5_alice_9.wav", 8000, np.zeros(0, dtype=np.int16))  # empty
    (folder / "6_alice_9.wav").write_bytes(b"not a RIFF file at all")
    (folder / "7_alice_9.wav").mkdir()
    wavfile.write(folder / "0_alice_01.wav", 8000, pcm)  # the same take as 0_alice_1.wav
    (folder / "README.md").write_text("hello")
    (folder / ".DS_Store").write_bytes(b"\0")
    wavfile.write(folder / "0_alice.wav", 8000, pcm)
    return {
        "1_alice_9.wav": "format",
        "2_alice_9.wav": "format",
        "3_alice_9.wav": "format",
        "4_alice_9.wav": "format",
        "5_alice_9.wav": "format",
        "6_alice_9.wav": "unreadable WAV",
        "7_alice_9.wav": "not a file",
        "0_alice_01.wav": "duplicate",
        "README.md": "name",
        ".DS_Store": "name",
        "0_alice.wav": "name",
    }


def test_every_bad_entry_is_skipped_and_named_with_its_reason(fsdd_folder: Path) -> None:
    expected = _bad_files(fsdd_folder)
    recordings, skipped = fsdd.index_recordings(fsdd_folder)
    assert len(recordings) == 80  # the good ones, all of them
    assert list(skipped.columns) == ["file", "reason"]
    kinds = dict(zip(skipped["file"], skipped["reason"].str.split(":").str[0], strict=True))
    assert kinds == expected
    reasons = skipped.set_index("file")["reason"]
    assert "16000 Hz" in reasons["1_alice_9.wav"]
    assert "2 channels" in reasons["2_alice_9.wav"]
    assert "float32" in reasons["3_alice_9.wav"] and "uint8" in reasons["4_alice_9.wav"]
    assert "no samples" in reasons["5_alice_9.wav"]
    assert "0_alice_1.wav" in reasons["0_alice_01.wav"]
    assert fsdd.skip_counts(skipped) == {
        "duplicate": 1,
        "format": 5,
        "name": 3,
        "not a file": 1,
        "unreadable WAV": 1,
    }


def test_a_missing_folder_says_which_key_to_set_and_where_to_get_the_data(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere" / "recordings"
    with pytest.raises(fsdd.MissingRecordingsError) as caught:
        fsdd.index_recordings(missing)
    message = str(caught.value)
    for needed in (
        str(missing),
        "avdigits.source.recordings_dir",
        "fsdd_recordings_dir",
        "conf/local/globals.yml",
        "git clone https://github.com/Jakobovski/free-spoken-digit-dataset",
        "recordings/",
    ):
        assert needed in message
    with pytest.raises(fsdd.MissingRecordingsError, match="does not exist"):
        fsdd.read_waveforms(missing, ["0_a_0.wav"])


def test_a_folder_with_nothing_usable_fails_listing_the_reasons(tmp_path: Path) -> None:
    folder = tmp_path / "junk"
    folder.mkdir()
    (folder / "notes.txt").write_text("x")
    wavfile.write(folder / "0_a_0.wav", 44100, np.zeros(10, dtype=np.int16))
    with pytest.raises(fsdd.FsddError, match=r"none of its 2 entries.*'format': 1, 'name': 1"):
        fsdd.index_recordings(folder)


def test_read_waveforms_returns_the_samples_written(fsdd_folder: Path) -> None:
    names = ["3_carol_0.wav", "0_alice_1.wav"]
    waves = fsdd.read_waveforms(fsdd_folder, names)
    for name, wave in zip(names, waves, strict=True):
        np.testing.assert_array_equal(wave, wavfile.read(fsdd_folder / name)[1])
        assert wave.dtype == np.int16
