"""Evaluation of teacher members and their ensembles from the logit cache, with bootstrap intervals.

Each member and each modality's ensemble (the combination of its members' logits, as the student
will see it) is scored on the val and test splits: EHR on every cohort stay, CXR on the paired images
with their stay's task labels. Every model of one modality and split is scored on the *same* bootstrap
resamples, so the ensemble's gain over its best member has a paired interval.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from mindkd.evaluation.scoring import METRICS, metrics_for, subject_resamples
from mindkd.io.logit_cache import LogitCache
from mindkd.models.batch import TaskKind
from mindkd.training.fit import scores_for_metrics
from mindkd.training.losses import EnsembleCombine, ensemble_targets
from mindkd.training.metrics import bootstrap
from mindkd.training.samples import label_matrix, split_rows

logger = logging.getLogger(__name__)


def ensemble_name(modality: str) -> str:
    return f"{modality}_ensemble"


def score_split(
    cache: LogitCache,
    modality: str,
    samples: pd.DataFrame,
    split: str,
    *,
    labels: Sequence[str],
    kind: TaskKind,
    n_bootstrap: int,
    level: float,
    seed: int,
    combine: EnsembleCombine,
    ordinal: bool = False,
) -> list[dict[str, Any]]:
    """One report row per member and one for the ensemble of ``modality`` on ``split`` of ``samples``."""
    table = split_rows(samples, split)
    members = cache.members(modality)
    if not members or table.empty:
        return []
    y = label_matrix(table, labels)
    logits = {m: cache.logits(modality, m, table["key"]) for m in members}
    logits[ensemble_name(modality)] = ensemble_targets(
        np.stack([logits[m] for m in members]), combine=combine, kind=kind
    )
    resamples = subject_resamples(table, n_bootstrap, seed)
    rows: list[dict[str, Any]] = []
    draws: dict[tuple[str, str], np.ndarray] = {}
    for model, z in logits.items():
        row: dict[str, Any] = {
            "modality": modality,
            "model": model,
            "type": "ensemble" if model == ensemble_name(modality) else "member",
            "split": split,
            "n": len(table),
            "positives": float(np.nansum(y)),
        }
        scores = scores_for_metrics(z, kind)  # softmax for multiclass, logits otherwise
        for name, fn in metrics_for(kind, ordinal).items():
            result = bootstrap(fn, y, scores, alpha=1.0 - level, resamples=resamples)
            row |= {name: result.point, f"{name}_low": result.low, f"{name}_high": result.high}
            if result.n_skipped == 0:
                draws[(model, name)] = result.values
        rows.append(row)
    _add_gain(rows, draws, modality, level)
    return rows


def _add_gain(
    rows: list[dict[str, Any]],
    draws: Mapping[tuple[str, str], np.ndarray],
    modality: str,
    level: float,
) -> None:
    """Ensemble minus its best member (per metric), with a paired percentile interval if possible."""
    ensemble = next(r for r in rows if r["model"] == ensemble_name(modality))
    members = [r for r in rows if r["type"] == "member"]
    for name in METRICS:
        scored = [r for r in members if np.isfinite(r[name])]
        if not scored or not np.isfinite(ensemble[name]):
            ensemble |= {f"gain_{name}": math.nan, f"best_member_{name}": None}
            continue
        best = max(scored, key=lambda r: r[name])
        low = high = math.nan
        paired = (draws.get((ensemble["model"], name)), draws.get((best["model"], name)))
        if paired[0] is not None and paired[1] is not None:
            diff = paired[0] - paired[1]
            low, high = np.percentile(diff, [50 * (1 - level), 100 - 50 * (1 - level)])
        ensemble |= {
            f"gain_{name}": ensemble[name] - best[name],
            f"gain_{name}_low": float(low),
            f"gain_{name}_high": float(high),
            f"best_member_{name}": best["model"],
        }


def parameter_counts(cache: LogitCache) -> dict[str, int]:
    """Parameters per member, per ensemble and of both ensembles together (from the provenance)."""
    members = cache.provenance.get("members", {})
    counts = {name: int(info["parameters"]) for name, info in members.items()}
    for modality in ("ehr", "cxr"):
        counts[ensemble_name(modality)] = sum(
            int(info["parameters"]) for info in members.values() if info["modality"] == modality
        )
    counts["ensembles_total"] = counts[ensemble_name("ehr")] + counts[ensemble_name("cxr")]
    return counts


def report_table(report: Mapping[str, Any]) -> pd.DataFrame:
    """One row per model: modality, type, parameters, then ``<split>_<metric>[_low|_high]`` columns."""
    long = pd.DataFrame(report["rows"])
    if long.empty:
        return long
    values = [c for c in long.columns if c not in ("modality", "model", "type", "split")]
    wide = long.pivot_table(
        index=["modality", "model", "type"], columns="split", values=values, aggfunc="first"
    )
    wide.columns = [f"{split}_{value}" for value, split in wide.columns]
    splits = list(dict.fromkeys(long["split"]))
    ordered = [f"{s}_{v}" for s in splits for v in values if f"{s}_{v}" in wide.columns]
    wide = wide[ordered].reset_index()
    wide.insert(3, "parameters", wide["model"].map(report["parameters"]).astype("Int64"))
    order = {m: i for i, m in enumerate(dict.fromkeys(long["model"]))}
    return wide.sort_values("model", key=lambda s: s.map(order)).reset_index(drop=True)


def report_metrics(report: Mapping[str, Any]) -> dict[str, dict[str, float | int]]:
    """Flat ``{<model>.<split>.<metric>: {value, step}}`` for ``MlflowMetricsHistoryDataset``."""
    metrics: dict[str, dict[str, float | int]] = {}
    for row in report["rows"]:
        for column, value in row.items():
            if column in ("modality", "model", "type", "split") or isinstance(value, str):
                continue
            if value is None or not np.isfinite(value):
                continue
            metrics[f"{row['model']}.{row['split']}.{column}"] = {"value": float(value), "step": 0}
    for model, count in report["parameters"].items():
        metrics[f"{model}.parameters"] = {"value": float(count), "step": 0}
    return metrics
