"""The report plots: wired into their stages, resolved by the catalog into 08_reporting + MLflow,
previewed by kedro-viz, and written by a real run (both places)."""

from __future__ import annotations

import base64
from pathlib import Path

import mlflow
import pandas as pd
import pytest
from kedro.pipeline import Pipeline
from matplotlib.figure import Figure

from kedro_harness import ProjectRun, make_project_run
from mindkd.pipelines.distill.pipeline import create_pipeline as distill_pipeline
from mindkd.pipelines.pairing.pipeline import create_pipeline as pairing_pipeline
from mindkd.pipelines.teachers import nodes as teacher_nodes
from mindkd.pipelines.teachers.pipeline import create_pipeline as teachers_pipeline
from mindkd.tasks import TASKS, TaskParams

VARIANTS = ("mind", "no_kd", "zero_filled", "medfuse", "mckd")
MEMBERS = {"ehr": ("lstm_small", "transformer"), "cxr": ("resnet18",)}
HEADS = ("routed", "ehr", "cxr", "fused")
# catalog name (after the task prefix) -> (file under 08_reporting/<task>/, MLflow artifact path)
PLOTS = {
    "cohort_flow_plot": ("plots/cohort_flow.png", "cohort/cohort_flow.png"),
    "teacher_training_curves_plot": (
        "teachers/plots/training_curves.png",
        "teachers/plots/training_curves.png",
    ),
    **{
        f"distill.{name}": (f"distill/plots/{file}", f"distill/plots/{file}")
        for name, file in (
            ("training_curves_plot", "training_curves.png"),
            ("comparison_plot", "comparison.png"),
            ("reliability_plot", "reliability.png"),
            *((f"roc_pr_{head}", f"roc_pr_{head}.png") for head in HEADS),
        )
    },
}


def _node(pipeline: Pipeline, name: str):
    (node,) = [n for n in pipeline.nodes if n.name == name]
    return node


def test_each_stage_outputs_its_plots_per_task() -> None:
    teachers = teachers_pipeline(members=MEMBERS)
    distill = distill_pipeline()
    pairing = pairing_pipeline()
    for task in TASKS:
        assert f"{task}.teacher_training_curves_plot" in teachers.all_outputs()
        curves = _node(teachers, f"{task}.plot_teacher_training_curves")
        assert set(curves.inputs) == {
            f"params:{task}.task",
            f"{task}.teacher_lstm_small.history",
            f"{task}.teacher_transformer.history",
            f"{task}.teacher_resnet18.history",
            "cxr_pretrain_history_resnet18",  # pre-trained once for every task
        }
        for name in ("training_curves_plot", "comparison_plot"):
            assert f"{task}.distill.{name}" in distill.all_outputs()
        students = _node(distill, f"{task}.distill.plot_training_curves")
        assert set(students.inputs) == {
            f"params:{task}.task",
            *(f"{task}.distill.{v}.history" for v in VARIANTS),
        }
        bars = _node(distill, f"{task}.distill.plot_comparison")
        assert f"{task}.distill.comparison_table" in bars.inputs
        flow = _node(pairing, f"{task}.plot_cohort_flow")
        assert flow.inputs == [
            f"{task}.cohort_flow",
            f"{task}.pairing_report",
            f"params:{task}.task",
        ]
        assert flow.outputs == [f"{task}.cohort_flow_plot"]
        assert f"{task}.cohort_flow" in pairing.inputs()  # read from the ehr stage's catalog entry


def test_teacher_curves_node_puts_pre_training_before_its_member() -> None:
    def history(auroc: list[float]) -> dict:
        epochs = [
            {"epoch": float(e), "train/loss": 0.5, "val/loss": 0.6, "val/auroc": a}
            for e, a in enumerate(auroc, 1)
        ]
        return {"monitor": "val/auroc", "best_epoch": 1, "epochs": epochs}

    figure = teacher_nodes.plot_teacher_training_curves(
        TaskParams(name="ihm"),
        lstm_small=history([0.7, 0.6]),
        resnet18=history([0.6]),
        resnet18__pretrain=history([0.5, 0.55, 0.52]),
    )
    assert isinstance(figure, Figure)
    titles = [ax.get_title().split(",")[0].split("\n")[0] for ax in figure.axes[0::2]]
    assert titles == ["lstm_small", "resnet18"]  # the pre-training is no panel of its own
    resnet_metric = figure.axes[3]
    assert resnet_metric.get_lines()[0].get_xdata().tolist() == [-2, -1, 0]


