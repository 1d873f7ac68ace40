"""scikit-learn's handwritten digits as a uint8 image store keyed digit-0000 ..."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.datasets import load_digits

from mindkd.avdigits import images


def test_scale_to_uint8() -> None:
    out = images.to_uint8(np.array([0.0, 1.0, 8.0, 15.0, 16.0]))
    assert out.dtype == np.uint8
    assert out.tolist() == [0, 16, 128, 239, 255]  # round(v · 255 / 16)


def test_bilinear_resize_on_pixel_centres() -> None:
    x = np.array([[[0, 40], [80, 120]]], dtype=np.uint8)
    expected = [[0, 10, 30, 40], [20, 30, 50, 60], [60, 70, 90, 100], [80, 90, 110, 120]]
    assert images.resize(x, 4)[0].tolist() == expected
    assert images.resize(x, 2)[0].tolist() == x[0].tolist()
    flat = np.full((3, 8, 8), 77, dtype=np.uint8)
    assert (images.resize(flat, 32) == 77).all()
    with pytest.raises(ValueError, match=r"\(n, s, s\)"):
        images.resize(np.zeros((2, 8, 4), dtype=np.uint8), 16)


def test_load_every_digit_image() -> None:
    reference = load_digits()
    pixels, digits = images.load_digit_images(32)
    assert pixels.shape == (1797, 32, 32) and pixels.dtype == np.uint8
    np.testing.assert_array_equal(digits, reference.target)
    assert np.bincount(digits).tolist() == np.bincount(reference.target).tolist()
    small, _ = images.load_digit_images(8)
    np.testing.assert_array_equal(small, np.round(reference.images * 255 / 16).astype(np.uint8))
    # resizing keeps the ink where it was: mean intensity within a grey level
    assert abs(pixels.mean() - small.mean()) < 1.0


def test_the_store_has_the_cxr_store_layout() -> None:
    pixels, digits = images.load_digit_images(16)
    store = images.build_image_store(pixels, digits)
    assert store.key == "dicom_id"
    assert list(store.index.columns) == ["dicom_id", "row", "digit"]
    assert store.index["dicom_id"].iloc[[0, 7, 1796]].tolist() == [
        "digit-0000",
        "digit-0007",
        "digit-1796",
    ]
    assert store.arrays["images"].shape == (1797, 16, 16)
    assert store.metadata["image_size"] == 16
    np.testing.assert_array_equal(store.take("images", ["digit-0007"])[0], pixels[7])
