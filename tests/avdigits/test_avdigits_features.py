"""Log-mel features against analytic cases, and the normaliser fitted on the training rows only."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from pydantic import ValidationError

from mindkd.avdigits import features
from mindkd.avdigits.features import FeatureError, MelSpec
from mindkd.io.array_store import ArrayStore
from mindkd.processing.normalise import Normaliser, store_layout

SPEC = MelSpec()  # 8 kHz, n_fft 256, hop 80, 40 mels, 0..4000 Hz, 96 frames


def _tone(frequency: float, samples: int, amplitude: float = 0.5) -> np.ndarray:
    t = np.arange(samples) / SPEC.sample_rate
    return np.round(amplitude * 32767 * np.sin(2 * np.pi * frequency * t)).astype(np.int16)


def test_slaney_mel_scale_against_its_definition() -> None:
    # linear below 1 kHz (200/3 Hz per mel), 27 mels per factor 6.4 above
    assert features.hz_to_mel(0.0) == 0.0
    assert features.hz_to_mel(200 / 3) == pytest.approx(1.0)
    assert features.hz_to_mel(1000.0) == pytest.approx(15.0)
    assert features.hz_to_mel(6400.0) == pytest.approx(15.0 + 27.0)
    assert features.hz_to_mel(4000.0) == pytest.approx(15 + 27 * np.log(4) / np.log(6.4))
    hz = np.linspace(0, 4000, 101)
    np.testing.assert_allclose(features.mel_to_hz(features.hz_to_mel(hz)), hz, atol=1e-9)
    assert np.all(np.diff(features.hz_to_mel(hz)) > 0)


def test_filterbank_shape_and_rows() -> None:
    bank = features.mel_filterbank(SPEC)
    assert bank.shape == (40, 129)
    assert (bank >= 0).all() and (bank.max(axis=1) > 0).all()
    edges = features.band_edges(SPEC)
    assert edges[0] == pytest.approx(0.0) and edges[-1] == pytest.approx(4000.0)
    freqs = np.linspace(0, 4000, 129)
    # each row peaks at the bin nearest its centre, and is zero outside its two neighbours' centres
    for i in range(40):
        assert abs(freqs[bank[i].argmax()] - edges[i + 1]) <= (freqs[1] - freqs[0]) / 2 + 1e-9
        outside = (freqs <= edges[i]) | (freqs >= edges[i + 2])
        assert (bank[i, outside] == 0).all()
    # Slaney norm: unit-area triangles; the discrete sum is closer where a band spans more bins
    area = bank.sum(axis=1) * (freqs[1] - freqs[0])
    np.testing.assert_allclose(area, 1.0, atol=0.05)
    wide = edges[2:] - edges[:-2] >= 8 * (freqs[1] - freqs[0])
    assert wide.sum() == 10
    np.testing.assert_allclose(area[wide], 1.0, atol=0.01)


def test_too_many_mels_for_the_fft_is_an_error_naming_the_keys() -> None:
    with pytest.raises(FeatureError, match=r"cover no FFT bin.*n_mels.*n_fft"):
        features.mel_filterbank(MelSpec(n_fft=64, hop=32, n_mels=80))


@pytest.mark.parametrize("band", [3, 12, 20, 36])
def test_a_pure_tone_lands_in_its_mel_band(band: int) -> None:
    frequency = float(features.band_edges(SPEC)[band + 1])  # the centre of `band`
    mel, length, frames = features.log_mel([_tone(frequency, 4000)], SPEC)
    assert frames.tolist() == [1 + (4000 - 256) // 80] and length.tolist() == [47]
    loudest = mel[0, : length[0]].argmax(axis=1)
    assert (loudest == band).all()


def test_the_power_of_an_on_bin_tone_matches_the_analytic_spectrum() -> None:
    # A sine of amplitude A on FFT bin k, periodic Hann window, "spectrum" scaling: |X_k| = A/2 and
    # |X_k±1| = A/4, every other bin 0; the mel power is the filterbank applied to that.
    k, amplitude = 32, 0.5 * 32767 / 32768  # bin 32 = 1000 Hz
    mel, length, _ = features.log_mel([_tone(k * 8000 / 256, 8000)], SPEC)
    power = np.zeros(129)
    power[k] = (amplitude / 2) ** 2
    power[[k - 1, k + 1]] = (amplitude / 4) ** 2
    expected = np.log(features.mel_filterbank(SPEC) @ power + SPEC.eps)
    loud = expected > expected.max() - 6  # the bands the tone reaches (off-band: int16 noise)
    assert loud.sum() >= 2
    np.testing.assert_allclose(
        mel[0, : length[0]][:, loud], np.tile(expected[loud], (96, 1)), atol=1e-3
    )


def test_frames_lengths_truncation_and_padding() -> None:
    waves = [_tone(440, 100), _tone(440, 1000), _tone(440, 256 + 80 * 200), np.zeros(0, np.int16)]
    mel, length, frames = features.log_mel(waves, SPEC, chunk_rows=3)  # chunks split the batch
    assert frames.tolist() == [1, 10, 201, 1]
    assert length.tolist() == [1, 10, 96, 1]
    assert mel.shape == (4, 96, 40) and mel.dtype == np.float32
    for row, kept in enumerate(length):
        assert (mel[row, kept:] == 0).all()
        assert np.isfinite(mel[row, :kept]).all() and (mel[row, :kept] != 0).any()
    # a chunk boundary changes nothing
    alone, _, _ = features.log_mel(waves[1:2], SPEC)
    np.testing.assert_array_equal(alone[0], mel[1])


def test_the_raw_store_layout() -> None:
    ids = np.array([30, 10, 20])
    store = features.build_log_mel_store(
        ids, [_tone(300, 900), _tone(900, 20000), _tone(2000, 200)], SPEC
    )
    values = store.arrays["values"]
    assert values.shape == (3, 96, 80) and values.dtype == np.float32
    assert list(store.index.columns) == ["stay_id", "row", "length"]
    assert store.index["stay_id"].tolist() == [30, 10, 20]
    assert store.index["length"].tolist() == [9, 96, 1]
    masks = values[..., 40:]
    for row, kept in enumerate(store.index["length"]):
        assert (masks[row, :kept] == 1).all() and (masks[row, kept:] == 0).all()
    assert store.metadata["channels"][:2] == ["mel_00", "mel_01"]
    assert store.metadata["truncated"] == 1 and store.metadata["frames"] == 96
    assert store.metadata["mel"]["scale"] == "slaney"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"fmax": 5000.0}, "Nyquist"),
        ({"fmin": 4000.0}, "below fmax"),
        ({"hop": 300}, "must not exceed n_fft"),
        ({"n_mel": 40}, "Extra inputs"),
    ],
)
def test_bad_settings_fail(change: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        MelSpec.model_validate({**SPEC.model_dump(), **change})


# ------------------------------------------------------------------------------ normalisation
def _raw_store(val_test_offset: float) -> ArrayStore:
    """6 rows (ids out of order, splits interleaved), 2 channels, 5 frames; padding holds junk."""
    rng = np.random.default_rng(0)
    length = np.array([5, 3, 4, 5, 2, 1])
    split = np.array(["train", "val", "train", "test", "train", "val"])
    x = rng.normal(size=(6, 5, 2)) * np.array([1.0, 3.0]) + np.array([-4.0, 2.0])
    x[split != "train"] += val_test_offset
    observed = np.arange(5)[None, :] < length[:, None]
    x[~observed] = 1000.0  # never observed: must never count
    mask = np.repeat(observed[:, :, None], 2, axis=2).astype(np.float32)
    index = pd.DataFrame(
        {"stay_id": [60, 50, 40, 30, 20, 10], "row": np.arange(6), "length": length}
    )
    values = np.concatenate([x, mask], axis=2).astype(np.float32)
    return ArrayStore({"values": values}, index, "stay_id", {"channels": ["mel_00", "mel_01"]})


def _train_ids() -> list[int]:
    return [60, 40, 20]


def test_the_normaliser_sees_the_observed_frames_of_the_training_rows_only() -> None:
    store = _raw_store(val_test_offset=0.0)
    values = store.arrays["values"]
    train_rows = [0, 2, 4]  # stays 60, 40, 20
    frames = np.concatenate([values[r, : store.index["length"][r], :2] for r in train_rows]).astype(
        np.float64
    )
    fitted = features.fit_mel_normaliser(store, _train_ids(), chunk_rows=2)
    np.testing.assert_allclose(fitted.mean, frames.mean(axis=0), rtol=1e-6)
    np.testing.assert_allclose(fitted.std, frames.std(axis=0), rtol=1e-6)
    assert fitted.count == (11, 11) and fitted.channels == ("mel_00", "mel_01")
    # shifting every val and test value by 100 changes nothing: only train is read
    shifted = features.fit_mel_normaliser(_raw_store(val_test_offset=100.0), _train_ids())
    np.testing.assert_allclose(shifted.mean, fitted.mean, rtol=1e-6)
    np.testing.assert_allclose(shifted.std, fitted.std, rtol=1e-6)
    # and it would show: with every row, the statistics move far
    everyone = features.fit_mel_normaliser(_raw_store(100.0), [10, 20, 30, 40, 50, 60])
    assert min(np.subtract(everyone.mean, fitted.mean)) > 30


def test_fit_refuses_an_empty_split() -> None:
    with pytest.raises(FeatureError, match="empty split"):
        features.fit_mel_normaliser(_raw_store(0.0), [])


def test_apply_standardises_observed_frames_and_keeps_masks_and_padding() -> None:
    raw = _raw_store(0.0)
    fitted = features.fit_mel_normaliser(raw, _train_ids())
    out = features.apply_mel_normaliser(raw, fitted)
    values, before = out.arrays["values"], raw.arrays["values"]
    observed = before[..., 2:] > 0
    np.testing.assert_array_equal(values[..., 2:], before[..., 2:])
    assert (values[..., :2][~observed] == 0).all()  # padding: 0, whatever the raw store held
    expected = (before[..., :2] - np.array(fitted.mean)) / np.array(fitted.std)
    np.testing.assert_allclose(values[..., :2][observed], expected[observed], rtol=1e-5)
    train = np.concatenate([values[r, : raw.index["length"][r], :2] for r in (0, 2, 4)])
    np.testing.assert_allclose(train.mean(axis=0), 0.0, atol=1e-5)
    np.testing.assert_allclose(train.std(axis=0), 1.0, atol=1e-5)
    meta = out.metadata
    assert meta["encoding"] == "continuous" and meta["normalised"] is True
    assert meta["features"] == ["mel_00", "mel_01", "mask:mel_00", "mask:mel_01"]
    assert Normaliser.from_dict(meta["normaliser"]) == fitted
    layout = store_layout(out)  # what the EHR encoders read their width from
    assert layout.width == 4 and layout.encoding == "continuous"


def test_apply_refuses_a_normaliser_of_other_channels() -> None:
    raw = _raw_store(0.0)
    other = Normaliser(("a", "b"), (0.0, 0.0), (1.0, 1.0), (1, 1))
    with pytest.raises(FeatureError, match="refit it on this store"):
        features.apply_mel_normaliser(raw, other)
