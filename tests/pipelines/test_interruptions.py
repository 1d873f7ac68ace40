"""Interrupted and concurrent ``kedro run`` processes record the truth (real processes, real signals).

- Ctrl-C (SIGINT) or SIGTERM in the middle of a two-task run: every run of the session ends KILLED,
  none FINISHED, and ``register`` promotes none of them.
- ``kill -9``: the runs stay RUNNING (nothing can run in a killed process), tagged with its pid;
  ``python -m mindkd.tracking stale --close`` finds them and closes them KILLED.
- A second run on the same data root is refused at once, naming the first; the first finishes.
- Two first runs on a fresh MLflow store (different data roots) both succeed.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import mlflow
import pytest
import yaml

from kedro_harness import PROJECT_ROOT, ProjectRun, make_project_run
from mindkd.tasks import TASKS
from tiny_models import tiny_model_params

RUNS = 1 + len(TASKS)  # the chain run and one run per task

pytestmark = pytest.mark.slow
KEDRO = str(Path(sys.executable).with_name("kedro"))


def _project(data_run: ProjectRun, tmp: Path, copy_data: bool = True) -> ProjectRun:
    """A project on a copy of the data stages' outputs, with tiny models written into its conf."""
    raw = yaml.safe_load((data_run.conf / "local" / "globals.yml").read_text())
    if copy_data:
        shutil.copytree(data_run.data_root, tmp / "data")
    project = make_project_run(
        tmp, Path(raw["mimic_iv_dir"]), Path(raw["mimic_cxr_jpg_dir"]), data_root=tmp / "data"
    )
    tiny = tiny_model_params()
    for task in TASKS:  # slower than tiny: time to interrupt, still seconds
        tiny[task]["distill"]["fit"]["epochs"] = 4
    (project.conf / "local" / "parameters_tiny.yml").write_text(yaml.safe_dump(tiny))
    return project


def _start(project: ProjectRun, *pipelines: str) -> subprocess.Popen[str]:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "COLUMNS": "400"}
    return subprocess.Popen(
        [KEDRO, "run", "--conf-source", str(project.conf), "--pipelines", ",".join(pipelines)],
        cwd=PROJECT_ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )


def _runs(project: ProjectRun) -> dict[str, str]:
    """run name -> status, over the chain and task experiments."""
    client = mlflow.MlflowClient(tracking_uri=project.tracking_uri)
    ids = [e.experiment_id for e in client.search_experiments()]
    found = client.search_runs(ids, max_results=100) if ids else []
    return {f"{run.info.run_name} {run.info.run_id}": run.info.status for run in found}


def _wait_for_task_runs(project: ProjectRun, proc: subprocess.Popen[str], seconds: float) -> None:
    """Until the session has its chain run and every task run, and a task node has run."""
    mlflow.set_tracking_uri(project.tracking_uri)
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.stdout.read() if proc.stdout else ""
        weights = list((project.data_root / "06_models").rglob("*.pt"))
        if len(_runs(project)) == RUNS and weights:
            return
        time.sleep(0.5)
    raise AssertionError("the run did not reach its task nodes in time")


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_an_interrupted_run_ends_killed_and_is_never_registered(
    data_run: ProjectRun, tmp_path: Path, signum: int
) -> None:
    from mindkd.tracking.registry import RegistryError, register_best

    project = _project(data_run, tmp_path)
    proc = _start(project, "teachers", "distill")
    _wait_for_task_runs(project, proc, seconds=240)
    proc.send_signal(signum)
    output, _ = proc.communicate(timeout=120)
    assert proc.returncode != 0
    statuses = _runs(project)
    assert len(statuses) == RUNS
    assert set(statuses.values()) == {"KILLED"}, (statuses, output[-3000:])
    for task in TASKS:
        with pytest.raises(RegistryError):
            register_best(task, project.tracking_uri)


def test_a_killed_run_is_found_and_closed_by_the_stale_command(
    data_run: ProjectRun, tmp_path: Path
) -> None:
    project = _project(data_run, tmp_path)
    proc = _start(project, "teachers", "distill")
    _wait_for_task_runs(project, proc, seconds=240)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.communicate(timeout=60)
    statuses = _runs(project)
    assert set(statuses.values()) == {"RUNNING"}  # none FINISHED, parked task runs included
    command = [sys.executable, "-m", "mindkd.tracking", "--tracking-uri", project.tracking_uri]
    listed = subprocess.run([*command, "stale"], capture_output=True, text=True, check=True)
    assert listed.stdout.count("  dead  ") == RUNS, listed.stdout
    closed = subprocess.run(
        [*command, "stale", "--close"], capture_output=True, text=True, check=True
    )
    assert closed.stdout.count("-> KILLED") == RUNS, closed.stdout
    assert set(_runs(project).values()) == {"KILLED"}


