"""The results pages from the tracked runs: one command for every number of README and results.md.

``python -m mindkd.tracking results --write docs/results.md README.md`` reads, per task, the
evaluated distill runs of that task's experiment (``mindkd.evaluation_complete``, FINISHED), takes
the newest one's settings (every ``<task>.distill.*`` param but ``fit.seed``, and the logit cache it
read) and the newest run of each seed with exactly those settings. A seed is the run's recorded
``<task>.distill.fit.seed``, never its position in a list. Fewer than ``--min-seeds`` seeds, or a
run with other settings mixed in, is an error that names what differs.

It writes markdown between ``<!-- results:<block> begin -->`` and ``<!-- results:<block> end -->``
markers (the rest of each file is left as it is): ``tuning`` (the newest tuning study of each
task, from its trial runs), ``summary`` (mean ± sd over seeds per model,
test set and metric, plus teacher ensembles and the demo's Bayes ceiling), ``claims`` (MIND minus
each other model per test set: mean ± sd of the difference over seeds, the seeds where MIND is
ahead, and where the paired 95 % interval excludes 0 either way; ``headline``: its AUROC rows),
``seeds`` (every seed's scores with
their intervals) and ``provenance`` (the runs, commits and cache version).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import mlflow
import pandas as pd
from mlflow.entities import Run

from mindkd.tracking.runs import (
    TAG_EVALUATED,
    TAG_GIT_COMMIT,
    TAG_GIT_DIRTY,
    TAG_LOGIT_CACHE,
    task_experiment,
)

MODELS = ("mind", "no_kd", "zero_filled", "medfuse", "mckd")
FIXED = ("teachers", "bayes_ceiling")  # the same in every seed's run (not trained by distill)
LABELS = {
    "mind": "MIND",
    "no_kd": "no-KD student",
    "zero_filled": "zero-filled",
    "medfuse": "MedFuse",
    "mckd": "MCKD",
    "teachers": "teacher ensembles",
    "bayes_ceiling": "Bayes ceiling",
}
SUBSETS = ("paired", "full", "ehr_only")
METRICS = ("auroc", "auprc")
CLASS_METRICS = ("accuracy", "macro_f1", "kappa")  # multiclass tasks (los, avdigits) log them too
METRIC_NAMES = {
    "auroc": "AUROC",
    "auprc": "AUPRC",
    "accuracy": "accuracy",
    "macro_f1": "macro-F1",
    "kappa": "κ linear",
}
REFERENCE = "no_kd"  # the reference whose deltas are logged without a `_vs_` suffix


class ResultsError(ValueError):
    """The store does not hold a coherent set of seed runs for a task."""


@dataclass(frozen=True)
class SeedRuns:
    """One task's runs, one per seed, all with the same settings and logit cache."""

    task: str
    runs: tuple[Run, ...]  # sorted by seed

    @property
    def seeds(self) -> list[int]:
        return [seed_of(run, self.task) for run in self.runs]

    def metric(self, name: str) -> list[float]:
        """``<task>.distill.<name>`` per seed (NaN where a run lacks it)."""
        key = f"{self.task}.distill.{name}"
        return [float(run.data.metrics.get(key, math.nan)) for run in self.runs]


def _experiment_id(client: mlflow.MlflowClient, base_experiment: str, task: str) -> str | None:
    experiment = client.get_experiment_by_name(task_experiment(base_experiment, task))
    return None if experiment is None else str(experiment.experiment_id)


def seed_of(run: Run, task: str) -> int:
    value = run.data.params.get(f"{task}.distill.fit.seed")
    if value is None:
        raise ResultsError(f"run {run.info.run_id} records no {task}.distill.fit.seed")
    return int(value)


def settings_of(run: Run, task: str) -> dict[str, str]:
    """What must be equal across seeds: the distill params but the seed, and the cache read."""
    prefix = f"{task}.distill."
    out = {
        k: v
        for k, v in run.data.params.items()
        if k.startswith(prefix) and k != f"{prefix}fit.seed"
    }
    out["logit cache"] = run.data.tags.get(TAG_LOGIT_CACHE, "")
    return out


