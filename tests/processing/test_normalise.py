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
    feature_layout,
    fit_normaliser,
    store_layout,
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


# ------------------------------------------------------------------------ categorical encodings
def _old_continuous(store: ArrayStore, normaliser: Normaliser) -> np.ndarray:
    """What ``apply_normaliser`` wrote before ``ehr.categorical`` existed (float32 throughout)."""
    block = np.array(store.arrays["values"], dtype=np.float32)
    hours = np.arange(block.shape[1])[None, :]
    length = np.empty(len(block), dtype=np.int64)
    length[store.index["row"].to_numpy()] = store.index["length"].to_numpy()
    scaled = (block[..., :C] - normaliser.mean_array) / normaliser.std_array
    scaled[hours >= length[:, None]] = 0.0
    block[..., :C] = scaled
    return block


def test_continuous_is_byte_identical_to_the_former_output() -> None:
    store = _store()
    normaliser = fit_normaliser(store, TRAIN)
    expected = _old_continuous(store, normaliser)
    for out in (
        apply_normaliser(store, normaliser, chunk_rows=5),
        apply_normaliser(store, normaliser, encoding="continuous", chunk_rows=1000),
    ):
        values = np.asarray(out.arrays["values"])
        assert values.dtype == np.float32 and values.shape == (N, T, 2 * C)
        assert values.tobytes() == expected.tobytes()
        assert out.metadata["encoding"] == "continuous"
        assert out.metadata["features"] == [*VARIABLE_NAMES, *(f"mask:{n}" for n in VARIABLE_NAMES)]
        assert store_layout(out).width == 2 * C


ONE_HOT_FEATURES = [
    "capillary_refill=0",
    "capillary_refill=1",
    "dbp",
    "fio2",
    *(f"gcs_eye={k}" for k in range(1, 5)),
    *(f"gcs_motor={k}" for k in range(1, 7)),
    *(f"gcs_verbal={k}" for k in range(1, 6)),
    *(f"gcs_total={k}" for k in range(3, 16)),
    "glucose",
    "heart_rate",
    "height",
    "mbp",
    "spo2",
    "resp_rate",
    "sbp",
    "temperature",
    "weight",
    "ph",
    *(f"mask:{n}" for n in VARIABLE_NAMES),
]


def test_feature_layouts() -> None:
    assert list(feature_layout("one_hot").features) == ONE_HOT_FEATURES
    assert feature_layout("one_hot").width == 59
    assert feature_layout("continuous").width == 34
    with pytest.raises(NormaliserError, match=r"ehr.categorical.*'continuous', 'one_hot'"):
        feature_layout("ordinal")  # type: ignore[arg-type]


def _hourly(length: int, window: int, **columns: list[float]) -> np.ndarray:
    """One stay's raw ``(window, 2C)`` block: the given channels (values or ``mask_<name>``)."""
    block = np.zeros((window, 2 * C), dtype=np.float32)
    for name in VARIABLE_NAMES:
        block[:length, CHANNEL[name]] = VARIABLES[CHANNEL[name]].normal
    for key, column in columns.items():
        name = key.removeprefix("mask_")
        channel = CHANNEL[name] + (C if key.startswith("mask_") else 0)
        block[: len(column), channel] = column
    block[length:] = 0.0  # padding
    return block


