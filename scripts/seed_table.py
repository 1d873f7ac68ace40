"""Markdown tables of MIND vs baselines over several student seeds (how README's results were made).

Reads the last N versions of ``data/08_reporting/<task>/distill/comparison.csv`` (one per
``kedro run --pipelines distill`` invocation; run them with different ``<task>.distill.fit.seed``) and
prints, per task, the routed AUROC / AUPRC of each model with its 95 % bootstrap interval per seed,
and the paired difference to the no-KD student.

    python scripts/seed_table.py --runs 3 [--data-root data] [--models mind,no_kd,zero_filled]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd

TASKS = ("ihm", "pheno")


def _cell(row: pd.Series, key: str) -> str:
    if pd.isna(row.get(key)):
        return "–"
    return f"{row[key]:.3f} [{row[f'{key}_low']:.3f}, {row[f'{key}_high']:.3f}]"


def seed_table(data_root: Path, task: str, runs: int, models: list[str]) -> str:
    files = sorted(
        (data_root / "08_reporting" / task / "distill" / "comparison.csv").glob("*/*.csv")
    )
    if len(files) < runs:
        raise SystemExit(
            f"{task}: {len(files)} distill comparison versions under {data_root}, need {runs}"
        )
    tables = [pd.read_csv(f) for f in files[-runs:]]
    header = "| model | test set | seed | AUROC [95 % CI] | AUPRC [95 % CI] | ΔAUROC vs no-KD [95 % CI] |"
    lines = [header, "|---|---|---|---|---|---|"]
    for model in models:
        for subset in ("paired", "full"):
            for seed, table in enumerate(tables):
                row = table[(table["model"] == model) & (table["subset"] == subset)].iloc[0]
                delta = "–" if model == "no_kd" else _cell(row, "delta_auroc")
                lines.append(
                    f"| {model} | {subset} | {seed} | {_cell(row, 'auroc')} | {_cell(row, 'auprc')} "
                    f"| {delta} |"
                )
            scores = [t[(t["model"] == model) & (t["subset"] == subset)].iloc[0] for t in tables]
            auroc = pd.Series([s["auroc"] for s in scores])
            auprc = pd.Series([s["auprc"] for s in scores])
            lines.append(
                f"| **{model}** | **{subset}** | mean ± sd | **{auroc.mean():.3f} ± {auroc.std():.3f}** "
                f"| **{auprc.mean():.3f} ± {auprc.std():.3f}** | |"
            )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--data-root", type=Path, default=Path("data"))
    parser.add_argument("--models", default="mind,no_kd,zero_filled")
    args = parser.parse_args()
    for task in TASKS:
        print(f"\n#### {task}\n")
        print(seed_table(args.data_root, task, args.runs, args.models.split(",")))


if __name__ == "__main__":
    main()
