"""Session fixtures: one small demo export, and the data stages run once on it through Kedro."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from kedro_harness import ProjectRun, make_project_run

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


def _tiny_fit(**overrides: Any) -> dict[str, Any]:
    return {"epochs": 1, "progress": False, **overrides}


def tiny_model_params() -> dict[str, Any]:
    """Runtime params (nested, as Kedro wants them in Python) for a seconds-long teachers+distill run.

    One epoch everywhere, finetune-only CXR teachers, every network a few thousand parameters; the
    bootstrap and latency settings stay at their validated minimums (1000 resamples, 50 calls).
    """
    teachers = {
        "ehr": {
            "fit": _tiny_fit(),
            "members": {
                "lstm_small": {"settings": {"hidden": 8}},
                "lstm_large": {"settings": {"hidden": 8, "layers": 1, "dropout": 0.0}},
                "transformer": {"settings": {"d_model": 8, "heads": 2, "layers": 1}},
            },
        },
        "cxr": {
            "pretrain": {"recipe": "finetune_only"},
            "fit": _tiny_fit(),
            "members": {
                "resnet18": {"settings": {"width": 0.125}},
                "resnet34": {"settings": {"width": 0.125}},
                "densenet": {
                    "settings": {"growth_rate": 4, "num_init_features": 8, "block_config": [1, 1]}
                },
            },
        },
    }
    small = {
        "ehr_encoder": {"settings": {"hidden": 8}},
        "cxr_encoder": {"settings": {"width": 0.125}},
    }
    distill = {
        "max_teacher_fraction": 100.0,
        "student": {**small, "fusion_settings": {"hidden": 8}},
        "baselines": {
            "zero_filled": {**small, "fusion_settings": {"hidden": 8}},
            "medfuse": {
                "ehr_encoder": {"settings": {"hidden": 8, "layers": 1, "dropout": 0.0}},
                "cxr_encoder": {"settings": {"width": 0.125}},
                "token_dim": 8,
                "hidden": 8,
            },
        },
        "fit": _tiny_fit(),
    }
    return {task: {"teachers": teachers, "distill": distill} for task in ("ihm", "pheno")}


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
