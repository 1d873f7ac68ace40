"""Log-mel spectrograms of spoken digits, as an "EHR" time-series store (frames for hours).

The pipeline, numpy and scipy only:

1. waveform: int16 PCM scaled to [-1, 1);
2. STFT (``scipy.signal.stft``): periodic Hann window of ``n_fft`` samples, hop ``hop``, no
   boundary padding; ``scaling="spectrum"`` (a sine of amplitude ``A`` peaks at ``|X| = A/2``);
3. power ``|X|²`` through a **Slaney** mel filterbank (``mel_filterbank``): Slaney's Auditory Toolbox
   mel scale (linear below 1 kHz: ``mel = f / (200/3)``; logarithmic above: ``15 + ln(f/1000) /
   (ln 6.4 / 27)``), ``n_mels`` triangles evenly spaced in mel between ``fmin`` and ``fmax``, each
   scaled to unit area (``2 / (f_right - f_left)``), as ``librosa.filters.mel``'s default;
4. ``log(mel + eps)`` (natural log).

A recording of ``n`` samples has ``1 + (n - n_fft) // hop`` frames whose window lies inside it (1 when
``n < n_fft``: the window is zero-padded). The store holds ``max_frames`` frames per recording:
longer recordings are truncated, shorter ones padded; ``length`` (index column) is the number of
observed frames kept, ``min(frames, max_frames)``, and the frames at or after it are 0 with mask 0.

>>> round(hz_to_mel(1000.0), 6), round(float(mel_to_hz(hz_to_mel(3000.0))), 6)
(15.0, 3000.0)
>>> frame_counts(np.array([100, 256, 335, 336]), n_fft=256, hop=80).tolist()
[1, 1, 1, 2]

Normalisation is fitted on the training recordings only (``fit_mel_normaliser``: per-mel mean and
population std of the observed frames) and applied to every row (``apply_mel_normaliser``). The
normalised store has the layout of a normalised EHR store (``mindkd.processing.normalise``):
``values (n, T, 2·n_mels)`` = standardised log-mel then masks, index ``stay_id, row, length``,
metadata ``encoding: continuous``, ``features`` (``mel_00`` ... then ``mask:mel_00`` ...) and the
``normaliser``, so ``store_layout`` and every EHR encoder read it unchanged.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, model_validator
from scipy import signal

from mindkd.io.array_store import ArrayStore
from mindkd.processing.normalise import DEFAULT_MIN_STD, MASK_PREFIX, Normaliser

logger = logging.getLogger(__name__)

VALUES = "values"
WINDOW = "hann"
_F_SP = 200.0 / 3.0  # Hz per mel below 1 kHz (Slaney)
_MIN_LOG_HZ = 1000.0
_MIN_LOG_MEL = _MIN_LOG_HZ / _F_SP  # 15
_LOG_STEP = float(np.log(6.4) / 27.0)
_PCM_SCALE = 32768.0


class FeatureError(ValueError):
    """Settings or stores the log-mel features cannot use."""


class MelSpec(BaseModel):
    """Log-mel settings (key ``avdigits.source.features``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    sample_rate: int = Field(8000, ge=1000, description="Hz; FSDD is 8 kHz")
    n_fft: int = Field(256, ge=16, description="STFT window and FFT size in samples (32 ms)")
    hop: int = Field(80, ge=1, description="samples between frames (10 ms)")
    n_mels: int = Field(40, ge=1, description="mel bands: the store has 2·n_mels columns")
    fmin: float = Field(0.0, ge=0.0, description="lowest band edge, Hz")
    fmax: float | None = Field(None, gt=0.0, description="highest band edge, Hz; null = Nyquist")
    max_frames: int = Field(
        96, ge=1, description="frames kept per recording (96 × 10 ms covers 99 % of FSDD)"
    )
    eps: float = Field(1e-10, gt=0.0, description="added to the mel power before the log")

    @model_validator(mode="after")
    def _bands(self) -> MelSpec:
        if self.hop > self.n_fft:
            raise ValueError(f"hop ({self.hop}) must not exceed n_fft ({self.n_fft})")
        if self.top > self.sample_rate / 2:
            raise ValueError(f"fmax ({self.fmax}) exceeds Nyquist ({self.sample_rate / 2} Hz)")
        if self.fmin >= self.top:
            raise ValueError(f"fmin ({self.fmin}) must be below fmax ({self.top})")
        return self

    @property
    def top(self) -> float:
        """The highest band edge in Hz (``fmax``, or Nyquist)."""
        return float(self.fmax) if self.fmax is not None else self.sample_rate / 2

    @property
    def window_samples(self) -> int:
        """Samples read for ``max_frames`` frames."""
        return self.n_fft + (self.max_frames - 1) * self.hop

    def channel_names(self) -> tuple[str, ...]:
        width = max(2, len(str(self.n_mels - 1)))
        return tuple(f"mel_{i:0{width}d}" for i in range(self.n_mels))


# ---------------------------------------------------------------------------- mel scale
def hz_to_mel(hz: Any) -> Any:
    """Slaney's mel of ``hz`` (scalar or array)."""
    f = np.asarray(hz, dtype=np.float64)
    log_part = _MIN_LOG_MEL + np.log(np.maximum(f, _MIN_LOG_HZ) / _MIN_LOG_HZ) / _LOG_STEP
    mel = np.where(f >= _MIN_LOG_HZ, log_part, f / _F_SP)
    return float(mel) if mel.ndim == 0 else mel


def mel_to_hz(mel: Any) -> Any:
    """Inverse of ``hz_to_mel``."""
    m = np.asarray(mel, dtype=np.float64)
    log_part = _MIN_LOG_HZ * np.exp(_LOG_STEP * (np.maximum(m, _MIN_LOG_MEL) - _MIN_LOG_MEL))
    hz = np.where(m >= _MIN_LOG_MEL, log_part, m * _F_SP)
    return float(hz) if hz.ndim == 0 else hz


def band_edges(spec: MelSpec) -> np.ndarray:
    """The ``n_mels + 2`` band edges in Hz: band ``i`` rises from edge i, peaks at i+1, ends at i+2."""
    return np.asarray(
        mel_to_hz(np.linspace(hz_to_mel(spec.fmin), hz_to_mel(spec.top), spec.n_mels + 2))
    )


def mel_filterbank(spec: MelSpec) -> np.ndarray:
    """``(n_mels, n_fft // 2 + 1)`` Slaney-normalised triangular filters (see the module doc).

    Raises ``FeatureError`` when a band covers no FFT bin (too many mels for ``n_fft``).
    """
    freqs = np.linspace(0.0, spec.sample_rate / 2, spec.n_fft // 2 + 1)
    edges = band_edges(spec)
    widths = np.diff(edges)
    ramps = edges[:, None] - freqs[None, :]  # (n_mels + 2, bins)
    rising = -ramps[:-2] / widths[:-1, None]
    falling = ramps[2:] / widths[1:, None]
    weights = np.maximum(0.0, np.minimum(rising, falling))
    weights *= (2.0 / (edges[2:] - edges[:-2]))[:, None]
    empty = np.flatnonzero(weights.max(axis=1) <= 0)
    if len(empty):
        raise FeatureError(
            f"mel band(s) {empty.tolist()} cover no FFT bin: lower `n_mels` ({spec.n_mels}) or "
            f"raise `n_fft` ({spec.n_fft}) (key avdigits.source.features)"
        )
    return weights


# ---------------------------------------------------------------------------- spectrograms
def frame_counts(samples: np.ndarray, *, n_fft: int, hop: int) -> np.ndarray:
    """Frames whose whole window lies inside a recording of ``samples`` samples (at least 1)."""
    n = np.asarray(samples, dtype=np.int64)
    return 1 + np.maximum(n - n_fft, 0) // hop


def log_mel(
    waveforms: Sequence[np.ndarray], spec: MelSpec, *, chunk_rows: int = 256
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Log-mel spectrograms of ``waveforms`` (int16 PCM, or floats in [-1, 1]).

    Returns ``(values, length, frames)``: ``values (n, max_frames, n_mels)`` float32 with 0 in every
    frame at or after ``length``; ``length (n,)`` frames kept; ``frames (n,)`` frames observed before
    truncation. Recordings are processed ``chunk_rows`` at a time, each chunk as one padded matrix.
    """
    n = len(waveforms)
    samples = np.array([len(w) for w in waveforms], dtype=np.int64)
    frames = frame_counts(samples, n_fft=spec.n_fft, hop=spec.hop)
    length = np.minimum(frames, spec.max_frames)
    bank = mel_filterbank(spec).astype(np.float32)
    values = np.zeros((n, spec.max_frames, spec.n_mels), dtype=np.float32)
    for start in range(0, n, chunk_rows):
        stop = min(start + chunk_rows, n)
        batch = _padded(waveforms[start:stop], spec.window_samples)  # (b, L)
        _, _, stft = signal.stft(
            batch,
            fs=spec.sample_rate,
            window=WINDOW,
            nperseg=spec.n_fft,
            noverlap=spec.n_fft - spec.hop,
            boundary=None,
            padded=False,
            detrend=False,
            scaling="spectrum",
        )  # (b, n_fft // 2 + 1, max_frames)
        power = (stft.real**2 + stft.imag**2).astype(np.float32)
        mel = np.einsum("mf,bft->btm", bank, power)  # (b, T, n_mels)
        block = np.log(mel + np.float32(spec.eps))
        block[np.arange(spec.max_frames)[None, :] >= length[start:stop, None]] = 0.0
        values[start:stop] = block
    return values, length, frames


def _padded(waveforms: Sequence[np.ndarray], width: int) -> np.ndarray:
    """``(b, width)`` float32 matrix of the waveforms in [-1, 1), truncated or zero-padded."""
    out = np.zeros((len(waveforms), width), dtype=np.float32)
    lengths = np.array([min(len(w), width) for w in waveforms], dtype=np.int64)
    if not lengths.sum():
        return out
    flat = np.concatenate([_as_float(w[:width]) for w in waveforms])
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    positions = np.arange(width)[None, :]
    inside = positions < lengths[:, None]
    gather = np.minimum(starts[:, None] + positions, len(flat) - 1)
    out[inside] = flat[gather[inside]]
    return out


def _as_float(wave: np.ndarray) -> np.ndarray:
    if wave.dtype == np.int16:
        return wave.astype(np.float32) / np.float32(_PCM_SCALE)
    return np.asarray(wave, dtype=np.float32)


def build_log_mel_store(
    stay_ids: Sequence[int] | np.ndarray | pd.Series,
    waveforms: Sequence[np.ndarray],
    spec: MelSpec,
) -> ArrayStore:
    """The raw (unnormalised) store: ``values (n, T, 2·n_mels)`` = log-mel then masks, keyed by
    ``stay_id`` (row order = ``stay_ids`` order), index ``stay_id, row, length``."""
    ids = np.asarray(stay_ids, dtype=np.int64)
    if len(ids) != len(waveforms):
        raise FeatureError(f"{len(ids)} stay ids for {len(waveforms)} waveforms")
    mel, length, frames = log_mel(waveforms, spec)
    mask = (np.arange(spec.max_frames)[None, :] < length[:, None]).astype(np.float32)
    values = np.concatenate([mel, np.repeat(mask[:, :, None], spec.n_mels, axis=2)], axis=2)
    index = pd.DataFrame(
        {"stay_id": ids, "row": np.arange(len(ids), dtype=np.int64), "length": length}
    )
    truncated = int((frames > spec.max_frames).sum())
    metadata = {
        "window": "first_frames",
        "frames": spec.max_frames,
        "frame_ms": 1000.0 * spec.hop / spec.sample_rate,
        "channels": list(spec.channel_names()),
        "layout": "values (log-mel: natural log of Slaney mel power + eps) then masks",
        "mel": {"scale": "slaney", "norm": "slaney (unit-area triangles)", **spec.model_dump()},
        "recordings": len(ids),
        "truncated": truncated,
        "frames_observed": _summary(frames),
        "fingerprint": _sha256(values.tobytes(), spec.model_dump_json()),
    }
    logger.info(
        "Log-mel: %d recordings × %d frames × %d mels (%d truncated at %d frames)",
        len(ids),
        spec.max_frames,
        spec.n_mels,
        truncated,
        spec.max_frames,
    )
    return ArrayStore(arrays={VALUES: values}, index=index, key="stay_id", metadata=metadata)


def _summary(values: np.ndarray) -> dict[str, float]:
    if not len(values):
        return {}
    return {
        "min": float(values.min()),
        "median": float(np.median(values)),
        "p99": float(np.percentile(values, 99)),
        "max": float(values.max()),
    }


def _sha256(*parts: bytes | str) -> str:
    digest = hashlib.sha256()
    for part in parts:
        digest.update(part if isinstance(part, bytes) else part.encode())
    return digest.hexdigest()


# ---------------------------------------------------------------------------- normalisation
def _split(store: ArrayStore) -> tuple[np.ndarray, int, tuple[str, ...]]:
    """The store's values, its number of mel channels and their names."""
    if VALUES not in store.arrays:
        raise FeatureError(f"the store has no {VALUES!r} array (has {sorted(store.arrays)})")
    values = store.arrays[VALUES]
    channels = tuple(str(c) for c in store.metadata.get("channels", ()))
    if values.ndim != 3 or values.shape[2] != 2 * len(channels) or not channels:
        raise FeatureError(
            f"{VALUES!r} must be (n, T, 2·C) = values then masks of the C channels its metadata "
            f"names ({len(channels)}), got {values.shape}"
        )
    return values, len(channels), channels


def fit_mel_normaliser(
    store: ArrayStore,
    train_stay_ids: Iterable[int] | pd.Series | np.ndarray,
    *,
    min_std: float = DEFAULT_MIN_STD,
    chunk_rows: int = 1024,
) -> Normaliser:
    """Per-mel mean and population std of the observed frames of the training recordings only.

    A channel whose std is below ``min_std`` gets std 1 (centred only).
    """
    values, n_mels, channels = _split(store)
    ids = np.unique(np.asarray(list(train_stay_ids), dtype=np.int64))
    if len(ids) == 0:
        raise FeatureError("no training recordings: cannot fit the normaliser on an empty split")
    rows = np.sort(store.rows(ids))
    count = np.zeros(n_mels, dtype=np.int64)
    total = np.zeros(n_mels, dtype=np.float64)
    for block, observed in _blocks(values, rows, n_mels, chunk_rows):
        count += observed.sum(axis=(0, 1))
        total += np.where(observed, block, 0.0).sum(axis=(0, 1))
    if not count.all():
        raise FeatureError("a mel channel has no observed frame in the training recordings")
    mean = total / count
    squares = np.zeros(n_mels, dtype=np.float64)
    for block, observed in _blocks(values, rows, n_mels, chunk_rows):
        squares += np.where(observed, (block - mean) ** 2, 0.0).sum(axis=(0, 1))
    std = np.sqrt(squares / count)
    std = np.where(std < min_std, 1.0, std)
    logger.info("Fitted the log-mel normaliser on %d training recordings", len(rows))
    return Normaliser(
        channels=channels,
        mean=tuple(mean.tolist()),
        std=tuple(std.tolist()),
        count=tuple(count.tolist()),
        min_std=min_std,
    )


def _blocks(
    values: np.ndarray, rows: np.ndarray, n_mels: int, chunk_rows: int
) -> Iterable[tuple[np.ndarray, np.ndarray]]:
    for start in range(0, len(rows), chunk_rows):
        block = np.asarray(values[rows[start : start + chunk_rows]], dtype=np.float64)
        yield block[..., :n_mels], block[..., n_mels:] > 0


def feature_names(channels: Sequence[str]) -> list[str]:
    """The columns of one frame: the channels, then their masks (``mask:mel_00`` ...)."""
    return [*channels, *(f"{MASK_PREFIX}{c}" for c in channels)]


def apply_mel_normaliser(store: ArrayStore, normaliser: Normaliser) -> ArrayStore:
    """A new store of model input: observed frames standardised, padding 0, masks unchanged."""
    values, n_mels, channels = _split(store)
    if tuple(normaliser.channels) != channels:
        raise FeatureError(
            f"the normaliser's channels ({len(normaliser.channels)}, {normaliser.channels[:2]}...) "
            f"are not the store's ({len(channels)}, {channels[:2]}...); refit it on this store"
        )
    out = np.array(values, dtype=np.float32)  # (n, T, 2·n_mels)
    scaled = (out[..., :n_mels] - normaliser.mean_array) / normaliser.std_array
    out[..., :n_mels] = np.where(out[..., n_mels:] > 0, scaled, 0.0)
    features = feature_names(channels)
    metadata = {
        **store.metadata,
        "normalised": True,
        "normaliser": normaliser.to_dict(),
        "layout": "standardised log-mel then masks",
        "encoding": "continuous",
        "features": features,
        "fingerprint": _sha256(
            str(store.metadata.get("fingerprint", "")), json.dumps(normaliser.to_dict())
        ),
    }
    return ArrayStore(
        arrays={**store.arrays, VALUES: out},
        index=store.index.copy(),
        key=store.key,
        metadata=metadata,
    )
