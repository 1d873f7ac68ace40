"""MLflow run organisation through real KedroSessions: one experiment per task, chain runs, tags.

``model_run`` (teachers + distill, both tasks) is one multi-task chain; a pairing run on one task
namespace shows the single-run case; a pairing run on missing data shows the failure path.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import mlflow
import pandas as pd
import pytest
import yaml
from kedro.io import DatasetError

from kedro_harness import ProjectRun, make_project_run
from mindkd.tasks import TASKS
from mindkd.tracking.compare import compare_runs, diff_runs
from mindkd.tracking.provenance import data_fingerprint

pytestmark = pytest.mark.slow


def _runs(experiment: str) -> pd.DataFrame:
    return mlflow.search_runs(experiment_names=[experiment], search_all_experiments=False)


@pytest.fixture(scope="module")
def model_runs(model_run: ProjectRun) -> dict[str, pd.Series]:
    mlflow.set_tracking_uri(model_run.tracking_uri)
    found = {"chain": _runs("mindkd")}
    found |= {task: _runs(f"mindkd-{task}") for task in TASKS}
    assert {name: len(runs) for name, runs in found.items()} == {"chain": 1} | dict.fromkeys(
        TASKS, 1
    )
    return {name: runs.iloc[0] for name, runs in found.items()}


def _prefixed(run: pd.Series, kind: str) -> set[str]:
    return {c[len(kind) + 1 :] for c in run.index if c.startswith(f"{kind}.") and pd.notna(run[c])}


def test_a_multi_task_chain_has_a_chain_run_and_a_run_per_task_experiment(
    model_run: ProjectRun, model_runs
) -> None:
    chain = model_runs["chain"]
    assert chain["tags.mlflow.runName"] == "chain (teachers+distill)"
    # the one shared node of teachers + distill is the CheXpert pre-training: its settings, and
    # nothing of a task, land in the chain run
    assert {p.split(".")[0] for p in _prefixed(chain, "params")} == {"cxr_pretrain"}
    assert "cxr_pretrain.fit.epochs" in _prefixed(chain, "params")
    assert not _prefixed(chain, "metrics")
    for task in TASKS:
        run = model_runs[task]
        assert run["status"] == "FINISHED" and chain["status"] == "FINISHED"
        alpha = float(run[f"params.{task}.distill.alpha"])  # the config's (tuned) value
        assert (
            run["tags.mlflow.runName"] == f"teachers+distill {task} · concat · α={alpha:g} · seed 0"
        )
        params, metrics = _prefixed(run, "params"), _prefixed(run, "metrics")
        assert all(p.startswith(f"{task}.") for p in params)
        assert all(m.startswith(f"{task}.") for m in metrics)
        assert {f"{task}.distill.alpha", f"{task}.teachers.ehr.fit.epochs"} <= params
        assert run[f"params.{task}.distill.fit.epochs"] == "1"
        assert {
            f"{task}.distill.mind.paired.routed.auroc",
            f"{task}.distill.mind.full.routed.auprc_low",
            f"{task}.teachers.ehr_ensemble.test.auroc",
        } <= metrics
        assert run["tags.mindkd.task"] == task
        assert run["tags.mindkd.chain_run_id"] == chain["run_id"]
        assert chain[f"tags.mindkd.task_run.{task}"] == run["run_id"]
        assert run["tags.mindkd.session_id"] == chain["tags.mindkd.session_id"]
        assert str(model_run.conf.parent / "mlruns") in run["artifact_uri"]  # mlflow.yml's root


def test_every_run_carries_the_provenance_tags(model_run: ProjectRun, model_runs) -> None:
    raw = yaml.safe_load((model_run.conf / "local" / "globals.yml").read_text())
    fingerprint, files = data_fingerprint(
        {key: Path(raw[key]) for key in ("mimic_iv_dir", "mimic_cxr_jpg_dir")}
    )
    for run in model_runs.values():
        assert re.fullmatch(r"[0-9a-f]{40}", run["tags.mindkd.git_commit"])
        assert run["tags.mindkd.git_dirty"] in ("true", "false")
        assert run["tags.mindkd.data_fingerprint"] == fingerprint
        assert run["tags.mindkd.data_files"] == str(files)
        assert run["tags.mindkd.version.mindkd"] == "0.1.0"
        assert run["tags.mindkd.version.torch"].startswith("2.13")
        for package in ("kedro", "mlflow", "kedro-mlflow", "python"):
            assert run[f"tags.mindkd.version.{package}"]
        command = run["tags.kedro_command"]
        assert command.startswith("kedro run --pipelines=teachers,distill --params=")
        assert (
            "ihm.distill.fit.epochs=1" in command and "pheno.teachers.ehr.fit.epochs=1" in command
        )


def test_distill_runs_name_the_logit_cache_they_read(model_run: ProjectRun, model_runs) -> None:
    for task in TASKS:
        folder = model_run.data_root / "07_model_output" / task / "teacher_logits"
        (version,) = [p.name for p in folder.iterdir()]  # written once, by this session
        run = model_runs[task]
        assert run["tags.mindkd.logit_cache_version"] == version
        assert run["tags.mindkd.logit_cache_written"] == version
    assert "tags.mindkd.logit_cache_version" not in model_runs["chain"].index or pd.isna(
        model_runs["chain"]["tags.mindkd.logit_cache_version"]
    )


def test_no_patient_identifier_reaches_mlflow(model_run: ProjectRun, model_runs) -> None:
    root = model_run.data_root
    ids: set[str] = set()
    for task in TASKS:
        cohort = pd.read_parquet(root / f"03_primary/{task}/cohort.parquet")
        for column in ("subject_id", "hadm_id", "stay_id"):
            ids |= {str(int(v)) for v in cohort[column].dropna()}
    for run in model_runs.values():
        text = " ".join(f"{k} {v}" for k, v in run.items() if pd.notna(v))
        tokens = set(re.findall(r"[0-9]+", text))
        assert not tokens & ids
        assert not any(w in text for w in ("subject_id", "stay_id", "hadm_id", "dicom_id"))


def test_compare_and_diff_read_the_chain(model_run: ProjectRun, model_runs) -> None:
    table = compare_runs(model_run.tracking_uri, models=["mind", "no_kd"])
    assert sorted(table["task"]) == sorted(TASKS)
    ihm = table.set_index("task").loc["ihm"]
    run = model_runs["ihm"]
    assert ihm["run_id"] == run["run_id"]
    recorded = (
        float(run["params.ihm.distill.alpha"]),
        float(run["params.ihm.distill.temperature"]),
    )
    assert (ihm["alpha"], ihm["temperature"], ihm["fusion"], ihm["seed"]) == (
        *recorded,
        "concat",
        0,
    )
    for column in ("mind.paired.routed.auroc", "no_kd.full.routed.auprc_high"):
        assert ihm[column] == pytest.approx(run[f"metrics.ihm.distill.{column}"])
    assert ihm["logit_cache"] == run["tags.mindkd.logit_cache_version"]
    diff = diff_runs(model_run.tracking_uri, run["run_id"], model_runs["pheno"]["run_id"])
    row = diff.set_index("name").loc["ihm.distill.alpha"]
    assert row["a"] == run["params.ihm.distill.alpha"] and pd.isna(row["b"])
    # both caches were written by this session: one version (its timestamp), no difference
    assert "mindkd.logit_cache_version" not in set(diff["name"])
    assert {"pheno.distill.alpha", "ihm.teachers.ehr.fit.epochs"} <= set(diff["name"])


def _project(tmp: Path, data_run: ProjectRun, data: Path | None) -> ProjectRun:
    raw = yaml.safe_load((data_run.conf / "local" / "globals.yml").read_text())
    return make_project_run(
        tmp, Path(raw["mimic_iv_dir"]), Path(raw["mimic_cxr_jpg_dir"]), data_root=data
    )


def test_one_task_namespace_makes_one_run_in_its_experiment(
    data_run: ProjectRun, tmp_path: Path
) -> None:
    shutil.copytree(data_run.data_root, tmp_path / "data")
    project = _project(tmp_path, data_run, tmp_path / "data")
    with project.session() as session:
        session.run(pipeline_names=["pairing"], namespaces=["ihm"])
    assert mlflow.active_run() is None
    mlflow.set_tracking_uri(project.tracking_uri)
    (run,) = [r for _, r in _runs("mindkd-ihm").iterrows()]
    assert run["status"] == "FINISHED" and run["tags.mlflow.runName"] == "pairing ihm"
    assert run["tags.mindkd.task"] == "ihm" and "tags.mindkd.chain_run_id" not in run.index
    assert run["params.ihm.task.name"] == "ihm"
    assert _runs("mindkd").empty
    assert mlflow.get_experiment_by_name("mindkd-pheno") is None
    assert "--pipelines=pairing --namespaces=ihm" in run["tags.kedro_command"]


def test_a_failed_chain_marks_every_run_failed(data_run: ProjectRun, tmp_path: Path) -> None:
    project = _project(tmp_path, data_run, None)  # an empty data root: the first load fails
    with pytest.raises(DatasetError, match="cohort"):
        project.run(["pairing"])
    assert mlflow.active_run() is None
    mlflow.set_tracking_uri(project.tracking_uri)
    runs = pd.concat([_runs(e) for e in ("mindkd", *(f"mindkd-{t}" for t in TASKS))])
    assert len(runs) == 1 + len(TASKS)
    assert set(runs["status"]) == {"FAILED"}


def test_another_runner_keeps_one_run_for_several_tasks(
    data_run: ProjectRun, tmp_path: Path
) -> None:
    from kedro.runner import ThreadRunner

    shutil.copytree(data_run.data_root, tmp_path / "data")
    project = _project(tmp_path, data_run, tmp_path / "data")
    with project.session() as session:
        session.run(pipeline_names=["pairing"], runner=ThreadRunner(max_workers=1))
    while mlflow.active_run() is not None:  # kedro-mlflow's own threads may leave one open
        mlflow.end_run()
    mlflow.set_tracking_uri(project.tracking_uri)
    (run,) = [r for _, r in _runs("mindkd").iterrows()]
    assert run["status"] == "FINISHED" and run["tags.mlflow.runName"] == "chain (pairing)"
    assert run["params.ihm.task.name"] == "ihm" and run["params.pheno.task.name"] == "pheno"
    assert "--runner=ThreadRunner" in run["tags.kedro_command"]
    assert mlflow.get_experiment_by_name("mindkd-ihm") is None
