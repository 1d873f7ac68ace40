"""Small synthetic stores shared by the pipeline tests' input builders."""

from __future__ import annotations

import numpy as np
import pandas as pd

from mindkd.io.array_store import ArrayStore
from mindkd.processing.normalise import feature_layout


def signal_timeseries(
    rng: np.random.Generator,
    stay_id: np.ndarray,
    y: np.ndarray,
    *,
    steps: int,
    channels: int,
    shift: float,
) -> ArrayStore:
    """Hourly tensors whose first channel is shifted by ``±shift`` with the label, all observed.

    Every third stay is 3 hours shorter; the store rows are in another order than ``stay_id``.
    """
    n = len(stay_id)
    values = rng.normal(size=(n, steps, channels)).astype(np.float32)
    values[:, :, channels // 2 :] = 1.0  # the masks: all observed
    values[:, :, 0] += np.where(y == 1, shift, -shift)[:, None]
    lengths = np.where(np.arange(n) % 3 == 0, steps - 3, steps)
    order = rng.permutation(n)
    return ArrayStore(
        arrays={"values": values[order]},
        index=pd.DataFrame(
            {"stay_id": stay_id[order], "row": np.arange(n), "length": lengths[order]}
        ),
        key="stay_id",
    )


def widen_to_one_hot(store: ArrayStore) -> ArrayStore:
    """``store`` (17 values then 17 masks per hour) at the width of ``ehr.categorical: one_hot``:
    its 17 value columns first (channel 0 keeps the signal), zeros up to the 42 value columns, the
    17 masks last; the metadata names the one-hot features, as ``apply_normaliser`` writes them."""
    layout = feature_layout("one_hot")
    values = np.asarray(store.arrays["values"])
    masks = values.shape[-1] // 2
    wide = np.zeros((*values.shape[:2], layout.width), dtype=np.float32)
    wide[..., :masks] = values[..., :masks]
    wide[..., layout.width - masks :] = values[..., masks:]
    return ArrayStore(
        arrays={"values": wide},
        index=store.index.copy(),
        key=store.key,
        metadata={**store.metadata, **layout.to_dict()},
    )
