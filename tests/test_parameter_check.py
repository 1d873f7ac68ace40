"""Parameters the project does not know stop a session before any node runs (``ParameterCheckHook``).

Real ``KedroSession``s on the project (settings, hooks, kedro-mlflow) and one ``kedro run`` in a
subprocess, with the raw data folders absent: a session that got as far as any node would fail on a
missing file instead. A hook spy records that neither the catalog, nor the pipeline, nor any node was
started, and the MLflow store is never even created, so a refused run records no MLflow run.
The schema's messages in detail: ``tests/pipelines/test_params.py``.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import mlflow
import pytest
import yaml
from kedro.framework.hooks import hook_impl

from kedro_harness import PROJECT_ROOT, ProjectRun, make_project_run
from mindkd.pipelines.params import ParameterError

# example -> (conf/local/parameters.yml, --params, key named, suggestion, where it was set)
EXAMPLES: dict[str, tuple[Any, Any, str, str, str]] = {
    "conf_local_ihm.distil": (
        {"ihm": {"distil": {"alpha": 0.3}}},
        None,
        "ihm.distil",
        "did you mean `ihm.distill`?",
        "conf/local/parameters.yml]",
    ),
    "params_ihmm.distill.alpha": (
        None,
        {"ihmm": {"distill": {"alpha": 0.3}}},
        "ihmm",
        "did you mean `ihm`?",
        "[set in --params ihmm.distill.alpha=0.3]",
    ),
    "params_distill.alpha": (
        None,
        {"distill": {"alpha": 0.3}},
        "distill",
        "did you mean `avdigits.distill` or `ihm.distill` or `los.distill` or `pheno.distill`?",
        "[set in --params distill.alpha=0.3]",
    ),
}
SELECTIONS: dict[str, dict[str, Any]] = {
    "default": {},
    "distill": {"pipeline_names": ["distill"]},
    "ehr": {"pipeline_names": ["ehr"]},
    "distill_namespace_ihm": {"pipeline_names": ["distill"], "namespaces": ["ihm"]},
}


class _Spy:
    """Records every session step after the context that a hook can see."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    @hook_impl
    def after_catalog_created(self) -> None:
        self.calls.append("after_catalog_created")

    @hook_impl
    def before_pipeline_run(self) -> None:
        self.calls.append("before_pipeline_run")

    @hook_impl
    def before_node_run(self, node: Any) -> None:
        self.calls.append(node.name)


def _project(tmp_path: Path, local: dict[str, Any] | None = None) -> ProjectRun:
    """The project on a tmp conf whose raw data folders do not exist."""
    root = tmp_path / "project"
    absent = root / "absent"
    project = make_project_run(root, absent / "mimic-iv", absent / "mimic-cxr-jpg")
    if local is not None:
        (project.conf / "local" / "parameters.yml").write_text(yaml.safe_dump(local))
    return project


def _refuse(project: ProjectRun, runtime: dict[str, Any] | None, **selection: Any) -> str:
    spy = _Spy()
    with project.session(runtime) as session:
        session._hook_manager.register(spy)
        with pytest.raises(ParameterError) as caught:
            session.run(**selection)
    assert spy.calls == []  # no catalog, no pipeline start, no node
    _assert_nothing_recorded(project)
    return str(caught.value)


def _assert_nothing_recorded(project: ProjectRun) -> None:
    """No layer written, no MLflow store made (so no run in any state), no run left active."""
    assert not project.data_root.exists()
    assert not Path(project.tracking_uri.removeprefix("sqlite:///")).exists()
    assert mlflow.active_run() is None


@pytest.mark.parametrize("selection", SELECTIONS)
@pytest.mark.parametrize("example", EXAMPLES)
def test_an_unknown_key_stops_every_selection_before_any_node(
    tmp_path: Path, example: str, selection: str
) -> None:
    local, runtime, key, suggestion, source = EXAMPLES[example]
    message = _refuse(_project(tmp_path, local), runtime, **SELECTIONS[selection])
    assert "1 problem(s) in the parameters read from " in message
    (line,) = [line for line in message.splitlines() if line.startswith("  - ")]
    assert line.startswith(f"  - {key}: unknown key; {suggestion}")
    assert line.endswith(source)


def test_an_extra_member_slot_stops_the_session(tmp_path: Path) -> None:
    local = {"ihm": {"teachers": {"ehr": {"members": {"gru_big": {"encoder": "gru"}}}}}}
    message = _refuse(_project(tmp_path, local), None, pipeline_names=["teachers"])
    assert (
        "ihm.teachers.ehr.members.gru_big: no such member slot; the ehr slots are lstm_small, "
        "lstm_large, transformer (tasks.TEACHER_MEMBERS)"
    ) in message


def test_the_committed_config_passes_the_session_check(tmp_path: Path) -> None:
    """The same session set-up without the bad key gets past the check (to the missing data)."""
    project = _project(tmp_path)
    with project.session({"ihm": {"distill": {"alpha": 0.3}}}) as session:
        context = session.load_context()
    assert context.config_loader["parameters"]["ihm"]["distill"]["alpha"] == 0.3


@pytest.mark.slow
def test_kedro_run_exits_non_zero_naming_the_key(tmp_path: Path) -> None:
    project = _project(tmp_path)
    logging_conf = tmp_path / "logging.yml"  # the console only: no info.log in the repository
    logging_conf.write_text(
        yaml.safe_dump(
            {
                "version": 1,
                "disable_existing_loggers": False,
                "handlers": {"console": {"class": "logging.StreamHandler"}},
                "root": {"handlers": ["console"], "level": "INFO"},
            }
        )
    )
    env = {
        **os.environ,
        "KEDRO_DISABLE_TELEMETRY": "true",
        "DO_NOT_TRACK": "true",
        "MLFLOW_DISABLE_TELEMETRY": "true",
        "KEDRO_LOGGING_CONFIG": str(logging_conf),
        "COLUMNS": "400",
    }
    command = [
        str(Path(sys.executable).with_name("kedro")),
        "run",
        "--conf-source",
        str(project.conf),
        "--pipelines",
        "distill",
        "--params",
        "ihmm.distill.alpha=0.3",
    ]
    result = subprocess.run(
        command, cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=600, check=False
    )
    output = " ".join((result.stdout + result.stderr).split())
    assert result.returncode != 0, output[-2000:]
    assert "ParameterError: 1 problem(s) in the parameters" in output
    assert (
        "ihmm: unknown key; did you mean `ihm`? (top-level keys: ehr, split, cxr, cxr_pretrain, "
        "ihm, pheno, los, avdigits) [set in --params ihmm.distill.alpha=0.3]"
    ) in output
    _assert_nothing_recorded(project)