def select_seed_runs(
    client: mlflow.MlflowClient, base_experiment: str, task: str, min_seeds: int
) -> SeedRuns:
    """The newest evaluated run's settings, and the newest run of each seed that has them."""
    experiment = _experiment_id(client, base_experiment, task)
    if experiment is None:
        raise ResultsError(f"no experiment {task_experiment(base_experiment, task)!r} in the store")
    runs = client.search_runs(
        [experiment],
        filter_string=f"tags.`{TAG_EVALUATED}` = 'true' and attributes.status = 'FINISHED'",
        order_by=["attributes.start_time DESC"],
        max_results=1000,
    )
    if not runs:
        raise ResultsError(f"{task}: no finished, evaluated distill run in the store")
    wanted = settings_of(runs[0], task)
    chosen: dict[int, Run] = {}
    others: list[tuple[Run, list[str]]] = []
    for run in runs:
        have = settings_of(run, task)
        if have != wanted:
            differ = sorted(k for k in set(have) | set(wanted) if have.get(k) != wanted.get(k))
            others.append((run, differ))
            continue
        chosen.setdefault(seed_of(run, task), run)
    if len(chosen) < min_seeds:
        hint = "".join(
            f"\n  run {run.info.run_id[:8]} (seed {run.data.params.get(f'{task}.distill.fit.seed')})"
            f" differs in {', '.join(differ[:4])}{' …' if len(differ) > 4 else ''}"
            for run, differ in others[:5]
        )
        raise ResultsError(
            f"{task}: {len(chosen)} seed(s) ({sorted(chosen)}) with the settings of the newest run "
            f"{runs[0].info.run_id[:8]}, need {min_seeds}; run `kedro run --pipelines distill "
            f'--params "{task}.distill.fit.seed=<s>"` for the missing seeds{hint}'
        )
    return SeedRuns(task, tuple(chosen[s] for s in sorted(chosen)))


# ------------------------------------------------------------------------------ numbers
def _mean_sd(values: Sequence[float]) -> str:
    series = pd.Series(values, dtype=float).dropna()
    if series.empty:
        return "–"
    if math.isclose(series.max(), series.min(), abs_tol=1e-9):
        return f"{series.mean():.3f}"
    return f"{series.mean():.3f} ± {series.std():.3f}"


def _interval(value: float, low: float, high: float, signed: bool = False) -> str:
    if math.isnan(value):
        return "–"
    fmt = "{:+.3f}" if signed else "{:.3f}"
    return f"{fmt.format(value)} [{low:.3f}, {high:.3f}]"


def _key(model: str, subset: str, metric: str) -> str:
    return f"{model}.{subset}.routed.{metric}"


def _delta_key(other: str, subset: str, metric: str) -> str:
    suffix = "" if other == REFERENCE else f"_vs_{other}"
    return f"mind.{subset}.routed.delta_{metric}{suffix}"


def task_metrics(seeds: SeedRuns) -> list[str]:
    """AUROC / AUPRC, and the class metrics where the task's runs logged them (multiclass)."""
    logged = [
        m
        for m in CLASS_METRICS
        if not all(math.isnan(v) for v in seeds.metric(_key("mind", "full", m)))
    ]
    return [*METRICS, *logged]


def summary_table(results: Sequence[SeedRuns]) -> str:
    models = [*MODELS, *FIXED]
    lines = [
        "| task | metric | test set | " + " | ".join(LABELS[m] for m in models) + " |",
        "|---|---|---|" + "---|" * len(models),
    ]
    for seeds in results:
        for metric in task_metrics(seeds):
            for subset in SUBSETS:
                cells = []
                for model in models:
                    values = seeds.metric(_key(model, subset, metric))
                    cells.append(_mean_sd(values))
                best = _best_trained(seeds, subset, metric)
                cells = [f"**{c}**" if m == best else c for m, c in zip(models, cells, strict=True)]
                lines.append(
                    f"| {seeds.task} | {METRIC_NAMES[metric]} | {subset} | "
                    + " | ".join(cells)
                    + " |"
                )
    return "\n".join(lines)


def _best_trained(seeds: SeedRuns, subset: str, metric: str) -> str:
    means = {m: pd.Series(seeds.metric(_key(m, subset, metric))).mean() for m in MODELS}
    return max(means, key=lambda m: -math.inf if math.isnan(means[m]) else means[m])


@dataclass(frozen=True)
class Claim:
    """MIND − ``other`` on one task, test set and metric, over the seeds."""

    task: str
    subset: str
    metric: str
    other: str
    differences: tuple[float, ...]
    lows: tuple[float, ...]
    highs: tuple[float, ...]

    @property
    def n(self) -> int:
        return len(self.differences)

    @property
    def ahead(self) -> int:
        return sum(d > 0 for d in self.differences)

    @property
    def above(self) -> int:
        return sum(low > 0 for low in self.lows)

    @property
    def below(self) -> int:
        return sum(high < 0 for high in self.highs)

    def verdict(self) -> str:
        """The claim the intervals allow, in words (the first rule that holds)."""
        n, above, below = self.n, self.above, self.below
        rules = (
            (above == n, "MIND better: every seed's interval above 0"),
            (below == n, "MIND worse: every seed's interval below 0"),
            (above > n / 2 and below == 0, "MIND better in most seeds"),
            (below > n / 2 and above == 0, "MIND worse in most seeds"),
            (above == 0 and below == 0, "no difference shown: every interval includes 0"),
            (below == 0, "MIND ahead where shown, but most intervals include 0"),
            (above == 0, "MIND behind where shown, but most intervals include 0"),
        )
        return next((text for holds, text in rules if holds), "mixed: intervals on both sides of 0")


