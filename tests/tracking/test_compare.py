"""Comparing distill runs and diffing two runs, on a tmp sqlite store of synthetic runs."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
import pytest
from mlflow import MlflowClient
from mlflow.entities import Metric, Param, RunTag

from mindkd.tracking.__main__ import main
from mindkd.tracking.compare import (
    CompareError,
    compare_runs,
    diff_runs,
    format_comparison,
    format_diff,
)
from mindkd.tracking.store import absolute_uri, project_store

PROJECT_ROOT = Path(__file__).resolve().parents[2]


def _scores(task: str, model: str, paired: float, full: float) -> dict[str, float]:
    """AUROC / AUPRC with intervals as the distill pipeline logs them (`<task>.distill.` prefix)."""
    values = {}
    for subset, auroc in (("paired", paired), ("full", full)):
        for metric, value in (("auroc", auroc), ("auprc", auroc - 0.4)):
            name = f"{task}.distill.{model}.{subset}.routed.{metric}"
            values |= {name: value, f"{name}_low": value - 0.05, f"{name}_high": value + 0.05}
    return values


def _run(
    client: MlflowClient,
    experiment: str,
    name: str,
    start: int,
    *,
    params: dict[str, str],
    metrics: dict[str, float],
    tags: dict[str, str] | None = None,
    status: str = "FINISHED",
) -> str:
    run = client.create_run(experiment, start_time=start, run_name=name)
    run_id = run.info.run_id
    client.log_batch(
        run_id,
        metrics=[Metric(k, v, start, 0) for k, v in metrics.items()],
        params=[Param(k, v) for k, v in params.items()],
        tags=[RunTag(k, v) for k, v in (tags or {}).items()],
    )
    client.set_terminated(run_id, status, end_time=start + 1)
    return run_id


def _distill_params(task: str, alpha: str, seed: str = "0", fusion: str = "concat") -> dict:
    prefix = f"{task}.distill."
    return {
        f"{prefix}alpha": alpha,
        f"{prefix}temperature": "2.0",
        f"{prefix}distance": "bce",
        f"{prefix}student.fusion": fusion,
        f"{prefix}data": "partial",
        f"{prefix}fit.seed": seed,
        f"{task}.task.name": task,
    }


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, dict[str, str]]:
    """ihm: three finished distill runs (one older), a failed one, a teachers-only one; pheno: one.

    Module-scoped (creating a sqlite store costs seconds); the tests only read it.
    """
    tmp_path = tmp_path_factory.mktemp("store")
    uri = f"sqlite:///{tmp_path / 'store.db'}"
    client = MlflowClient(uri)
    ihm = client.create_experiment("mindkd-ihm", artifact_location=str(tmp_path / "art"))
    pheno = client.create_experiment("mindkd-pheno", artifact_location=str(tmp_path / "art"))
    base = client.create_experiment("mindkd", artifact_location=str(tmp_path / "art"))
    cache = {"mindkd.logit_cache_version": "2026-11-01T00.00.00.000Z"}
    name = "distill ihm · {} · α={} · seed {}"
    runs = {
        "old": _run(
            client,
            ihm,
            name.format("concat", 0.9, 0),
            1_000,
            params=_distill_params("ihm", "0.9"),
            metrics=_scores("ihm", "mind", 0.70, 0.69),
        ),
        "a": _run(
            client,
            ihm,
            name.format("concat", 0.5, 0),
            2_000,
            params=_distill_params("ihm", "0.5"),
            metrics=_scores("ihm", "mind", 0.80, 0.78) | _scores("ihm", "no_kd", 0.60, 0.61),
            tags={**cache, "mindkd.git_commit": "a" * 40},
        ),
        "b": _run(
            client,
            ihm,
            name.format("gated", 0.3, 1),
            3_000,
            params=_distill_params("ihm", "0.3", seed="1", fusion="gated"),
            metrics=_scores("ihm", "mind", 0.75, 0.80),
            tags={**cache, "mindkd.git_commit": "b" * 40},
        ),
        "failed": _run(
            client,
            ihm,
            "distill ihm (failed)",
            4_000,
            params=_distill_params("ihm", "0.5"),
            metrics=_scores("ihm", "mind", 0.99, 0.99),
            status="FAILED",
        ),
        "teachers": _run(
            client,
            ihm,
            "teachers ihm",
            5_000,
            params={},
            metrics={"ihm.teachers.ehr_ensemble.val.auroc": 0.7},
        ),
        "legacy": _run(  # before runs were split per task: both tasks in one run of `mindkd`
            client,
            base,
            "__default__",
            500,
            params=_distill_params("ihm", "0.5") | _distill_params("pheno", "0.7"),
            metrics=_scores("ihm", "mind", 0.60, 0.60) | _scores("pheno", "mind", 0.50, 0.50),
        ),
        "chain": _run(
            client, base, "chain (ehr+cxr)", 6_000, params={"ehr.n_buckets": "4"}, metrics={}
        ),
        "pheno": _run(
            client,
            pheno,
            "distill pheno · concat · α=0.5 · seed 0",
            2_500,
            params=_distill_params("pheno", "0.5"),
            metrics=_scores("pheno", "mind", 0.65, 0.66),
        ),
    }
    return uri, runs


def test_compare_lists_finished_distill_runs_sorted_by_paired_auroc(store) -> None:
    uri, runs = store
    table = compare_runs(uri)
    expected = [runs["a"], runs["b"], runs["old"], runs["pheno"], runs["legacy"], runs["legacy"]]
    assert list(table["run_id"]) == expected
    assert list(table["task"])[-2:] == ["ihm", "pheno"]  # the legacy run once per task
    a = table.iloc[0]
    assert (a["task"], a["alpha"], a["temperature"], a["seed"]) == ("ihm", 0.5, 2.0, 0)
    assert (a["distance"], a["fusion"], a["data"]) == ("bce", "concat", "partial")
    assert a["mind.paired.routed.auroc"] == pytest.approx(0.80)
    assert a["mind.paired.routed.auroc_low"] == pytest.approx(0.75)
    assert a["mind.full.routed.auprc_high"] == pytest.approx(0.78 - 0.4 + 0.05)
    assert a["logit_cache"] == "2026-11-01T00.00.00.000Z" and a["git_commit"] == "a" * 8
    assert "no_kd.paired.routed.auroc" not in table.columns


def test_compare_sorts_by_any_score_or_setting_and_limits_to_the_latest(store) -> None:
    uri, runs = store
    by_full = compare_runs(uri, tasks=["ihm"], sort="full.routed.auroc")
    assert list(by_full["run_id"]) == [runs["b"], runs["a"], runs["old"], runs["legacy"]]
    by_alpha = compare_runs(uri, tasks=["ihm"], sort="alpha", ascending=True)
    assert list(by_alpha["alpha"]) == [0.3, 0.5, 0.5, 0.9]
    newest = compare_runs(uri, tasks=["ihm"], sort=None, limit=2)
    assert list(newest["run_id"]) == [runs["b"], runs["a"]]  # the old run is not among the 2 latest
    pheno = compare_runs(uri, tasks=["pheno"])
    assert list(pheno["run_id"]) == [runs["pheno"], runs["legacy"]]
    assert list(pheno["alpha"]) == [0.5, 0.7]
    with pytest.raises(CompareError, match=r"cannot sort by 'paired\.routed\.aurok'"):
        compare_runs(uri, sort="paired.routed.aurok")


def test_compare_with_baselines_and_without_runs(store) -> None:
    uri, runs = store
    table = compare_runs(
        uri, tasks=["ihm"], models=["mind", "no_kd"], sort="no_kd.full.routed.auroc"
    )
    assert table.iloc[0]["run_id"] == runs["a"]
    assert table.iloc[0]["no_kd.full.routed.auroc"] == pytest.approx(0.61)
    assert math.isnan(table.iloc[1]["no_kd.full.routed.auroc"])
    empty = compare_runs(uri, base_experiment="no-such-experiment")
    assert empty.empty and "mind.paired.routed.auroc" in empty.columns
    assert format_comparison(empty) == "No finished distill runs found."


def test_format_comparison_shows_intervals(store) -> None:
    uri, _ = store
    text = format_comparison(compare_runs(uri, tasks=["ihm"]))
    lines = text.splitlines()
    assert lines[0].split() == [
        *("run", "task", "started", "(UTC)", "α", "T", "distance", "fusion", "data", "seed"),
        *("paired", "AUROC", "paired", "AUPRC", "full", "AUROC", "full", "AUPRC", "cache"),
    ]
    assert lines[1].split()[4:10] == ["0.5", "2", "bce", "concat", "partial", "0"]
    assert "0.800 [0.750, 0.850]" in lines[1] and "0.380 [0.330, 0.430]" in lines[1]
    assert len(lines) == 5  # header, 3 ihm runs, the legacy run


def test_diff_lists_differing_params_and_provenance_tags(store) -> None:
    uri, runs = store
    diff = diff_runs(uri, runs["a"], runs["b"])
    expected = pd.DataFrame(
        [
            ("param", "ihm.distill.alpha", "0.5", "0.3"),
            ("param", "ihm.distill.fit.seed", "0", "1"),
            ("param", "ihm.distill.student.fusion", "concat", "gated"),
            ("tag", "mindkd.git_commit", "a" * 40, "b" * 40),
        ],
        columns=["kind", "name", "a", "b"],
    )
    pd.testing.assert_frame_equal(diff, expected)
    across = diff_runs(uri, runs["a"][:8], runs["pheno"])  # a unique prefix is enough
    assert {"ihm.distill.alpha", "pheno.distill.alpha"} <= set(across["name"])
    row = across.set_index("name").loc["ihm.distill.alpha"]
    assert row["a"] == "0.5" and pd.isna(row["b"])
    assert "—" in format_diff(across, runs["a"], runs["pheno"])
    same = diff_runs(uri, runs["a"], runs["a"])
    assert format_diff(same, runs["a"], runs["a"]).startswith("Runs ")


def test_diff_of_an_unknown_run_says_so(store) -> None:
    uri, runs = store
    with pytest.raises(CompareError, match="no run with an id starting 'zzzz'"):
        diff_runs(uri, "zzzz", runs["a"])
    with pytest.raises(CompareError, match=r"no run 'f{32}'"):
        diff_runs(uri, "f" * 32, runs["a"])


def test_cli_compare_and_diff(store, capsys: pytest.CaptureFixture[str]) -> None:
    uri, runs = store
    assert main(["--tracking-uri", uri, "compare", "--task", "ihm", "--limit", "2"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 3 and runs["a"][:8] in out[1] and runs["b"][:8] in out[2]
    assert main(["--tracking-uri", uri, "compare", "--models", "mind,no_kd"]) == 0
    assert "no_kd paired AUROC" in capsys.readouterr().out
    assert main(["--tracking-uri", uri, "diff", runs["a"], runs["b"]]) == 0
    assert "ihm.distill.student.fusion" in capsys.readouterr().out
    assert main(["--tracking-uri", uri, "compare", "--sort", "nope"]) == 2
    assert main(["--tracking-uri", uri, "register", "--task", "ihm"]) == 2  # no logged student


def test_default_store_comes_from_the_project_conf(tmp_path: Path) -> None:
    store = project_store(PROJECT_ROOT, env="base")
    assert store.uri == f"sqlite:///{PROJECT_ROOT / 'mlflow.db'}"
    assert store.experiment == "mindkd"
    assert absolute_uri("sqlite:///x/m.db", tmp_path) == f"sqlite:///{tmp_path / 'x/m.db'}"
    assert absolute_uri(f"sqlite:///{tmp_path}/m.db", Path("/else")) == f"sqlite:///{tmp_path}/m.db"
    assert absolute_uri("http://127.0.0.1:5000", tmp_path) == "http://127.0.0.1:5000"


def test_the_tracking_commands_know_every_task_namespace() -> None:
    from mindkd.tasks import AVDIGITS, TASKS
    from mindkd.tracking.compare import TASKS as TRACKED

    assert TRACKED == (*TASKS, AVDIGITS)
