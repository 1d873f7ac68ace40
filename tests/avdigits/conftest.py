"""Tiny FSDD-like folders written on the fly: tones named ``{digit}_{speaker}_{take}.wav``."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pytest
from scipy.io import wavfile

RATE = 8000
SPEAKERS = ("alice", "bob", "carol", "dave")


def _tone(frequency: float, seconds: float) -> np.ndarray:
    t = np.arange(round(seconds * RATE)) / RATE
    return np.round(0.5 * 32767 * np.sin(2 * np.pi * frequency * t)).astype(np.int16)


def _write_folder(
    folder: Path,
    speakers: Sequence[str] = SPEAKERS,
    digits: Sequence[int] = tuple(range(10)),
    takes: int = 2,
    seed: int = 0,
) -> Path:
    """One tone per (digit, speaker, take): 250 Hz + 250 Hz per digit, 0.15 to 1.2 s long."""
    folder.mkdir(parents=True, exist_ok=True)
    generator = np.random.default_rng(seed)
    for speaker in speakers:
        for digit in digits:
            for take in range(takes):
                seconds = float(generator.uniform(0.15, 1.2))
                path = folder / f"{digit}_{speaker}_{take}.wav"
                wavfile.write(path, RATE, _tone(250 + 250 * digit, seconds))
    return folder


@pytest.fixture(scope="session")
def fsdd_writer() -> Callable[..., Path]:
    """``fsdd_writer(folder, speakers=..., digits=..., takes=2, seed=0)`` -> the folder."""
    return _write_folder


@pytest.fixture
def write_fsdd(tmp_path: Path) -> Callable[..., Path]:
    """``write_fsdd(name="recordings", speakers=..., digits=..., takes=2, seed=0)`` -> the folder."""

    def write(name: str = "recordings", **kwargs: object) -> Path:
        return _write_folder(tmp_path / name, **kwargs)  # type: ignore[arg-type]

    return write


@pytest.fixture
def fsdd_folder(write_fsdd: Callable[..., Path]) -> Path:
    """4 speakers x 10 digits x 2 takes = 80 recordings."""
    return write_fsdd()