def test_one_hot_by_hand() -> None:
    """One stay of 4 hours in a 5-hour window (hour 4 is padding), hand-computed output.

    GCS eye is first observed (2) in hour 2: hours 0-1 hold the imputed normal (4), hour 3 the
    carried-forward 2. Motor 7 and 0 are clipped to 6 and 1, 3.5 rounds half up to 4, verbal 2.6
    to 3, capillary refill 0.4 to 0. Categorical statistics are absurd on purpose: never used.
    """
    stay = _hourly(
        4,
        5,
        capillary_refill=[0, 0, 1, 0.4],
        gcs_eye=[4, 4, 2, 2],
        mask_gcs_eye=[0, 0, 1, 0],
        gcs_motor=[6, 7, 0, 3.5],
        mask_gcs_motor=[1, 1, 1, 1],
        gcs_verbal=[5, 5, 2.6, 1],
        gcs_total=[15, 15, 9, 9],
        heart_rate=[90, 70, 80, 100],
        mask_heart_rate=[1, 1, 0, 1],
    )
    other = _hourly(5, 5, heart_rate=[80] * 5)
    store = ArrayStore(
        arrays={"values": np.stack([other, stay])},
        index=pd.DataFrame({"stay_id": [3, 7], "row": [0, 1], "length": [5, 4]}),
        key="stay_id",
    )
    mean = [100.0 if v.categorical else 0.0 for v in VARIABLES]
    std = [7.0 if v.categorical else 1.0 for v in VARIABLES]
    mean[CHANNEL["heart_rate"]], std[CHANNEL["heart_rate"]] = 80.0, 10.0
    normaliser = Normaliser(VARIABLE_NAMES, tuple(mean), tuple(std), (1,) * C)

    out = apply_normaliser(store, normaliser, encoding="one_hot", chunk_rows=1)
    got = np.asarray(out.arrays["values"])[store.rows([7])[0]]  # (5, 59)

    def hot(k: int, size: int) -> list[float]:
        return [1.0 if i == k else 0.0 for i in range(size)]

    normals = [VARIABLES[CHANNEL[n]].normal for n in ("dbp", "fio2")]
    tail = [VARIABLES[CHANNEL[n]].normal for n in ("height", "mbp", "spo2", "resp_rate", "sbp")]
    tail += [VARIABLES[CHANNEL[n]].normal for n in ("temperature", "weight", "ph")]
    glucose = VARIABLES[CHANNEL["glucose"]].normal
    # the index of the hour's category among the variable's categories
    cap, eye, motor, verbal = [0, 0, 1, 0], [3, 3, 1, 1], [5, 5, 0, 3], [4, 4, 2, 0]
    total = [12, 12, 6, 6]  # gcs_total 15, 15, 9, 9 among 3..15
    heart = [1.0, -1.0, 0.0, 2.0]  # (90 - 80) / 10, ...
    expected_values = [
        [
            *hot(cap[h], 2),
            *normals,
            *hot(eye[h], 4),
            *hot(motor[h], 6),
            *hot(verbal[h], 5),
            *hot(total[h], 13),
            glucose,
            heart[h],
            *tail,
        ]
        for h in range(4)
    ]
    np.testing.assert_array_equal(got[:4, :42], np.array(expected_values, dtype=np.float32))
    np.testing.assert_array_equal(got[:4, 42:], stay[:4, C:])  # masks untouched
    np.testing.assert_array_equal(got[4], 0.0)  # padding: no category, no mask
    assert out.metadata["encoding"] == "one_hot"
    assert out.metadata["features"] == ONE_HOT_FEATURES
    assert store_layout(out) == feature_layout("one_hot")
    # the full-length stay: every hour the normal GCS categories, heart rate 0
    first = np.asarray(out.arrays["values"])[0]
    assert first[:, ONE_HOT_FEATURES.index("gcs_eye=4")].tolist() == [1.0] * 5
    assert first[:, ONE_HOT_FEATURES.index("gcs_total=15")].tolist() == [1.0] * 5
    assert first[:, ONE_HOT_FEATURES.index("heart_rate")].tolist() == [0.0] * 5


def test_one_hot_keeps_the_continuous_columns_and_chunks_agree() -> None:
    store = _store()
    normaliser = fit_normaliser(store, TRAIN)
    continuous = np.asarray(apply_normaliser(store, normaliser).arrays["values"])
    one_hot = np.asarray(
        apply_normaliser(store, normaliser, encoding="one_hot", chunk_rows=5).arrays["values"]
    )
    assert one_hot.shape == (N, T, 59)
    names = feature_layout("one_hot").features
    for c, name in enumerate(VARIABLE_NAMES):
        if not VARIABLES[c].categorical:
            np.testing.assert_array_equal(one_hot[..., names.index(name)], continuous[..., c])
    np.testing.assert_array_equal(one_hot[..., 42:], continuous[..., C:])
    hot = one_hot[..., :42][..., [n.startswith("gcs_eye=") for n in names[:42]]]  # (N, T, 4)
    per_hour = hot.sum(axis=-1)
    for _, row, n in store.index.itertuples(index=False):
        assert per_hour[row, :n].tolist() == [1.0] * n and per_hour[row, n:].sum() == 0
    again = apply_normaliser(store, normaliser, encoding="one_hot", chunk_rows=1000)
    assert np.asarray(again.arrays["values"]).tobytes() == one_hot.tobytes()


def test_one_hot_input_is_standardised_with_train_statistics_only() -> None:
    """Val / test values do not move the statistics, so the train rows' input is unchanged."""
    plain, shifted = _store(), _store(others=1e6)
    a = apply_normaliser(plain, fit_normaliser(plain, TRAIN), encoding="one_hot")
    b = apply_normaliser(shifted, fit_normaliser(shifted, TRAIN), encoding="one_hot")
    train_rows = plain.rows(TRAIN)
    np.testing.assert_array_equal(
        np.asarray(a.arrays["values"])[train_rows], np.asarray(b.arrays["values"])[train_rows]
    )
    assert a.metadata["normaliser"] == b.metadata["normaliser"]


def test_store_layout_checks_the_width() -> None:
    store = _store()
    assert store_layout(store) == feature_layout("continuous")  # no metadata: continuous
    wrong = ArrayStore(
        arrays=store.arrays, index=store.index, key="stay_id", metadata={"encoding": "one_hot"}
    )
    with pytest.raises(NormaliserError, match=r"have 34 columns per hour but .* names 59"):
        store_layout(wrong)
