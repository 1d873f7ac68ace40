"""Per-channel standardisation of the hourly EHR values, fitted on the training split only.

``fit_normaliser(store, train_stay_ids)`` reads only the rows of the training stays and computes,
per channel, the mean and the (population, ddof = 0) standard deviation of the OBSERVED values, the
cells whose mask is 1: imputed normals and carried-forward values would otherwise pull the
statistics towards the imputation. It streams over rows in chunks and merges chunk statistics
with Chan's parallel update in float64, so memory does not grow with N. A channel whose standard
deviation is below ``min_std`` (constant on train) gets std 1 (values are only centred); a channel
never observed on train gets mean = its normal value and std 1 (its imputed normal becomes 0).

``apply_normaliser(store, normaliser)`` writes ``(value - mean) / std`` for the C value channels of
every row (all splits) into a new memory-mapped store, copies the C masks untouched and keeps
padding hours (``h >= length``) at 0.

``Normaliser`` is a small frozen dataclass; ``to_dict()``/``from_dict()`` make it a JSON catalog
dataset.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from mindkd.io.array_store import ArrayStore
from mindkd.mimic.variables import NUM_VARIABLES, VARIABLE_NAMES, VARIABLES
from mindkd.processing.timeseries import (
    DEFAULT_CHUNK_ROWS,
    discard_scratch,
    open_scratch,
    seal_scratch,
)

logger = logging.getLogger(__name__)

VALUES = "values"
DEFAULT_MIN_STD = 1e-6


class NormaliserError(ValueError):
    """A normaliser does not fit the store (channels, shapes) or its saved form is invalid."""


@dataclass(frozen=True)
class Normaliser:
    """Per-channel mean and std of the observed training values (channel order = ``channels``)."""

    channels: tuple[str, ...]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    count: tuple[int, ...]
    min_std: float = DEFAULT_MIN_STD

    def __post_init__(self) -> None:
        sizes = {len(self.channels), len(self.mean), len(self.std), len(self.count)}
        if len(sizes) != 1:
            raise NormaliserError(
                f"normaliser fields differ in length: channels {len(self.channels)}, mean "
                f"{len(self.mean)}, std {len(self.std)}, count {len(self.count)}"
            )
        if any(not s > 0 for s in self.std):
            raise NormaliserError(f"normaliser std must be > 0, got {list(self.std)}")

    @property
    def mean_array(self) -> np.ndarray:
        return np.asarray(self.mean, dtype=np.float32)

    @property
    def std_array(self) -> np.ndarray:
        return np.asarray(self.std, dtype=np.float32)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form (lists of floats / ints)."""
        return {
            "channels": list(self.channels),
            "mean": [float(m) for m in self.mean],
            "std": [float(s) for s in self.std],
            "count": [int(c) for c in self.count],
            "min_std": float(self.min_std),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Normaliser:
        """Inverse of ``to_dict``; raises ``NormaliserError`` naming a missing key."""
        missing = [k for k in ("channels", "mean", "std", "count") if k not in data]
        if missing:
            raise NormaliserError(f"saved normaliser lacks key(s) {missing} (has {sorted(data)})")
        return cls(
            channels=tuple(str(c) for c in data["channels"]),
            mean=tuple(float(m) for m in data["mean"]),
            std=tuple(float(s) for s in data["std"]),
            count=tuple(int(c) for c in data["count"]),
            min_std=float(data.get("min_std", DEFAULT_MIN_STD)),
        )


def _values(store: ArrayStore) -> np.ndarray:
    if VALUES not in store.arrays:
        raise NormaliserError(f"the store has no {VALUES!r} array (has {sorted(store.arrays)})")
    values = store.arrays[VALUES]
    if values.ndim != 3 or values.shape[2] != 2 * NUM_VARIABLES:
        raise NormaliserError(
            f"{VALUES!r} must be (N, T, {2 * NUM_VARIABLES}) = values then masks of "
            f"{NUM_VARIABLES} channels, got {values.shape}"
        )
    return values


def fit_normaliser(
    store: ArrayStore,
    train_stay_ids: Iterable[int] | pd.Series | np.ndarray,
    *,
    min_std: float = DEFAULT_MIN_STD,
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
) -> Normaliser:
    """Mean and std per channel of the observed values of the training stays only.

    Args:
        store: the hourly store (``build_hourly_store``), values then masks.
        train_stay_ids: the stays of the training split (every one must be in the store).
        min_std: below this a channel's std is replaced by 1.
        chunk_rows: rows read at a time.
    """
    values = _values(store)
    given = (
        train_stay_ids
        if isinstance(train_stay_ids, pd.Series | np.ndarray)
        else list(train_stay_ids)
    )
    ids = np.unique(np.asarray(given, dtype=np.int64))
    if len(ids) == 0:
        raise NormaliserError("no training stays: cannot fit the normaliser on an empty split")
    rows = np.sort(store.rows(ids))
    count = np.zeros(NUM_VARIABLES, dtype=np.int64)
    mean = np.zeros(NUM_VARIABLES, dtype=np.float64)
    m2 = np.zeros(NUM_VARIABLES, dtype=np.float64)
    for start in range(0, len(rows), chunk_rows):
        block = np.asarray(values[rows[start : start + chunk_rows]], dtype=np.float64)
        count, mean, m2 = _merge((count, mean, m2), _chunk_moments(block))
    observed = count > 0
    std = np.sqrt(np.divide(m2, count, out=np.zeros_like(m2), where=observed))
    std = np.where(std < min_std, 1.0, std)
    normals = np.array([v.normal for v in VARIABLES], dtype=np.float64)
    mean = np.where(observed, mean, normals)
    if not observed.all():
        logger.warning(
            "Channel(s) never observed in the training split: %s (mean = normal, std = 1)",
            [VARIABLE_NAMES[i] for i in np.flatnonzero(~observed)],
        )
    logger.info("Fitted the normaliser on %d training stays", len(rows))
    return Normaliser(
        channels=VARIABLE_NAMES,
        mean=tuple(mean.tolist()),
        std=tuple(std.tolist()),
        count=tuple(count.tolist()),
        min_std=min_std,
    )


def _chunk_moments(block: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Count, mean and sum of squared deviations of the observed values of one chunk."""
    x, observed = block[..., :NUM_VARIABLES], block[..., NUM_VARIABLES:] > 0
    n = observed.sum(axis=(0, 1))
    total = np.where(observed, x, 0.0).sum(axis=(0, 1))
    mean = np.divide(total, n, out=np.zeros_like(total), where=n > 0)
    m2 = (np.where(observed, x - mean, 0.0) ** 2).sum(axis=(0, 1))
    return n, mean, m2


def _merge(
    a: tuple[np.ndarray, np.ndarray, np.ndarray], b: tuple[np.ndarray, np.ndarray, np.ndarray]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Chan et al.'s pairwise update of (count, mean, M2)."""
    (n_a, mean_a, m2_a), (n_b, mean_b, m2_b) = a, b
    n = n_a + n_b
    safe = np.maximum(n, 1)
    delta = mean_b - mean_a
    mean = mean_a + delta * n_b / safe
    m2 = m2_a + m2_b + delta**2 * n_a * n_b / safe
    return n, mean, m2


def apply_normaliser(
    store: ArrayStore,
    normaliser: Normaliser,
    *,
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
    scratch_dir: str | None = None,
) -> ArrayStore:
    """A new store with standardised values, the same masks and index, padding kept at 0."""
    values = _values(store)
    if tuple(normaliser.channels) != VARIABLE_NAMES:
        raise NormaliserError(
            f"the normaliser's channels {list(normaliser.channels)} are not the store's "
            f"{list(VARIABLE_NAMES)}; refit it on this store"
        )
    n, window, width = values.shape
    length = _lengths_by_row(store, n, window)
    out = open_scratch((n, window, width), scratch_dir, "ehr_normalised_")
    try:
        _scale_rows(values, out, normaliser, length, chunk_rows)
    except BaseException:
        discard_scratch(out)
        raise
    out = seal_scratch(out)
    metadata = {**store.metadata, "normalised": True, "normaliser": normaliser.to_dict()}
    return ArrayStore(
        arrays={**store.arrays, VALUES: out},
        index=store.index.copy(),
        key=store.key,
        metadata=metadata,
    )


def _scale_rows(
    values: np.ndarray,
    out: np.ndarray,
    normaliser: Normaliser,
    length: np.ndarray,
    chunk_rows: int,
) -> None:
    """``out`` = ``values`` with standardised value channels, masks copied, padding at 0."""
    mean, std = normaliser.mean_array, normaliser.std_array
    hours = np.arange(values.shape[1])[None, :]
    for start in range(0, values.shape[0], chunk_rows):
        block = np.array(values[start : start + chunk_rows], dtype=np.float32)  # (b, T, 2C)
        scaled = (block[..., :NUM_VARIABLES] - mean) / std
        scaled[hours >= length[start : start + chunk_rows, None]] = 0.0
        block[..., :NUM_VARIABLES] = scaled
        out[start : start + chunk_rows] = block


def _lengths_by_row(store: ArrayStore, n: int, window: int) -> np.ndarray:
    """Each row's ``length`` (the full window where the index has no ``length`` column)."""
    length = np.full(n, window, dtype=np.int64)
    if "length" in store.index.columns:
        length[store.index["row"].to_numpy(dtype=np.int64)] = store.index["length"].to_numpy(
            dtype=np.int64
        )
    return length
