"""Small synthetic stores shared by the pipeline tests' input builders."""

from __future__ import annotations

import numpy as np
import pandas as pd

from mindkd.io.array_store import ArrayStore


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