def claims(seeds: SeedRuns) -> list[Claim]:
    out = []
    for subset in SUBSETS:
        for metric in task_metrics(seeds):
            for other in (*MODELS[1:], "teachers"):
                key = _delta_key(other, subset, metric)
                differences = seeds.metric(key)
                if all(math.isnan(d) for d in differences):
                    continue
                out.append(
                    Claim(
                        seeds.task,
                        subset,
                        metric,
                        other,
                        tuple(differences),
                        tuple(seeds.metric(f"{key}_low")),
                        tuple(seeds.metric(f"{key}_high")),
                    )
                )
    return out


def claims_table(
    results: Sequence[SeedRuns], metrics: Sequence[str] = (*METRICS, *CLASS_METRICS)
) -> str:
    lines = [
        "| task | test set | metric | MIND − | mean ± sd over seeds | MIND ahead | "
        "interval > 0 | interval < 0 | reading |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for seeds in results:
        for claim in (c for c in claims(seeds) if c.metric in metrics):
            series = pd.Series(claim.differences)
            spread = f"{series.mean():+.3f} ± {series.std():.3f}" if claim.n > 1 else "–"
            lines.append(
                f"| {claim.task} | {claim.subset} | {METRIC_NAMES[claim.metric]} | "
                f"{LABELS[claim.other]} | {spread} | {claim.ahead}/{claim.n} | "
                f"{claim.above}/{claim.n} | {claim.below}/{claim.n} | {claim.verdict()} |"
            )
    return "\n".join(lines)


def seeds_table(seeds: SeedRuns) -> str:
    lines = [
        "| model | test set | seed | AUROC [95 % CI] | AUPRC [95 % CI] | "
        "ΔAUROC MIND − model [95 % CI] |",
        "|---|---|---|---|---|---|",
    ]
    for model in MODELS:
        for subset in SUBSETS:
            for i, seed in enumerate(seeds.seeds):
                cells = []
                for metric in METRICS:
                    key = _key(model, subset, metric)
                    value, low, high = (
                        seeds.metric(key)[i],
                        seeds.metric(f"{key}_low")[i],
                        seeds.metric(f"{key}_high")[i],
                    )
                    cells.append(_interval(value, low, high))
                if model == "mind":
                    delta = "–"
                else:
                    key = _delta_key(model, subset, "auroc")
                    delta = _interval(
                        seeds.metric(key)[i],
                        seeds.metric(f"{key}_low")[i],
                        seeds.metric(f"{key}_high")[i],
                        signed=True,
                    )
                lines.append(f"| {model} | {subset} | {seed} | {cells[0]} | {cells[1]} | {delta} |")
    return "\n".join(lines)


def provenance(results: Sequence[SeedRuns]) -> str:
    lines = [
        "| task | seed | run | commit | dirty | logit cache | command |",
        "|---|---|---|---|---|---|---|",
    ]
    for seeds in results:
        for seed, run in zip(seeds.seeds, seeds.runs, strict=True):
            tags = run.data.tags
            command = tags.get("kedro_command", "").replace("|", "\\|")
            lines.append(
                f"| {seeds.task} | {seed} | {run.info.run_id[:8]} | "
                f"{tags.get(TAG_GIT_COMMIT, '?')[:7]} | {tags.get(TAG_GIT_DIRTY, '?')} | "
                f"{tags.get(TAG_LOGIT_CACHE, '?')} | `{command}` |"
            )
    return "\n".join(lines)


def cost_line(results: Sequence[SeedRuns]) -> str:
    parts = []
    for seeds in results:
        mind = pd.Series(seeds.metric("mind.parameters")).median()
        teachers = pd.Series(seeds.metric("teachers.parameters")).median()
        medfuse = pd.Series(seeds.metric("medfuse.parameters")).median()
        p50 = pd.Series(seeds.metric("mind.latency_p50_ms")).median()
        p95 = pd.Series(seeds.metric("mind.latency_p95_ms")).median()
        parts.append(
            f"{seeds.task}: student {mind / 1e6:.2f} M parameters, {mind / teachers:.1%} of the "
            f"teacher ensembles' {teachers / 1e6:.2f} M; MedFuse {medfuse / 1e6:.2f} M; student "
            f"CPU latency per stay (batch 1, one thread; median over seeds) p50 {p50:.1f} ms, "
            f"p95 {p95:.1f} ms"
        )
    return "\n".join(f"- {p}" for p in parts)


def tuning_table(
    client: mlflow.MlflowClient, base_experiment: str, tasks: Iterable[str]
) -> str | None:
    """Per task and method, the newest tuning study from its trial runs (``mindkd.tracking.trials``):
    trials, their states, the best and median val score and the best trial's values; None when
    the store holds no study of any of ``tasks``."""
    from mindkd.tracking.trials import TAG_PARENT, TAG_STATE, TAG_STUDY

    lines = [
        "| task | method | trials | complete | pruned | best val score | median (complete) | "
        "best trial's values |",
        "|---|---|---|---|---|---|---|---|",
    ]
    studies = 0
    for task in tasks:
        experiment = _experiment_id(client, base_experiment, task)
        if experiment is None:
            continue
        newest = client.search_runs(
            [experiment],
            filter_string=f"tags.`{TAG_STUDY}` LIKE '{task}.tune.%'",
            order_by=["attributes.start_time DESC"],
            max_results=1,
        )
        if not newest:
            lines.append(f"| {task} | – | no tuning study in the store | | | | | |")
            continue
        studies += 1
        parent = newest[0].data.tags[TAG_PARENT]
        trials = client.search_runs(
            [experiment],
            filter_string=f"tags.`{TAG_PARENT}` = '{parent}'",
            max_results=5000,
        )
        by_method: dict[str, list[Run]] = {}
        for trial in trials:
            by_method.setdefault(trial.data.tags[TAG_STUDY].rsplit(".", 1)[-1], []).append(trial)
        for method in MODELS:
            runs = by_method.get(method, [])
            complete = [r for r in runs if r.data.tags.get(TAG_STATE) == "complete"]
            pruned = sum(r.data.tags.get(TAG_STATE) == "pruned" for r in runs)
            if not complete:
                continue
            scores = pd.Series([r.data.metrics["tune/score"] for r in complete])
            best = complete[int(scores.idxmax())]
            values = ", ".join(
                f"{key.rsplit('.', 1)[-1] if key.startswith('baselines.') else key}={_short(v)}"
                for key, v in sorted(best.data.params.items())
            )
            lines.append(
                f"| {task} | {LABELS[method]} | {len(runs)} | {len(complete)} | {pruned} | "
                f"{scores.max():.3f} | {scores.median():.3f} | {values} |"
            )
    return "\n".join(lines) if studies else None


def _short(value: str) -> str:
    try:
        number = float(value)
    except ValueError:
        return value
    return f"{number:.3g}"


# ------------------------------------------------------------------------------ modality focus
MFH_PAIRS = (  # (teacher, head, the model whose head distils from that teacher, its test subset)
    ("ehr", "ehr", "mind", "full"),
    ("cxr", "cxr", "mind", "paired"),
    ("fused", "fused", "mind", "paired"),
    ("ehr", "cxr", "mckd", "paired"),
    ("cxr", "ehr", "mckd", "full"),
    ("fused", "ehr", None, None),
    ("fused", "cxr", None, None),
)


def _threshold(seeds: SeedRuns, name: str, default: float) -> float:
    value = seeds.runs[0].data.params.get(f"{seeds.task}.distill.mfh.{name}")
    return default if value is None else float(value)


def _mfh_verdict(gamma: float, helps: float, fails: float) -> str:
    if math.isnan(gamma):
        return "–"
    return "helps" if gamma >= helps else "no help" if gamma < fails else "partial"


def mfh_table(results: Sequence[SeedRuns]) -> str:
    """Per task and (teacher, head) pair: γ̂ over seeds, its verdict, the generator's true γ where
    the runs logged it, and the measured AUROC gain of the head that distils from that teacher."""
    lines = [
        "| task | teacher → head | distilled by | γ̂ (mean ± sd) | verdict | true γ (demo) | "
        "verdict from true γ | measured gain ΔAUROC vs no-KD (mean ± sd) | interval > 0 | "
        "interval < 0 |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for seeds in results:
        helps = _threshold(seeds, "helps_above", 0.5)
        fails = _threshold(seeds, "fails_below", 0.2)
        for teacher, head, model, subset in MFH_PAIRS:
            name = f"mfh.{teacher}_to_{head}"
            gammas = pd.Series(seeds.metric(f"{name}.gamma"), dtype=float)
            if gammas.isna().all():
                continue
            truth = pd.Series(seeds.metric(f"{name}.gamma_true"), dtype=float)
            true_cell = "–" if truth.isna().all() else f"{truth.mean():.2f}"
            gain = above = below = "–"
            if model is not None:
                key = f"{model}.{subset}.{head}.delta_auroc"
                values = pd.Series(seeds.metric(key), dtype=float)
                lows, highs = seeds.metric(f"{key}_low"), seeds.metric(f"{key}_high")
                if not values.isna().all():
                    spread = f" ± {values.std():.3f}" if len(values) > 1 else ""
                    gain = f"{values.mean():+.3f}{spread} ({subset})"
                    above = f"{sum(v > 0 for v in lows)}/{len(lows)}"
                    below = f"{sum(v < 0 for v in highs)}/{len(highs)}"
            label = {"mind": "MIND", "mckd": "MCKD"}.get(model or "", "–")
            lines.append(
                f"| {seeds.task} | {teacher} → {head} | {label} | {_mean_sd(gammas.tolist())} | "
                f"{_mfh_verdict(gammas.mean(), helps, fails)} | {true_cell} | "
                f"{_mfh_verdict(truth.mean(), helps, fails) if true_cell != '–' else '–'} | "
                f"{gain} | {above} | {below} |"
            )
    return "\n".join(lines)


def blocks(results: Sequence[SeedRuns]) -> dict[str, str]:
    """The markdown of every block, by name."""
    seeds = "\n\n".join(f"#### {s.task}\n\n{seeds_table(s)}" for s in results)
    counts = ", ".join(f"{s.task}: seeds {', '.join(map(str, s.seeds))}" for s in results)
    summary = (
        f"Mean ± sd over the student seeds ({counts}); routed prediction; "
        "the best trained model of each row in bold.\n\n"
        + summary_table(results)
        + "\n\n"
        + cost_line(results)
    )
    return {
        "summary": summary,
        "claims": claims_table(results),
        "headline": claims_table(results, ("auroc",)),
        "seeds": seeds,
        "mfh": mfh_table(results),
        "provenance": provenance(results),
    }


def write_blocks(path: Path, texts: Mapping[str, str]) -> list[str]:
    """Replace each ``<!-- results:<name> begin -->`` … ``end -->`` block of ``path`` that
    ``texts`` has; returns the names replaced. A file with none of the markers is an error."""
    content = path.read_text()
    replaced = []
    for name, text in texts.items():
        pattern = re.compile(
            rf"(<!-- results:{name} begin -->\n)(?:.*?\n)?(<!-- results:{name} end -->)", re.DOTALL
        )
        content, count = pattern.subn(
            lambda m, t=text: m.group(1) + t.rstrip("\n") + "\n" + m.group(2), content
        )
        if count:
            replaced.append(name)
    if not replaced:
        raise ResultsError(f"{path}: no <!-- results:<block> begin --> marker to fill")
    path.write_text(content)
    return replaced


BLOCKS = ("tuning", "summary", "claims", "headline", "seeds", "mfh", "provenance")


def collect(
    uri: str,
    base_experiment: str,
    tasks: Iterable[str],
    min_seeds: int,
    only: Sequence[str] | None = None,
) -> dict[str, str]:
    """The blocks ``only`` names (default every one of ``BLOCKS``) from the store at ``uri``.

    ``tuning`` alone needs no seed runs: the study may live in another store than the seeds. A
    store without a study leaves the tuning block out (and the page's block as it was), unless it
    was asked for by name, which is an error."""
    client = mlflow.MlflowClient(tracking_uri=uri)
    tasks = list(tasks)
    wanted = list(only or BLOCKS)
    unknown = sorted(set(wanted) - set(BLOCKS))
    if unknown:
        raise ResultsError(f"unknown block(s) {unknown}; blocks: {', '.join(BLOCKS)}")
    texts: dict[str, str] = {}
    if "tuning" in wanted:
        table = tuning_table(client, base_experiment, tasks)
        if table is not None:
            texts["tuning"] = table
        elif only:
            raise ResultsError(f"no tuning study of {', '.join(tasks)} in {uri}")
    if set(wanted) - {"tuning"}:
        found = [select_seed_runs(client, base_experiment, task, min_seeds) for task in tasks]
        texts |= blocks(found)
    return {name: texts[name] for name in wanted if name in texts}
