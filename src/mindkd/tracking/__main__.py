"""Command line: compare distill runs, or list what differs between two runs.

Examples::

    python -m mindkd.tracking compare
    python -m mindkd.tracking compare --task ihm --sort paired.routed.auroc --limit 10
    python -m mindkd.tracking compare --models mind,no_kd,medfuse --sort alpha --ascending
    python -m mindkd.tracking diff 3f2a9c1e 8b7d0e44
    python -m mindkd.tracking register --task ihm
    python -m mindkd.tracking stale [--close [--force]]   # runs left RUNNING by a killed process
    python -m mindkd.tracking results --min-seeds 5 --write docs/results.md README.md

The store and experiment names come from the project's ``conf/`` (``globals.mlflow_tracking_uri``,
``mlflow.yml``) unless ``--tracking-uri`` / ``--experiment`` say otherwise.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from mindkd.tracking.compare import (
    DEFAULT_SORT,
    TASKS,
    CompareError,
    compare_runs,
    diff_runs,
    format_comparison,
    format_diff,
)
from mindkd.tracking.store import project_store

logger = logging.getLogger("mindkd.tracking")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``python -m mindkd.tracking``."""
    parser = argparse.ArgumentParser(
        prog="python -m mindkd.tracking", description="Compare MIND-KD's MLflow runs."
    )
    parser.add_argument(
        "--tracking-uri", default=None, help="MLflow store (default: the project's conf)"
    )
    parser.add_argument(
        "--project", type=Path, default=Path.cwd(), help="project root (default: here)"
    )
    parser.add_argument("--env", default=None, help="Kedro config environment (default: local)")
    parser.add_argument("--experiment", default=None, help="base experiment (default: mlflow.yml)")
    commands = parser.add_subparsers(dest="command", required=True)

    compare = commands.add_parser("compare", help="the latest distill runs, side by side")
    compare.add_argument("--task", choices=TASKS, default=None, help="one task (default: all)")
    compare.add_argument(
        "--sort",
        default=DEFAULT_SORT,
        help=f"score (of the first model) or setting to sort by (default {DEFAULT_SORT}); "
        "'start' = newest first",
    )
    compare.add_argument("--ascending", action="store_true", help="smallest first")
    compare.add_argument("--limit", type=int, default=20, help="latest runs per task (default 20)")
    compare.add_argument(
        "--models",
        default="mind",
        help="comma-separated: mind, no_kd, zero_filled, medfuse, teachers (default mind)",
    )

    diff = commands.add_parser("diff", help="params and provenance tags that differ")
    diff.add_argument("run_a", help="run id (or a unique prefix, as the table shows it)")
    diff.add_argument("run_b")

    register = commands.add_parser(
        "register", help="register the best student of a task (mindkd.tracking.registry)"
    )
    register.add_argument("--task", choices=TASKS, required=True)
    register.add_argument(
        "--metric",
        default=None,
        help="validation metric under <task>.distill.mind. (default: "
        "the registry's, best/val/auroc)",
    )
    stale = commands.add_parser(
        "stale", help="runs left RUNNING by a process that is gone (mindkd.tracking.stale)"
    )
    stale.add_argument("--close", action="store_true", help="mark the dead ones KILLED")
    stale.add_argument(
        "--force", action="store_true", help="with --close: also runs of other hosts or untagged"
    )
    results = commands.add_parser(
        "results",
        help="the results tables from the tracked seed runs (mindkd.tracking.results)",
    )
    results.add_argument("--task", choices=TASKS, default=None, help="one task (default: all)")
    results.add_argument(
        "--min-seeds", type=int, default=5, help="seeds each task needs (default 5)"
    )
    results.add_argument(
        "--write",
        nargs="+",
        type=Path,
        default=None,
        help="files whose <!-- results:<block> begin/end --> blocks are replaced "
        "(default: print every block)",
    )
    results.add_argument(
        "--only",
        nargs="+",
        default=None,
        help="these blocks only (tuning, summary, claims, headline, seeds, provenance); "
        "`--only tuning` needs no seed runs",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    uri, experiment = args.tracking_uri, args.experiment
    if uri is None or experiment is None:
        store = project_store(args.project.resolve(), env=args.env)
        uri, experiment = uri or store.uri, experiment or store.experiment
    try:
        if args.command == "register":
            return _register(uri, args.task, args.metric)
        if args.command == "stale":
            return _stale(uri, experiment, close=args.close, force=args.force)
        if args.command == "results":
            return _results(uri, experiment, args.task, args.min_seeds, args.write, args.only)
        if args.command == "compare":
            models = [m.strip() for m in args.models.split(",") if m.strip()]
            table = compare_runs(
                uri,
                base_experiment=experiment,
                tasks=[args.task] if args.task else TASKS,
                models=models,
                sort=None if args.sort == "start" else args.sort,
                limit=args.limit,
                ascending=args.ascending,
            )
            text = format_comparison(table, models)
        else:
            text = format_diff(diff_runs(uri, args.run_a, args.run_b), args.run_a, args.run_b)
    except CompareError as exc:
        logger.error("%s", exc)
        return 2
    sys.stdout.write(text + "\n")
    return 0


def _register(uri: str, task: str, metric: str | None) -> int:
    from mindkd.tracking.registry import RegistryError, register_best  # MLflow's registry: lazy

    try:
        version = register_best(task, uri, **({"metric": metric} if metric else {}))
    except (RegistryError, ValueError) as exc:
        logger.error("%s", exc)
        return 2
    sys.stdout.write(
        f"{version.name} version {version.version} (run {version.run_id}) is "
        f"{', '.join('@' + a for a in version.aliases)}\n"
    )
    return 0


def _results(  # noqa: PLR0917 - the subcommand's arguments
    uri: str,
    experiment: str,
    task: str | None,
    min_seeds: int,
    files: Sequence[Path] | None,
    only: Sequence[str] | None,
) -> int:
    from mindkd.tracking import results

    try:
        texts = results.collect(uri, experiment, [task] if task else TASKS, min_seeds, only)
        if not files:
            for name, text in texts.items():
                sys.stdout.write(f"<!-- results:{name} -->\n{text}\n\n")
            return 0
        for path in files:
            replaced = results.write_blocks(path, texts)
            sys.stdout.write(f"{path}: {', '.join(replaced)}\n")
    except results.ResultsError as exc:
        logger.error("%s", exc)
        return 2
    return 0


def _stale(uri: str, experiment: str, *, close: bool, force: bool) -> int:
    from mlflow import MlflowClient

    from mindkd.tracking import stale

    client = MlflowClient(tracking_uri=uri)
    names = [experiment, *(f"{experiment}-{task}" for task in TASKS)]
    runs = stale.find_stale(client, names)
    closed = stale.close(client, runs, force=force) if close else None
    sys.stdout.write(stale.format_stale(runs, closed) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
