"""``kedro run --pipelines tune`` through a real KedroSession on the tiny models' data.

Two trials per method on the ihm namespace: every method gets its study, every trial is a finished
MLflow child run of the task's run, the YAML of the best values is a valid config that names the
best trial's values, and no node of the stage reads the test split.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import mlflow
import pandas as pd
import pytest
import torch
import yaml

from kedro_harness import PROJECT_ROOT, ProjectRun, make_project_run
from mindkd.pipelines.distill.params import DistillParams
from mindkd.pipelines.tune import create_pipeline
from mindkd.tasks import TASKS
from mindkd.tracking.trials import TAG_PARENT
from mindkd.training.tuning import with_values
from tiny_models import tiny_model_params

METHODS = ("mind", "no_kd", "zero_filled", "medfuse")


def test_no_node_of_the_tune_stage_reads_the_test_split() -> None:
    """The studies take train and val samples only (the whole-sample table, which holds the test
    rows, stays inside the distill nodes that make the splits)."""
    pipeline = create_pipeline()
    studies = [n for n in pipeline.nodes if n.namespace and n.namespace.endswith(".tune")]
    assert len(studies) == len(TASKS) * (len(METHODS) + 1)
    for node in studies:
        for name in node.inputs:
            assert "test" not in name and not name.endswith("distill.samples"), (node.name, name)


def test_tune_is_not_part_of_the_default_run() -> None:
    from kedro.framework.project import pipelines
    from kedro.framework.startup import bootstrap_project

    bootstrap_project(PROJECT_ROOT)
    default = {n.name for n in pipelines["__default__"].nodes}
    assert not any(".tune." in name for name in default)
    assert {n.name for n in pipelines["tune"].nodes} - default  # and it is registered


@pytest.fixture(scope="module")
def tune_run(model_run: ProjectRun, tmp_path_factory: pytest.TempPathFactory) -> ProjectRun:
    """The tune stage of ihm, two trials per method, on a copy of model_run's data and cache."""
    tmp = tmp_path_factory.mktemp("tune_project")
    shutil.copytree(model_run.data_root, tmp / "data")
    raw = yaml.safe_load((model_run.conf / "local" / "globals.yml").read_text())
    project = make_project_run(
        tmp, Path(raw["mimic_iv_dir"]), Path(raw["mimic_cxr_jpg_dir"]), data_root=tmp / "data"
    )
    params = tiny_model_params()
    params["ihm"]["tune"] = {"trials": 2}
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with project.session(params) as session:
            session.run(pipeline_names=["tune"], namespaces=["ihm"])
    finally:
        torch.set_num_threads(threads)
    return project


def _latest(catalog: Any, name: str) -> Any:
    return catalog.load(name)


def test_every_method_gets_its_study_and_every_trial_a_child_run(tune_run: ProjectRun) -> None:
    catalog = tune_run.catalog()
    client = mlflow.MlflowClient(tune_run.tracking_uri)
    (experiment,) = [e for e in client.search_experiments() if e.name.endswith("-ihm")]
    (parent,) = client.search_runs(
        [experiment.experiment_id], filter_string="attributes.run_name = 'tune ihm'"
    )
    assert parent.info.status == "FINISHED"
    children = client.search_runs(
        [experiment.experiment_id], filter_string=f"tags.`{TAG_PARENT}` = '{parent.info.run_id}'"
    )
    assert len(children) == 2 * len(METHODS)
    assert {c.info.status for c in children} == {"FINISHED"}
    for method in METHODS:
        trials = _latest(catalog, f"ihm.tune.{method}.trials")
        assert len(trials) == 2
        assert set(trials["state"]) <= {"complete", "pruned"}
        assert parent.data.metrics[f"ihm.tune.{method}.trials"] == 2
    # nothing of the test split reaches the runs: only val scores and the searched values
    for child in children:
        assert not any("test" in key for key in child.data.metrics)


def test_the_tuned_yaml_is_a_valid_config_holding_each_best_trial(tune_run: ProjectRun) -> None:
    catalog = tune_run.catalog()
    text = _latest(catalog, "ihm.tune.tuned_parameters")
    tuned = yaml.safe_load(text)["ihm"]["distill"]
    with tune_run.session(tiny_model_params()) as session:
        distill = session.load_context().params["ihm"]["distill"]
    merged = DistillParams.model_validate(_merge(distill, tuned))
    for method in METHODS:
        trials: pd.DataFrame = _latest(catalog, f"ihm.tune.{method}.trials")
        complete = trials[trials["state"].eq("complete")]
        best = complete.loc[complete["score"].idxmax()]
        keys = [c for c in trials.columns if "." in c or c in DistillParams.model_fields]
        expected = with_values(merged.model_dump(), {k: best[k] for k in keys})
        assert expected == merged.model_dump(), method
    report = _latest(catalog, "ihm.tune.report")
    assert "test never read" in report
    for method in METHODS:
        assert f"| {method} |" in report


def _merge(base: dict[str, Any], update: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in update.items():
        out[key] = _merge(out.get(key) or {}, value) if isinstance(value, dict) else value
    return out


def test_the_results_page_reads_the_study_from_its_trial_runs(tune_run: ProjectRun) -> None:
    from mindkd.tracking import results

    client = mlflow.MlflowClient(tune_run.tracking_uri)
    table = results.tuning_table(client, "mindkd", ["ihm"])
    assert table is not None
    for method in METHODS:
        assert f"| ihm | {results.LABELS[method]} | 2 |" in table
    assert results.tuning_table(client, "mindkd", ["pheno"]) is None  # pheno was not tuned
