"""Per-epoch training curves in the form kedro-mlflow's metrics dataset logs them.

>>> history = {"epochs": [{"epoch": 1, "train/loss": 0.7, "val/kd": 0.1}], "monitor": "val/loss",
...            "best_score": 0.7, "best_epoch": 1}
>>> training_curves(history, exclude=("/kd",))
{'train/loss': [{'value': 0.7, 'step': 1}], 'best/val/loss': [{'value': 0.7, 'step': 1}]}
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

Curves = dict[str, list[dict[str, float]]]


def training_curves(
    history: Mapping[str, Any] | None,
    *,
    prefix: str = "",
    exclude: Sequence[str] = (),
    best: bool = True,
) -> Curves:
    """Every finite per-epoch value of a fit history (``mindkd.training.fit.FitResult``'s report:
    ``train/<term>``, ``val/<metric or term>``, ``lr``) as ``<prefix><key>`` with step = epoch;
    keys containing one of ``exclude`` are left out. With ``best``, also ``best/<monitor>``: the
    monitored value of the kept epoch (step = that epoch), what ``mindkd.tracking.registry``
    ranks runs by."""
    curves: Curves = {}
    for record in (history or {}).get("epochs", []):
        step = int(record["epoch"])
        for key, value in record.items():
            if key == "epoch" or value is None or any(part in key for part in exclude):
                continue
            if math.isfinite(value):
                curves.setdefault(f"{prefix}{key}", []).append(
                    {"value": float(value), "step": step}
                )
    score = (history or {}).get("best_score")
    if best and history and history.get("monitor") and score is not None and math.isfinite(score):
        point = {"value": float(score), "step": int(history.get("best_epoch") or 0)}
        curves[f"{prefix}best/{history['monitor']}"] = [point]
    return curves