def test_a_slot_may_not_look_like_a_pre_training_key() -> None:
    with pytest.raises(ValueError, match="'b__pretrain' ends with the reserved '__pretrain'"):
        teachers_pipeline(members={"ehr": ("a",), "cxr": ("b__pretrain",)})


@pytest.fixture(scope="module")
def catalog(tmp_path_factory: pytest.TempPathFactory):
    tmp = tmp_path_factory.mktemp("plots_catalog")
    return make_project_run(tmp, tmp / "iv", tmp / "cxr").catalog(), tmp / "data"


def test_the_catalog_saves_each_plot_in_08_reporting_and_the_mlflow_run(catalog) -> None:
    datasets, data_root = catalog
    for task in TASKS:
        for name, (file, artifact) in PLOTS.items():
            dataset = datasets.get(f"{task}.{name}")
            assert type(dataset).__name__ == "MlflowMatplotlibDataset", name
            assert str(dataset._describe()["filepath"]) == str(
                data_root / "08_reporting" / task / file
            )
            assert f"{dataset.artifact_path}/{Path(file).name}" == f"{task}/{artifact}"
            assert dataset.metadata == {"kedro-viz": {"layer": "reporting"}}, name


def test_kedro_viz_previews_a_saved_plot_as_an_image(catalog) -> None:
    from kedro_viz.data_access.repositories.catalog import CatalogRepository
    from kedro_viz.models.flowchart.node_metadata import DataNodeMetadata
    from kedro_viz.models.flowchart.nodes import GraphNode

    datasets, _ = catalog
    name = "ihm.distill.comparison_plot"
    dataset = datasets.get(name)
    dataset._logging_activated = False  # write the file only: no MLflow run here
    figure = Figure(figsize=(2, 2))
    figure.subplots().bar([0, 1], [0.7, 0.8])
    dataset.save(figure)

    repository = CatalogRepository()
    repository.set_catalog(datasets)
    layer = repository.get_layer_for_dataset(name)
    assert layer == "reporting"
    node = GraphNode.create_data_node(
        dataset_id=name,
        dataset_name=name,
        layer=layer,
        tags=set(),
        dataset=dataset,
        modular_pipelines=set(),
    )
    metadata = DataNodeMetadata(data_node=node)
    assert metadata.preview_type == "ImagePreview"
    assert base64.b64decode(metadata.preview).startswith(b"\x89PNG")


@pytest.mark.slow
def test_a_real_run_writes_every_plot_to_08_reporting_and_mlflow(
    data_run: ProjectRun, model_run: ProjectRun
) -> None:
    """ehr+cxr+pairing (``data_run``) make the cohort flows, teachers+distill (``model_run``) the
    rest; each PNG is in 08_reporting and among the artifacts of its task's MLflow run."""
    for task in TASKS:
        for name, (file, artifact) in PLOTS.items():
            run = data_run if name == "cohort_flow_plot" else model_run
            png = run.data_root / "08_reporting" / task / file
            assert png.read_bytes().startswith(b"\x89PNG"), png
            client = mlflow.MlflowClient(tracking_uri=run.tracking_uri)
            listed = {
                a.path
                for run_id in _task_runs(run, task)["run_id"]
                for a in client.list_artifacts(run_id, str(Path(task) / Path(artifact).parent))
            }
            assert f"{task}/{artifact}" in listed, (name, listed)


def _task_runs(run: ProjectRun, task: str) -> pd.DataFrame:
    mlflow.set_tracking_uri(run.tracking_uri)
    return mlflow.search_runs(experiment_names=[f"mindkd-{task}"])
