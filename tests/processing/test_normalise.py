"""Normaliser: observed-only statistics of the training stays, applied to every split."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from mindkd.io.array_store import ArrayStore
from mindkd.mimic.variables import CHANNEL, NUM_VARIABLES, VARIABLE_NAMES, VARIABLES
from mindkd.processing.normalise import (
    Normaliser,
    NormaliserError,
    apply_normaliser,
    fit_normaliser,
)

C = NUM_VARIABLES
N, T = 12, 6
TRAIN = [100, 102, 105, 107, 108, 111]
CONSTANT, NEVER = CHANNEL["height"], CHANNEL["capillary_refill"]


def _store(seed: int = 0, others: float | None = None) -> ArrayStore:
    """N stays stored in a shuffled row order, random values, ~40 % observed, padded tails."""
    rng = np.random.default_rng(seed)
    values = np.zeros((N, T, 2 * C), dtype=np.float32)
    values[..., :C] = rng.normal(50, 10, size=(N, T, C)).astype(np.float32)
    values[..., C:] = rng.random((N, T, C)) < 0.4
    values[..., CONSTANT] = 170.0
    values[..., C + NEVER] = 0.0
    stay_ids = np.arange(100, 100 + N)
    rows = rng.permutation(N)
    length = rng.integers(2, T + 1, N)
    for stay, row, n in zip(stay_ids, rows, length, strict=True):
        values[row, n:] = 0.0
        if others is not None and stay not in TRAIN:
            values[row, :n, :C] = others
    index = pd.DataFrame({"stay_id": stay_ids, "row": rows, "length": length})
    return ArrayStore(arrays={"values": values}, index=index, key="stay_id")


def _expected(store: ArrayStore) -> tuple[np.ndarray, np.ndarray]:
    block = store.arrays["values"][store.rows(TRAIN)].astype(np.float64)
    mean, std = np.empty(C), np.empty(C)
    for c in range(C):
        seen = block[..., c][block[..., C + c] == 1]
        mean[c] = seen.mean() if len(seen) else VARIABLES[c].normal
        std[c] = seen.std() if len(seen) else 1.0
    std[std < 1e-6] = 1.0
    return mean, std


def test_statistics_are_the_train_split_observed_values() -> None:
    store = _store()
    normaliser = fit_normaliser(store, TRAIN, chunk_rows=4)
    mean, std = _expected(store)
    np.testing.assert_allclose(normaliser.mean, mean, rtol=1e-10)
    np.testing.assert_allclose(normaliser.std, std, rtol=1e-10)
    assert normaliser.mean[CONSTANT] == pytest.approx(170.0)
    assert normaliser.std[CONSTANT] == 1.0  # constant on train: std floored to 1
    assert normaliser.count[NEVER] == 0
    assert normaliser.mean[NEVER] == VARIABLES[NEVER].normal
    assert normaliser.std[NEVER] == 1.0
    assert normaliser.channels == VARIABLE_NAMES
    one_chunk = fit_normaliser(store, TRAIN, chunk_rows=1000)
    np.testing.assert_allclose(one_chunk.mean, normaliser.mean, rtol=1e-12)
    np.testing.assert_allclose(one_chunk.std, normaliser.std, rtol=1e-12)


def test_val_and_test_stays_do_not_matter() -> None:
    plain = fit_normaliser(_store(), TRAIN)
    shifted = fit_normaliser(_store(others=1e6), TRAIN)
    assert plain == shifted
    everyone = fit_normaliser(_store(), range(100, 100 + N))
    assert everyone.mean != plain.mean


def test_apply_normalises_values_and_leaves_masks() -> None:
    store = _store()
    normaliser = fit_normaliser(store, TRAIN)
    out = apply_normaliser(store, normaliser, chunk_rows=5)
    raw, scaled = store.arrays["values"], np.asarray(out.arrays["values"])
    np.testing.assert_array_equal(scaled[..., C:], raw[..., C:])
    pd.testing.assert_frame_equal(out.index, store.index)
    mean, std = np.asarray(normaliser.mean), np.asarray(normaliser.std)
    for _, row, n in store.index.itertuples(index=False):
        expected = ((raw[row, :n, :C] - mean) / std).astype(np.float32)
        np.testing.assert_allclose(scaled[row, :n, :C], expected, rtol=1e-5, atol=1e-5)
        np.testing.assert_array_equal(scaled[row, n:], 0.0)
    assert out.metadata["normaliser"] == normaliser.to_dict()


def test_json_round_trip() -> None:
    normaliser = fit_normaliser(_store(), TRAIN)
    restored = Normaliser.from_dict(json.loads(json.dumps(normaliser.to_dict())))
    assert restored == normaliser
    with pytest.raises(NormaliserError, match=r"lacks key\(s\) \['std'\]"):
        Normaliser.from_dict({"channels": ["a"], "mean": [0.0], "count": [1]})


def test_errors() -> None:
    store = _store()
    with pytest.raises(KeyError, match="not in the store"):
        fit_normaliser(store, [100, 999])
    with pytest.raises(NormaliserError, match="no training stays"):
        fit_normaliser(store, [])
    wrong = Normaliser(("a",) * C, (0.0,) * C, (1.0,) * C, (1,) * C)
    with pytest.raises(NormaliserError, match="refit it"):
        apply_normaliser(store, wrong)
    with pytest.raises(NormaliserError, match="std must be > 0"):
        Normaliser(("a",), (0.0,), (0.0,), (1,))
