"""``notebooks/compare_runs.ipynb``: committed without outputs, and runs top to bottom against a real
trained project (``model_run``: teachers + distill through a KedroSession), showing its runs."""

from __future__ import annotations

from pathlib import Path

import mlflow
import nbformat
import pytest

from kedro_harness import PROJECT_ROOT, ProjectRun

NOTEBOOK = PROJECT_ROOT / "notebooks" / "compare_runs.ipynb"
PARAMETERS = ("MINDKD_PROJECT_PATH", "MINDKD_CONF_SOURCE", "MINDKD_ENV", "MINDKD_TASK")


def _code_cells(notebook: nbformat.NotebookNode) -> list[nbformat.NotebookNode]:
    return [cell for cell in notebook.cells if cell.cell_type == "code"]


def test_the_notebook_is_committed_without_outputs_and_is_parameterised() -> None:
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    nbformat.validate(notebook)
    for cell in _code_cells(notebook):
        assert cell.outputs == [] and cell.execution_count is None, cell.source[:60]
    first = _code_cells(notebook)[0]
    assert first.metadata.get("tags") == ["parameters"]  # papermill can overwrite it
    for variable in PARAMETERS:
        assert variable in first.source


def _texts(cell: nbformat.NotebookNode) -> str:
    parts = []
    for output in cell.outputs:
        if output.output_type == "stream":
            parts.append(output.text)
        elif output.output_type in ("display_data", "execute_result"):
            parts.append(output.data.get("text/plain", ""))
            parts.append(output.data.get("text/html", ""))
    return "\n".join(parts)


def _images(notebook: nbformat.NotebookNode) -> int:
    return sum(
        "image/png" in output.get("data", {})
        for cell in _code_cells(notebook)
        for output in cell.outputs
    )


@pytest.mark.slow
def test_the_notebook_runs_against_a_trained_project(
    model_run: ProjectRun, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from nbclient import NotebookClient

    monkeypatch.setenv("MINDKD_PROJECT_PATH", str(PROJECT_ROOT))
    monkeypatch.setenv("MINDKD_CONF_SOURCE", str(model_run.conf))
    monkeypatch.setenv("MINDKD_ENV", "local")
    monkeypatch.setenv("MINDKD_TASK", "ihm")
    before = NOTEBOOK.read_bytes()
    notebook = nbformat.read(NOTEBOOK, as_version=4)  # an in-memory copy: the file is not rewritten
    client = NotebookClient(
        notebook,
        timeout=300,
        kernel_name="python3",
        resources={"metadata": {"path": str(tmp_path)}},
    )
    try:
        client.execute()
    finally:
        nbformat.write(notebook, tmp_path / "executed.ipynb")  # for a look when it fails
    assert NOTEBOOK.read_bytes() == before

    mlflow.set_tracking_uri(model_run.tracking_uri)
    task_runs = mlflow.search_runs(experiment_names=["mindkd-ihm"])
    cells = _code_cells(notebook)
    outputs = "\n".join(_texts(cell) for cell in cells)
    assert model_run.tracking_uri in outputs  # the store of the project it was pointed at
    for run_id in task_runs["run_id"]:
        assert run_id in outputs  # every ihm run is listed (run table and distill comparison)
    comparison = next(c for c in cells if "distill.comparison_table" in c.source)
    assert all(model in _texts(comparison) for model in ("mind", "no_kd", "medfuse", "teachers"))
    # runs chart, bar chart, ROC routed + fused from the catalog, two figures from MLflow artifacts
    assert _images(notebook) == 6
