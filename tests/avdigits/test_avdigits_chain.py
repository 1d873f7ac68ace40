"""``kedro run --pipelines avdigits``: the adapter, then the clinical teachers and distill stages
in the ``avdigits`` namespace, through a real Kedro session and MLflow store (tiny models)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import mlflow
import pandas as pd
import pytest
import yaml

from kedro_harness import PROJECT_ROOT, ProjectRun, make_project_run
from mindkd.pipeline_registry import register_pipelines
from mindkd.tasks import AVDIGITS, TASKS

pytestmark = pytest.mark.slow


def _tiny() -> dict[str, Any]:
    fit = {"epochs": 1, "progress": False}
    small = {
        "ehr_encoder": {"settings": {"hidden": 8}},
        "cxr_encoder": {"settings": {"width": 0.0625}},
    }
    return {
        AVDIGITS: {
            "source": {"speakers": {"val": ["carol"], "test": ["dave"]}},
            "teachers": {
                "ehr": {
                    "fit": fit,
                    "members": {
                        "lstm_small": {"settings": {"hidden": 8}},
                        "lstm_large": {"settings": {"hidden": 8, "layers": 1, "dropout": 0.0}},
                        "transformer": {"settings": {"d_model": 8, "heads": 2, "layers": 1}},
                    },
                },
                "cxr": {"fit": fit},
            },
            "distill": {
                "max_teacher_fraction": 100.0,
                "student": small,
                "baselines": {
                    "zero_filled": small,
                    "medfuse": {"token_dim": 8, "hidden": 8, **small},
                },
                "fit": fit,
            },
        }
    }


@pytest.fixture(scope="module")
def av_run(
    tmp_path_factory: pytest.TempPathFactory, fsdd_writer: Callable[..., Path]
) -> ProjectRun:
    tmp = tmp_path_factory.mktemp("avdigits_chain")
    recordings = fsdd_writer(tmp / "recordings", takes=4)
    project = make_project_run(tmp, tmp / "no-mimic-iv", tmp / "no-mimic-cxr")  # never read
    path = project.conf / "local" / "globals.yml"
    path.write_text(
        yaml.safe_dump(yaml.safe_load(path.read_text()) | {"fsdd_recordings_dir": str(recordings)})
    )
    project.run([AVDIGITS], _tiny())
    return project


def test_the_chain_reads_no_clinical_dataset_and_is_not_in_the_default_run() -> None:
    from kedro.framework.startup import bootstrap_project

    bootstrap_project(PROJECT_ROOT)
    pipelines = register_pipelines()
    chain = pipelines[AVDIGITS]
    assert not {i for i in chain.inputs() if not i.startswith("params:")} - {"avdigits.truth"}
    namespaces = {n.namespace.split(".")[0] for n in chain.nodes if n.namespace}
    assert namespaces == {AVDIGITS}  # no shared CheXpert pre-training, no clinical task
    assert any(n.name == "avdigits.distill.plot_confusion" for n in chain.nodes)
    default = {n.namespace.split(".")[0] for n in pipelines["__default__"].nodes if n.namespace}
    assert AVDIGITS not in default and set(TASKS) <= default


def test_the_chain_trains_evaluates_and_tracks_the_digit_task(av_run: ProjectRun) -> None:
    folder = av_run.data_root / "08_reporting" / AVDIGITS / "distill" / "comparison.csv"
    table = pd.read_csv(sorted(folder.iterdir())[-1] / folder.name)
    assert {"mind", "no_kd", "zero_filled", "medfuse", "teachers"} <= set(table["model"])
    assert {"accuracy", "macro_f1"} <= set(table.columns)
    assert "kappa" not in table.columns  # digits have no order: no linearly weighted κ
    assert set(table["subset"]) == {"full", "paired", "ehr_only"}  # ehr_only: audio alone
    mlflow.set_tracking_uri(av_run.tracking_uri)
    runs = mlflow.search_runs(experiment_names=[f"mindkd-{AVDIGITS}"])
    assert runs["status"].tolist() == ["FINISHED"]
    assert "metrics.avdigits.distill.mind.full.routed.macro_f1" in runs.columns
    plots = av_run.data_root / "08_reporting" / AVDIGITS / "distill" / "plots"
    assert (plots / "confusion.png").stat().st_size > 0
