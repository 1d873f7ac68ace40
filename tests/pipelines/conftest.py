"""Session fixtures: one small demo export, and the data stages run once on it through Kedro."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from kedro_harness import ProjectRun, make_project_run
from tiny_models import tiny_model_params

DEMO_PATIENTS = 240


@pytest.fixture(scope="session")
def demo_export(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from mindkd.demo.config import DemoConfig
    from mindkd.demo.generator import generate

    root = tmp_path_factory.mktemp("demo")
    generate(root, DemoConfig(patients=DEMO_PATIENTS, seed=7))
    return root


@pytest.fixture(scope="session")
def manifest(demo_export: Path) -> dict[str, Any]:
    return json.loads((demo_export / "_truth" / "manifest.json").read_text())


@pytest.fixture(scope="session")
def data_run(demo_export: Path, tmp_path_factory: pytest.TempPathFactory) -> ProjectRun:
    """ehr + cxr + pairing run once through a real KedroSession (catalog, hooks, MLflow)."""
    import os

    os.environ["KEDRO_DISABLE_TELEMETRY"] = "true"
    project = make_project_run(
        tmp_path_factory.mktemp("project"),
        demo_export / "mimic-iv",
        demo_export / "mimic-cxr-jpg",
    )
    project.run(["ehr", "cxr", "pairing"])
    return project


@pytest.fixture(scope="session")
def model_run(data_run: ProjectRun, tmp_path_factory: pytest.TempPathFactory) -> ProjectRun:
    """teachers + distill for both tasks, tiny (``tiny_model_params``), through a real KedroSession.

    Runs on a copy of ``data_run``'s data in its own project folder and MLflow store, so the data
    stages' store keeps only their own run. The store then holds one chain run (experiment
    ``mindkd``) and one run per task (``mindkd-ihm``, ``mindkd-pheno``) with the teacher and distill
    metrics, the student model and the logit-cache tags.
    """
    import shutil

    import torch

    tmp = tmp_path_factory.mktemp("model_project")
    shutil.copytree(data_run.data_root, tmp / "data")
    conf_globals = (data_run.conf / "local" / "globals.yml").read_text()
    raw = yaml.safe_load(conf_globals)
    project = make_project_run(
        tmp, Path(raw["mimic_iv_dir"]), Path(raw["mimic_cxr_jpg_dir"]), data_root=tmp / "data"
    )
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        project.run(["teachers", "distill"], runtime_params=tiny_model_params())
    finally:
        torch.set_num_threads(threads)
    return project


@pytest.fixture(scope="session")
def one_hot_run(data_run: ProjectRun, tmp_path_factory: pytest.TempPathFactory) -> ProjectRun:
    """ehr + pairing + teachers + distill of the ihm namespace with ``ehr.categorical: one_hot``,
    tiny (``tiny_model_params``), on a copy of ``data_run``'s data and its own MLflow store."""
    import shutil

    import torch

    tmp = tmp_path_factory.mktemp("one_hot_project")
    shutil.copytree(data_run.data_root, tmp / "data")
    raw = yaml.safe_load((data_run.conf / "local" / "globals.yml").read_text())
    project = make_project_run(
        tmp, Path(raw["mimic_iv_dir"]), Path(raw["mimic_cxr_jpg_dir"]), data_root=tmp / "data"
    )
    # every task's tiny CXR slots: they must match the shared pre-training's (checked at start-up)
    params = {"ehr": {"categorical": "one_hot"}, **tiny_model_params()}
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with project.session(params) as session:
            session.run(
                pipeline_names=["ehr", "pairing", "teachers", "distill"],
                namespaces=["ihm", "cxr_pretrain"],  # the task and its shared pre-training
            )
    finally:
        torch.set_num_threads(threads)
    return project
