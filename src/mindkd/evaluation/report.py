"""The comparison table: one row per model and test subset, with intervals, calibration and cost.

Columns (``routed`` = the prediction each model serves; ``<h>`` in ehr / cxr / fused):

    model, subset, n, positives,
    auroc, auroc_low, auroc_high, auprc, auprc_low, auprc_high, ece      (routed head;
    accuracy, macro_f1, kappa with intervals too for a multiclass task)
    auroc_<h>, auroc_<h>_low, auroc_<h>_high, auprc_<h>, ...              (where the head applies)
    delta_auroc, delta_auroc_low, delta_auroc_high, delta_auprc, ...      (minus the reference model)
    parameters, state_dict_mb, latency_p50_ms, latency_p95_ms, teacher_fraction

``to_markdown`` renders it for humans (no extra dependency).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from .scoring import ALL_METRICS, SUBSETS, Scores

UNIMODAL_HEADS: tuple[str, ...] = ("ehr", "cxr", "fused")
COST_COLUMNS: tuple[str, ...] = (
    "parameters",
    "state_dict_mb",
    "latency_p50_ms",
    "latency_p95_ms",
    "teacher_fraction",
)


def _metric_block(rows: pd.DataFrame, suffix: str = "") -> dict[str, float]:
    out: dict[str, float] = {}
    if rows.empty:
        return out
    row = rows.iloc[0]
    for metric in (m for m in ALL_METRICS if m in row.index):
        for part in ("", "_low", "_high"):
            out[f"{metric}{suffix}{part}"] = float(row[f"{metric}{part}"])
    return out


def comparison_table(
    scores: Scores,
    compression: Mapping[str, Mapping[str, float]],
    models: Sequence[str],
    reference: str | None = None,
) -> pd.DataFrame:
    """The table (see module docstring); models in the order given, subsets full, paired, then
    ehr_only (the stays without an X-ray).

    ``delta_*``: the differences against ``reference`` (None: the only reference there is)."""
    table = scores.table
    rows: list[dict[str, object]] = []
    for model in models:
        for subset in SUBSETS:
            mine = table[(table["model"] == model) & (table["subset"] == subset)]
            routed = mine[mine["head"] == "routed"]
            if routed.empty:
                continue
            row: dict[str, object] = {
                "model": model,
                "subset": subset,
                "n": int(routed["n"].iloc[0]),
                "positives": float(routed["positives"].iloc[0]),
                **_metric_block(routed),
                "ece": float(routed["ece"].iloc[0]),
            }
            for head in UNIMODAL_HEADS:
                row |= _metric_block(mine[mine["head"] == head], f"_{head}")
            row |= _deltas(scores.differences, model, subset, reference)
            cost = compression.get(model, {})
            row |= {
                "parameters": cost.get("parameters", math.nan),
                "state_dict_mb": cost.get("state_dict_bytes", math.nan) / 2**20,
                "latency_p50_ms": cost.get("latency_p50_ms", math.nan),
                "latency_p95_ms": cost.get("latency_p95_ms", math.nan),
                "teacher_fraction": cost.get("teacher_fraction", math.nan),
            }
            rows.append(row)
    return pd.DataFrame(rows)


def _deltas(
    differences: pd.DataFrame, model: str, subset: str, reference: str | None
) -> dict[str, float]:
    out: dict[str, float] = {}
    if differences.empty:
        return out
    if reference is None:
        references = set(differences["reference"])
        if len(references) > 1:
            raise ValueError(f"differences against {sorted(references)}: name the reference")
    else:
        differences = differences[differences["reference"] == reference]
    mine = differences[
        (differences["model"] == model)
        & (differences["subset"] == subset)
        & (differences["head"] == "routed")
    ]
    for _, d in mine.iterrows():
        out |= {
            f"delta_{d['metric']}": float(d["difference"]),
            f"delta_{d['metric']}_low": float(d["low"]),
            f"delta_{d['metric']}_high": float(d["high"]),
        }
    return out


def _interval(row: pd.Series, key: str, digits: int = 3) -> str:
    value = row.get(key, math.nan)
    if value is None or not np.isfinite(value):
        return "–"
    low, high = row.get(f"{key}_low", math.nan), row.get(f"{key}_high", math.nan)
    text = f"{value:.{digits}f}"
    if np.isfinite(low) and np.isfinite(high):
        text += f" [{low:.{digits}f}, {high:.{digits}f}]"
    return text


def _number(value: object, fmt: str) -> str:
    if value is None or not isinstance(value, int | float) or not np.isfinite(value):
        return "–"
    return format(value, fmt)


def to_markdown(
    table: pd.DataFrame, title: str, reference: str = "reference", notes: Sequence[str] = ()
) -> str:
    """A markdown rendering of ``comparison_table``: intervals in brackets, cost in units; a
    multiclass table also shows accuracy and macro-F1, and linearly weighted κ for ordered classes,
    with their Δ."""
    scores = [("AUROC", "auroc"), ("AUPRC", "auprc")]
    deltas = [(f"ΔAUROC vs {reference}", "delta_auroc")]
    if "accuracy" in table.columns:  # multiclass
        scores += [("accuracy", "accuracy"), ("macro-F1", "macro_f1")]
        deltas.append((f"Δ accuracy vs {reference}", "delta_accuracy"))
    if "kappa" in table.columns:  # ordered classes
        scores.append(("κ linear", "kappa"))
        deltas.append((f"Δκ vs {reference}", "delta_kappa"))
    header = [
        "model",
        "subset",
        "n",
        *(name for name, _ in scores),
        *(name for name, _ in deltas),
        "AUROC ehr",
        "AUROC cxr",
        "AUROC fused",
        "ECE",
        "params",
        "MB",
        "p50 / p95 ms",
    ]
    lines = [f"# {title}", "", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for _, row in table.iterrows():
        cells = [
            str(row["model"]),
            str(row["subset"]),
            str(int(row["n"])),
            *(_interval(row, key) for _, key in scores),
            *(_interval(row, key) for _, key in deltas),
            _interval(row, "auroc_ehr"),
            _interval(row, "auroc_cxr"),
            _interval(row, "auroc_fused"),
            _number(row.get("ece"), ".3f"),
            _number(row.get("parameters"), ",.0f"),
            _number(row.get("state_dict_mb"), ".2f"),
            f"{_number(row.get('latency_p50_ms'), '.2f')} / "
            f"{_number(row.get('latency_p95_ms'), '.2f')}",
        ]
        lines.append("| " + " | ".join(cells) + " |")
    if notes:
        lines += ["", *(f"- {note}" for note in notes)]
    return "\n".join(lines) + "\n"
