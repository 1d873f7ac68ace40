"""Handwritten digits as a "CXR" image store: scikit-learn's ``load_digits``, uint8, square.

``sklearn.datasets.load_digits()`` ships 1,797 real 8×8 scans (UCI "Optical Recognition of
Handwritten Digits", 43 writers; values 0..16) inside scikit-learn, so nothing is downloaded. Each
image becomes uint8 by ``round(v · 255 / 16)`` and, when ``size`` is not 8, is resized with a
deterministic bilinear interpolation on pixel centres (``scipy.ndimage.zoom``, ``order=1``,
``grid_mode=True``, edges repeated: the convention of PIL's and OpenCV's bilinear resize).

Image keys are strings naming the position in ``load_digits`` (``digit-0007``), stable as long as
scikit-learn ships the same data.

>>> image_keys([0, 7, 1796])
['digit-0000', 'digit-0007', 'digit-1796']
>>> to_uint8(np.array([0.0, 8.0, 16.0])).tolist()
[0, 128, 255]
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence

import numpy as np
import pandas as pd
from scipy import ndimage

from mindkd.io.array_store import ArrayStore

logger = logging.getLogger(__name__)

SOURCE_SIZE = 8
SOURCE_MAX = 16.0
KEY_PREFIX = "digit-"
IMAGES = "images"
#: The image store's index columns and their dtypes.
INDEX_COLUMNS: dict[str, str] = {"dicom_id": "str", "row": "int64", "digit": "int64"}


def image_keys(positions: Sequence[int] | np.ndarray) -> list[str]:
    """The key of each image: its position in ``load_digits``, zero-padded to 4 digits."""
    return [f"{KEY_PREFIX}{int(p):04d}" for p in positions]


def to_uint8(pixels: np.ndarray) -> np.ndarray:
    """0..16 intensities as 0..255 uint8 (``round(v · 255 / 16)``, half away from zero)."""
    scaled = np.floor(np.asarray(pixels, dtype=np.float64) * (255.0 / SOURCE_MAX) + 0.5)
    return np.clip(scaled, 0, 255).astype(np.uint8)


def resize(images: np.ndarray, size: int) -> np.ndarray:
    """``(n, s, s)`` uint8 images as ``(n, size, size)`` uint8 (bilinear on pixel centres)."""
    if images.ndim != 3 or images.shape[1] != images.shape[2]:
        raise ValueError(f"images must be (n, s, s), got {images.shape}")
    if size < 1:
        raise ValueError(f"size must be >= 1, got {size}")
    side = images.shape[1]
    if size == side:
        return images.astype(np.uint8, copy=True)
    factor = size / side
    zoomed = ndimage.zoom(
        images.astype(np.float64), (1.0, factor, factor), order=1, mode="nearest", grid_mode=True
    )
    return np.clip(np.floor(zoomed + 0.5), 0, 255).astype(np.uint8)


def load_digit_images(size: int) -> tuple[np.ndarray, np.ndarray]:
    """All of ``load_digits``: ``(images (n, size, size) uint8, digits (n,) int64)``, in its order."""
    from sklearn.datasets import load_digits

    data = load_digits()
    raw = np.asarray(data.images)  # (1797, 8, 8) float, 0..16
    return resize(to_uint8(raw), size), np.asarray(data.target, dtype=np.int64)


def build_image_store(images: np.ndarray, digits: np.ndarray) -> ArrayStore:
    """The store the CXR models read: ``images (n, S, S)`` uint8 keyed by ``dicom_id``
    (``digit-0000`` ...), index ``dicom_id, row, digit``."""
    if len(images) != len(digits):
        raise ValueError(f"{len(images)} images for {len(digits)} digits")
    index = pd.DataFrame(
        {
            "dicom_id": image_keys(np.arange(len(images))),
            "row": np.arange(len(images), dtype=np.int64),
            "digit": np.asarray(digits, dtype=np.int64),
        }
    ).astype(INDEX_COLUMNS)
    side = int(images.shape[-1])
    metadata = {
        "image_size": side,
        "source": "sklearn.datasets.load_digits (8x8, 0..16)",
        "scale": "round(v * 255 / 16)",
        "resample": "bilinear on pixel centres (scipy.ndimage.zoom order 1, grid_mode), edges "
        "repeated"
        if side != SOURCE_SIZE
        else "none (8x8)",
        "n_requested": len(images),
        "n_failed": 0,
        "fingerprint": hashlib.sha256(np.ascontiguousarray(images).tobytes()).hexdigest(),
    }
    logger.info("Digit images: %d at %dx%d", len(images), side, side)
    return ArrayStore(arrays={IMAGES: images}, index=index, key="dicom_id", metadata=metadata)
