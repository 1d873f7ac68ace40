"""Nothing leaves the machine, whatever the entry point (``mindkd.telemetry``).

Every entry point runs in a subprocess with none of the variables that turn telemetry off (nor the
CI / pytest markers that make MLflow turn itself off), under the probe of ``telemetry_probe``: it
refuses and records any network attempt, records every thread started, and at exit reports MLflow's
own ``is_telemetry_disabled()``, whether MLflow's telemetry client exists, and kedro-telemetry's
consent and whether it sent. The first test shows that the probe does see MLflow's telemetry when
the package is not there to turn it off.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

from kedro_harness import PROJECT_ROOT, make_project_run
from telemetry_probe import assert_nothing_sent, run_probed

# A tracked MLflow call (it records a telemetry event when telemetry is on).
TRACKED_CALL = "mlflow.set_tracking_uri({uri!r}); mlflow.create_experiment('probe')"
MLFLOW_ID_FILE = Path("home/.config/mlflow/telemetry.json")  # written when MLflow builds a client


def _tracked(tmp_path: Path) -> str:
    return TRACKED_CALL.format(uri=f"sqlite:///{tmp_path / 'probe.db'}")


def test_without_mindkd_the_probe_sees_mlflow_and_kedro_telemetry(tmp_path: Path) -> None:
    code = (
        f"import mlflow, threading, kedro_telemetry.plugin; {_tracked(tmp_path)}\n"
        "for thread in threading.enumerate():  # let MLflow's config fetch try the network\n"
        "    if thread.name == 'GetTelemetryConfig':\n"
        "        thread.join(30)\n"
    )
    done, probe = run_probed(["python", "-c", code], tmp_path, tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    assert probe.telemetry_threads, probe  # MLflow's client started sending
    assert probe.net, probe  # ... and looked up its config server (refused by the probe)
    (state,) = probe.exits
    assert state["mlflow_disabled"] is False
    assert state["kedro_consent_from_env"] is None  # None: kedro-telemetry would send
    assert (tmp_path / MLFLOW_ID_FILE).is_file()


def test_import_mindkd_turns_telemetry_off_before_mlflow_is_imported(tmp_path: Path) -> None:
    code = f"import mindkd, mlflow, kedro_telemetry.plugin; {_tracked(tmp_path)}"
    done, probe = run_probed(["python", "-c", code], tmp_path, tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    assert_nothing_sent(probe)
    assert probe.exits[0]["mlflow_disabled"] is True
    assert not (tmp_path / MLFLOW_ID_FILE).exists()  # MLflow never even built its client


def test_import_mindkd_after_mlflow_drops_the_client_mlflow_built(tmp_path: Path) -> None:
    """A plugin or a notebook cell may import mlflow first: its client exists, then goes."""
    code = (
        "import mlflow\n"
        "from mlflow.telemetry import get_telemetry_client\n"
        "assert get_telemetry_client() is not None, 'the scenario needs a live client'\n"
        "import mindkd\n"
        f"{_tracked(tmp_path)}\n"
    )
    done, probe = run_probed(["python", "-c", code], tmp_path, tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    assert_nothing_sent(probe)
    assert probe.exits[0]["mlflow_client"] is False


@pytest.mark.parametrize(
    "module_args",
    [
        ["mindkd.tracking", "--tracking-uri", "{store}", "compare"],
        ["mindkd.demo", "--help"],
        ["mindkd.demo.physionet", "--help"],
        ["mindkd", "--help"],
    ],
    ids=["tracking", "demo", "demo.physionet", "mindkd"],
)
def test_python_m_entry_points_send_nothing(tmp_path: Path, module_args: list[str]) -> None:
    store = f"sqlite:///{tmp_path / 'empty.db'}"
    args = [arg.format(store=store) for arg in module_args]
    done, probe = run_probed(["python", "-m", *args], tmp_path, PROJECT_ROOT)
    assert done.returncode in (0, 1), done.stderr[-2000:]  # compare on an empty store: exit 1
    assert_nothing_sent(probe)
    assert all(state["mindkd_imported"] for state in probe.exits)


def test_a_kedro_session_without_the_telemetry_file_sends_nothing(tmp_path: Path) -> None:
    """A notebook's ``bootstrap_project`` + ``KedroSession`` (what ``%load_ext kedro.ipython``
    does), in a copy of the project that lacks ``.telemetry``: the package alone says no."""
    project = tmp_path / "project"
    (project / "src").mkdir(parents=True)
    (project / "pyproject.toml").write_text((PROJECT_ROOT / "pyproject.toml").read_text())
    run = make_project_run(project, tmp_path / "mimic-iv", tmp_path / "cxr")
    assert not (project / ".telemetry").exists()
    code = (
        "from kedro.framework.session import KedroSession\n"
        "from kedro.framework.startup import bootstrap_project\n"
        f"bootstrap_project({str(project)!r})\n"
        f"with KedroSession.create(project_path={str(project)!r}, conf_source={str(run.conf)!r})"
        " as session:\n"
        "    catalog = session.load_context().catalog\n"
        "    assert 'cxr_decode_failures' in catalog\n"
    )
    done, probe = run_probed(["python", "-c", code], tmp_path, project)
    assert done.returncode == 0, done.stderr[-2000:]
    assert_nothing_sent(probe)
    (state,) = probe.exits
    assert state["kedro_hook_consent"] is False  # after_catalog_created returned at once


def test_the_project_telemetry_file_says_no_on_its_own(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from kedro_telemetry.plugin import _check_for_telemetry_consent

    for name in ("DO_NOT_TRACK", "KEDRO_DISABLE_TELEMETRY", "GITHUB_REPOSITORY_OWNER"):
        monkeypatch.delenv(name, raising=False)
    assert yaml.safe_load((PROJECT_ROOT / ".telemetry").read_text()) == {"consent": False}
    assert _check_for_telemetry_consent(PROJECT_ROOT) is False
    assert _check_for_telemetry_consent(tmp_path) is None  # no file, no variable: it would send


def test_the_makefile_exports_the_variables_the_libraries_read() -> None:
    makefile = (PROJECT_ROOT / "Makefile").read_text()
    assert "MLFLOW_ENABLE_TELEMETRY" not in makefile  # not an MLflow variable
    for name in ("MLFLOW_DISABLE_TELEMETRY", "KEDRO_DISABLE_TELEMETRY", "DO_NOT_TRACK"):
        assert f"export {name} := true" in makefile, name


@pytest.mark.slow
def test_kedro_cli_commands_send_nothing(tmp_path: Path) -> None:
    """``kedro run`` (kedro-mlflow opens and logs an MLflow run, kedro-telemetry's CLI and session
    hooks run) and ``kedro registry list``, from the project folder as a user types them."""
    cxr = tmp_path / "cxr"
    (cxr / "files").mkdir(parents=True)
    _one_image_metadata().to_csv(cxr / "mimic-cxr-2.0.0-metadata.csv.gz", index=False)
    run = make_project_run(tmp_path, tmp_path / "mimic-iv", cxr)
    command = ["kedro", "run", "--conf-source", str(run.conf), "--pipelines", "cxr"]
    command += ["--to-nodes", "select_task_images"]
    done, probe = run_probed(command, tmp_path / "run", PROJECT_ROOT)
    assert done.returncode == 0, done.stderr[-3000:]
    assert (run.data_root / "02_intermediate" / "cxr" / "task_images.parquet").is_file()
    assert_nothing_sent(probe)
    (state,) = probe.exits
    assert state["mlflow_disabled"] is True and state["kedro_hook_consent"] is False

    done, probe = run_probed(["kedro", "registry", "list"], tmp_path / "registry", PROJECT_ROOT)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "distill" in done.stdout
    assert_nothing_sent(probe)


@pytest.mark.slow
def test_loading_the_registered_student_in_a_fresh_python_sends_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``mlflow.pyfunc.load_model`` of the registered student, in a Python that imported mlflow
    first (its client alive) and cannot import the project's ``mindkd``: the model's own code turns
    telemetry off, and a tracked MLflow call afterwards records nothing."""
    import mlflow

    from mindkd.serving import StudentPyfunc
    from mindkd.serving.pyfunc import model_arguments
    from tiny_student import student_card, trained_weights

    card = student_card()
    uri = f"sqlite:///{tmp_path / 'registry.db'}"
    mlflow.set_tracking_uri(uri)
    monkeypatch.setattr(sys, "path", list(sys.path))  # MLflow may prepend the model's code folder
    with mlflow.start_run():
        info = mlflow.pyfunc.log_model(
            name="student",
            **model_arguments(StudentPyfunc(card, trained_weights(card)), tmp_path / "scratch"),
        )
    mlflow.register_model(info.model_uri, "mindkd-ihm-student")
    src = str(PROJECT_ROOT / "src")
    code = (
        "import sys\n"
        f"sys.path = [p for p in sys.path if p.rstrip('/') != {src!r}]\n"
        "import mlflow\n"
        "from mlflow.telemetry import get_telemetry_client\n"
        "assert get_telemetry_client() is not None, 'the scenario needs a live client'\n"
        "model = mlflow.pyfunc.load_model('models:/mindkd-ihm-student/1')\n"
        "import mindkd\n"
        f"assert not mindkd.__file__.startswith({src!r}), mindkd.__file__\n"
        f"{_tracked(tmp_path)}\n"
    )
    done, probe = run_probed(
        ["python", "-c", code], tmp_path / "load", tmp_path, MLFLOW_TRACKING_URI=uri
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert_nothing_sent(probe)
    (state,) = probe.exits
    assert state["mlflow_client"] is False and state["mindkd_imported"] is True


def _one_image_metadata() -> pd.DataFrame:
    from mindkd.mimic.cxr import METADATA_COLUMNS

    row = {
        "dicom_id": "0a1b2c3d-00000000-11111111-22222222-33333333",
        "subject_id": 10000001,
        "study_id": 50000001,
        "PerformedProcedureStepDescription": "CHEST (PORTABLE AP)",
        "ViewPosition": "AP",
        "Rows": 100,
        "Columns": 80,
        "StudyDate": 21500101,
        "StudyTime": 83015.0,
        "ProcedureCodeSequence_CodeMeaning": "CHEST (PORTABLE AP)",
        "ViewCodeSequence_CodeMeaning": "antero-posterior",
        "PatientOrientationCodeSequence_CodeMeaning": "Erect",
    }
    return pd.DataFrame([row], columns=list(METADATA_COLUMNS))