def test_a_second_run_on_the_same_data_root_is_refused(
    data_run: ProjectRun, tmp_path: Path
) -> None:
    project = _project(data_run, tmp_path)
    first = _start(project, "teachers", "distill")
    _wait_for_task_runs(project, first, seconds=240)
    second = _start(project, "distill")
    output, _ = second.communicate(timeout=120)
    assert second.returncode != 0
    assert "another kedro run is using the data root" in output
    assert f"pid {first.pid}" in output
    first_output, _ = first.communicate(timeout=600)
    assert first.returncode == 0, first_output[-3000:]
    assert set(_runs(project).values()) == {"FINISHED"}  # the refused run opened no run


def test_two_first_runs_on_a_fresh_store_both_succeed(data_run: ProjectRun, tmp_path: Path) -> None:
    a = _project(data_run, tmp_path / "a")
    b = make_project_run(
        tmp_path / "b",
        Path(yaml.safe_load((a.conf / "local" / "globals.yml").read_text())["mimic_iv_dir"]),
        Path(yaml.safe_load((a.conf / "local" / "globals.yml").read_text())["mimic_cxr_jpg_dir"]),
    )
    shared = a.conf / "local" / "globals.yml"  # b writes into a's (fresh) store
    b_globals = yaml.safe_load((b.conf / "local" / "globals.yml").read_text())
    b_globals["mlflow_tracking_uri"] = yaml.safe_load(shared.read_text())["mlflow_tracking_uri"]
    (b.conf / "local" / "globals.yml").write_text(yaml.safe_dump(b_globals))
    runs = [_start(a, "ehr"), _start(b, "ehr")]
    outputs = [proc.communicate(timeout=300)[0] for proc in runs]
    assert [proc.returncode for proc in runs] == [0, 0], [o[-2000:] for o in outputs]
    statuses = list(_runs(a).values())  # each: a chain run and one run per task
    assert statuses == ["FINISHED"] * (2 * RUNS)


def _interrupt_at(proc: subprocess.Popen[str], marker: str, seconds: float = 300) -> str:
    """Read the run's output until the log line ``marker``, then Ctrl-C it; return its output."""
    assert proc.stdout is not None
    seen: list[str] = []
    deadline = time.monotonic() + seconds
    for line in proc.stdout:
        seen.append(line)
        if marker in line:
            proc.send_signal(signal.SIGINT)
            break
        assert time.monotonic() < deadline, "".join(seen[-50:])
    rest, _ = proc.communicate(timeout=120)
    return "".join(seen) + rest


def _each_present_dataset_loads(project: ProjectRun, names: list[str]) -> list[str]:
    """The datasets of ``names`` that exist; each of them must load whole."""
    catalog = project.catalog()
    present = []
    for name in names:
        dataset = catalog.get(name)
        if dataset.exists():
            present.append(name)
            loaded = dataset.load()
            assert loaded is not None, name
    return present


@pytest.mark.parametrize(
    ("stage", "marker", "outputs"),
    [
        (  # while the events are streamed in
            "ehr",
            "Running node: ingest_events",
            ["events_raw", "events_clean", "stay_cohort", "ihm.cohort"],
        ),
        (  # after the MIND student is saved, while the baselines train
            "distill",
            "Completed node: ihm.distill.mind.train_model",
            ["ihm.distill.mind.weights", "ihm.distill.no_kd.weights", "ihm.distill.evaluation"],
        ),
    ],
)
def test_ctrl_c_at_a_stage_leaves_only_whole_datasets_and_killed_runs(
    *, data_run: ProjectRun, model_run: ProjectRun, tmp_path: Path, stage: str, marker: str,
    outputs: list[str],
) -> None:  # fmt: skip
    source = model_run if stage == "distill" else data_run
    project = _project(source, tmp_path, copy_data=stage == "distill")
    proc = _start(project, stage)
    output = _interrupt_at(proc, marker)
    assert proc.returncode != 0, output[-3000:]
    statuses = _runs(project)
    assert statuses and set(statuses.values()) == {"KILLED"}, (statuses, output[-3000:])
    present = _each_present_dataset_loads(project, outputs)
    if stage == "ehr":
        assert "events_raw" not in present  # interrupted while ingesting: no half store
    else:
        assert "ihm.distill.mind.weights" in present  # trained before the interruption, whole
