"""Performance per patient group: every model's routed test prediction scored within each group of
each attribute (sex, age band, race, insurance; ``mindkd.processing.subgroups``).

Each group is scored as its own test set with ``scoring.score_predictions`` (the same bootstrap,
seed and metrics as the main evaluation). A group with fewer than ``min_size`` stays is reported
with its size and status ``too small`` and no scores; a group whose stays all share one label value
is ``one class`` (AUROC undefined). No group is dropped.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np
import pandas as pd

from mindkd.evaluation.scoring import ScoreSettings, score_predictions
from mindkd.models.batch import TaskKind
from mindkd.processing.subgroups import ATTRIBUTES

_METRIC_KEY = re.compile(r"[^\w.\- /]")


def metric_key(group: object) -> str:
    """A group name as MLflow accepts it in a metric key (``80+`` -> ``80plus``).

    >>> metric_key("80+"), metric_key("Hispanic/Latino")
    ('80plus', 'Hispanic/Latino')
    """
    return _METRIC_KEY.sub("_", str(group).replace("+", "plus"))


SCORES: tuple[str, ...] = ("auroc", "auroc_low", "auroc_high", "auprc", "auprc_low", "auprc_high")
SKIPPED: tuple[str, ...] = ("auroc_skipped", "auprc_skipped")
COLUMNS: tuple[str, ...] = (
    "model", "attribute", "group", "n", "positives", *SCORES, *SKIPPED, "status"
)  # fmt: skip


def score_subgroups(
    predictions: pd.DataFrame,
    samples: pd.DataFrame,
    subgroups: pd.DataFrame,
    labels: Sequence[str],
    *,
    kind: TaskKind,
    settings: ScoreSettings,
    models: Sequence[str],
    min_size: int,
    attributes: Sequence[str] = ATTRIBUTES,
) -> pd.DataFrame:
    """One row per (attribute, group, model), in that order: size, positives, AUROC / AUPRC with
    intervals, status.

    ``predictions`` and ``samples`` are keyed by ``key`` (the stay id) as in the main evaluation;
    ``subgroups`` has ``stay_id`` and one column per attribute. Raises ``ValueError`` when a test
    stay has no subgroup row (the table comes from another cohort).
    """
    groups = subgroups.set_index("stay_id")
    missing = ~samples["key"].isin(groups.index)
    if missing.any():
        raise ValueError(
            f"{int(missing.sum())} test stay(s) have no row in the subgroup table, e.g. "
            f"{samples.loc[missing, 'key'].head(5).tolist()}; re-run the ehr pipeline"
        )
    routed = predictions[predictions["head"] == "routed"]
    rows: list[dict[str, object]] = []
    for attribute in attributes:
        in_group = groups.loc[samples["key"], attribute].to_numpy()
        for group in sorted(set(in_group)):
            members = samples.loc[in_group == group]
            y = members[list(labels)].to_numpy(dtype=np.float64)
            base = {"attribute": attribute, "group": group, "n": len(members)}
            base["positives"] = float(np.nansum(y))
            if len(members) < min_size:
                status = f"too small (< {min_size} stays)"
                rows += [{"model": m, **base, "status": status} for m in models]
                continue
            if not _both_classes(y, kind):
                rows += [{"model": m, **base, "status": "one class"} for m in models]
                continue
            scored = score_predictions(
                routed,
                members,
                labels,
                kind,
                settings,
                models=models,
                subsets=("full",),
                heads=("routed",),
                warn=False,  # the skipped resamples are columns of the table
            ).table
            for _, row in scored.iterrows():
                scores = {c: row[c] for c in (*SCORES, *SKIPPED)}
                rows.append({"model": row["model"], **base, **scores, "status": "ok"})
    return pd.DataFrame(rows, columns=list(COLUMNS))  # attributes, then groups, then models


def _both_classes(y: np.ndarray, kind: TaskKind) -> bool:
    """Whether some label has both classes among the group's stays (AUROC defined)."""
    if kind == "multiclass":
        rows = y[np.isfinite(y).all(axis=1)]
        return len(rows) > 0 and len(np.unique(rows.argmax(axis=1))) > 1
    positive = (np.nan_to_num(y, nan=0.0) == 1).any(axis=0)
    negative = (np.nan_to_num(y, nan=1.0) == 0).any(axis=0)
    return bool((positive & negative).any())


def subgroup_markdown(table: pd.DataFrame, metric: str = "auroc") -> str:
    """One markdown table per attribute: a row per group (size, positives) and a column per model
    with ``metric [low, high]``, or the group's status when it is unscored."""
    models = list(dict.fromkeys(table["model"]))
    lines = [f"## {metric.upper()} per patient group (routed prediction)", ""]
    for attribute in dict.fromkeys(table["attribute"]):
        part = table[table["attribute"] == attribute]
        lines += [
            f"**{attribute.replace('_', ' ')}**",
            "",
            "| group | n | positives | " + " | ".join(models) + " |",
            "|---|---:|---:|" + "---|" * len(models),
        ]
        for group, rows in part.groupby("group", sort=False):
            by_model = rows.set_index("model")
            cells = []
            for model in models:
                row = by_model.loc[model] if model in by_model.index else None
                if row is None:
                    cells.append("")
                elif np.isfinite(row[metric]):
                    low, high = row[f"{metric}_low"], row[f"{metric}_high"]
                    cells.append(f"{row[metric]:.3f} [{low:.3f}, {high:.3f}]")
                else:
                    cells.append(str(row["status"]))
            first = rows.iloc[0]
            lines.append(
                f"| {group} | {int(first['n'])} | {first['positives']:g} | "
                + " | ".join(cells)
                + " |"
            )
        lines.append("")
    return "\n".join(lines)
