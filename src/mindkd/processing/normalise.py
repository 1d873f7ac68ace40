"""Per-channel standardisation of the hourly EHR values, fitted on the training split only.

``fit_normaliser(store, train_stay_ids)`` reads only the rows of the training stays and computes,
per channel, the mean and the (population, ddof = 0) standard deviation of the OBSERVED values, the
cells whose mask is 1: imputed normals and carried-forward values would otherwise pull the
statistics towards the imputation. It streams over rows in chunks and merges chunk statistics
with Chan's parallel update in float64, so memory does not grow with N. A channel whose standard
deviation is below ``min_std`` (constant on train) gets std 1 (values are only centred); a channel
never observed on train gets mean = its normal value and std 1 (its imputed normal becomes 0).

``apply_normaliser(store, normaliser, encoding=...)`` makes the model input of every row (all
splits) in a new memory-mapped store; ``encoding`` (parameter ``ehr.categorical``) says what becomes
of the categorical variables (``Variable.categorical``: GCS eye / motor / verbal / total, capillary
refill):

- ``continuous``: every variable is standardised, ``(value - mean) / std``: ``values (N, T, 2C)``.
- ``one_hot`` (mimic3-benchmarks' discretizer, MedFuse): each categorical variable is expanded in
  place into one 0/1 column per category (``Variable.categories``): the hour's imputed or
  carried-forward score, rounded half up to the nearest category and clipped to the category range,
  never standardised; the other variables are standardised as above.

Either way the C masks follow unchanged and padding hours (``h >= length``) stay 0. The store's
metadata records the ``encoding`` and ``features``, the name of every column (``feature_names``:
``gcs_eye=1`` for a category, ``heart_rate`` for a value, ``mask:heart_rate`` for a mask); models
take their EHR input width from it (``store_layout``), never from a constant.

``Normaliser`` is a small frozen dataclass; ``to_dict()``/``from_dict()`` make it a JSON catalog
dataset.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, cast, get_args

import numpy as np
import pandas as pd

from mindkd.io.array_store import ArrayStore
from mindkd.mimic.variables import NUM_VARIABLES, VARIABLE_NAMES, VARIABLES, CategoricalEncoding
from mindkd.processing.timeseries import (
    DEFAULT_CHUNK_ROWS,
    discard_scratch,
    open_scratch,
    seal_scratch,
)

logger = logging.getLogger(__name__)

VALUES = "values"
DEFAULT_MIN_STD = 1e-6

CATEGORICAL_ENCODINGS: tuple[CategoricalEncoding, ...] = get_args(CategoricalEncoding)
MASK_PREFIX = "mask:"


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


@dataclass(frozen=True)
class FeatureLayout:
    """The columns of one hour of model input: the encoding and the name of every column."""

    encoding: CategoricalEncoding
    features: tuple[str, ...]

    @property
    def width(self) -> int:
        """Columns per hour: the ``in_channels`` of an EHR encoder reading this input."""
        return len(self.features)

    def to_dict(self) -> dict[str, Any]:
        return {"encoding": self.encoding, "features": list(self.features)}


def _check_encoding(encoding: str) -> CategoricalEncoding:
    if encoding not in CATEGORICAL_ENCODINGS:
        raise NormaliserError(
            f"unknown categorical encoding {encoding!r} (parameter `ehr.categorical`); "
            f"choose one of {list(CATEGORICAL_ENCODINGS)}"
        )
    return cast(CategoricalEncoding, encoding)


def feature_layout(encoding: CategoricalEncoding) -> FeatureLayout:
    """Every column of an hour under ``encoding``: the variables in ``VARIABLES`` order (a value,
    or one column per category of a categorical variable under ``one_hot``), then the C masks.

    >>> layout = feature_layout("one_hot")
    >>> layout.features[:3], layout.features[-1], layout.width
    (('capillary_refill=0', 'capillary_refill=1', 'dbp'), 'mask:ph', 59)
    >>> feature_layout("continuous").width
    34
    """
    encoding = _check_encoding(encoding)
    values: list[str] = []
    for v in VARIABLES:
        if encoding == "one_hot" and v.categorical:
            values.extend(f"{v.name}={c:g}" for c in v.categories)
        else:
            values.append(v.name)
    masks = [f"{MASK_PREFIX}{name}" for name in VARIABLE_NAMES]
    return FeatureLayout(encoding, (*values, *masks))


def store_layout(store: ArrayStore) -> FeatureLayout:
    """The layout of a prepared store (``<task>.timeseries``): its ``encoding`` and ``features``
    metadata; a store written without them is ``continuous``. Raises ``NormaliserError`` when the
    metadata does not name exactly one feature per column of ``values``."""
    if VALUES not in store.arrays:
        raise NormaliserError(f"the store has no {VALUES!r} array (has {sorted(store.arrays)})")
    width = int(store.arrays[VALUES].shape[-1])
    encoding = _check_encoding(str(store.metadata.get("encoding", "continuous")))
    features = tuple(str(f) for f in store.metadata.get("features", ()))
    layout = FeatureLayout(encoding, features) if features else feature_layout(encoding)
    if layout.width != width:
        raise NormaliserError(
            f"the store's {VALUES!r} have {width} columns per hour but its metadata names "
            f"{layout.width} features ({encoding}); rebuild it with the ehr pipeline"
        )
    return layout


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
    encoding: CategoricalEncoding = "continuous",
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
    scratch_dir: str | None = None,
) -> ArrayStore:
    """A new store of model input under ``encoding`` (see the module doc), the same index.

    ``values`` becomes ``(N, T, W)`` with ``W = feature_layout(encoding).width`` (34 continuous,
    59 one-hot); the metadata records ``encoding`` and ``features``.
    """
    values = _values(store)
    if tuple(normaliser.channels) != VARIABLE_NAMES:
        raise NormaliserError(
            f"the normaliser's channels {list(normaliser.channels)} are not the store's "
            f"{list(VARIABLE_NAMES)}; refit it on this store"
        )
    layout = feature_layout(encoding)
    n, window, _ = values.shape
    length = _lengths_by_row(store, n, window)
    out = open_scratch((n, window, layout.width), scratch_dir, "ehr_normalised_")
    try:
        plan = _Plan.of(layout.encoding)
        _encode_rows(values, out, normaliser, plan, length=length, chunk_rows=chunk_rows)
    except BaseException:
        discard_scratch(out)
        raise
    out = seal_scratch(out)
    metadata = {
        **store.metadata,
        "normalised": True,
        "normaliser": normaliser.to_dict(),
        "layout": "standardised values (one-hot categories under encoding one_hot) then masks",
        **layout.to_dict(),
    }
    logger.info("EHR input: %d columns per hour (categorical: %s)", layout.width, encoding)
    return ArrayStore(
        arrays={**store.arrays, VALUES: out},
        index=store.index.copy(),
        key=store.key,
        metadata=metadata,
    )


@dataclass(frozen=True)
class _Plan:
    """Where each variable goes in an encoded hour.

    ``scaled``: the variables standardised, ``scaled_columns`` their output columns; ``one_hot``:
    per expanded variable (its index, its first output column, its categories); ``width``: the
    value columns (the masks follow).
    """

    scaled: np.ndarray
    scaled_columns: np.ndarray
    one_hot: tuple[tuple[int, int, np.ndarray], ...]
    width: int

    @classmethod
    def of(cls, encoding: CategoricalEncoding) -> _Plan:
        scaled: list[int] = []
        columns: list[int] = []
        one_hot: list[tuple[int, int, np.ndarray]] = []
        column = 0
        for i, v in enumerate(VARIABLES):
            if encoding == "one_hot" and v.categorical:
                one_hot.append((i, column, np.asarray(v.categories, dtype=np.float32)))
                column += len(v.categories)
            else:
                scaled.append(i)
                columns.append(column)
                column += 1
        return cls(np.array(scaled), np.array(columns), tuple(one_hot), column)


def _encode_rows(
    values: np.ndarray,
    out: np.ndarray,
    normaliser: Normaliser,
    plan: _Plan,
    *,
    length: np.ndarray,
    chunk_rows: int,
) -> None:
    """``out`` = encoded values of ``values`` (standardised / one-hot), masks copied, padding 0."""
    mean = normaliser.mean_array[plan.scaled]
    std = normaliser.std_array[plan.scaled]
    hours = np.arange(values.shape[1])[None, :]
    for start in range(0, values.shape[0], chunk_rows):
        block = np.array(values[start : start + chunk_rows], dtype=np.float32)  # (b, T, 2C)
        x = block[..., :NUM_VARIABLES]
        encoded = np.empty((*block.shape[:2], out.shape[2]), dtype=np.float32)  # (b, T, W)
        encoded[..., plan.scaled_columns] = (x[..., plan.scaled] - mean) / std
        for variable, first, categories in plan.one_hot:
            score = np.clip(np.floor(x[..., variable] + 0.5), categories[0], categories[-1])
            hot = score[..., None] == categories  # (b, T, K)
            encoded[..., first : first + len(categories)] = hot
        encoded[hours >= length[start : start + chunk_rows, None], : plan.width] = 0.0
        encoded[..., plan.width :] = block[..., NUM_VARIABLES:]
        out[start : start + chunk_rows] = encoded


def _lengths_by_row(store: ArrayStore, n: int, window: int) -> np.ndarray:
    """Each row's ``length`` (the full window where the index has no ``length`` column)."""
    length = np.full(n, window, dtype=np.int64)
    if "length" in store.index.columns:
        length[store.index["row"].to_numpy(dtype=np.int64)] = store.index["length"].to_numpy(
            dtype=np.int64
        )
    return length
