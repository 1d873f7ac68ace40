"""Run the real project (settings, catalog, hooks, kedro-mlflow) against data in a tmp folder.

The project's ``conf/`` is copied and a ``local/globals.yml`` written next to it, exactly what a user
does to point MIND-KD at real PhysioNet data; nothing under the repository is written.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

PROJECT_ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class ProjectRun:
    conf: Path
    data_root: Path
    tracking_uri: str
    env: str = "local"

    def session(self, runtime_params: dict[str, Any] | None = None) -> Any:
        from kedro.framework.session import KedroSession
        from kedro.framework.startup import bootstrap_project

        bootstrap_project(PROJECT_ROOT)
        return KedroSession.create(
            project_path=PROJECT_ROOT,
            conf_source=str(self.conf),
            env=self.env,
            runtime_params=runtime_params,
        )

    def run(self, pipelines: list[str], runtime_params: dict[str, Any] | None = None) -> None:
        with self.session(runtime_params) as session:
            session.run(pipeline_names=pipelines)

    def catalog(self) -> Any:
        with self.session() as session:
            return session.load_context().catalog


def make_project_run(
    tmp: Path,
    mimic_iv_dir: Path,
    mimic_cxr_jpg_dir: Path,
    data_root: Path | None = None,
    env: str = "local",
) -> ProjectRun:
    """A copy of ``conf/`` in ``tmp`` whose ``env`` globals point at the given data and a tmp store.

    ``data_root`` (default ``tmp/data``) is where the pipelines read and write layers 02..08.
    ``env``: the config environment the runs use (``local``, or e.g. ``real_demo`` with its own
    parameters); its globals and mlflow.yml are (re)written here.
    """
    conf = tmp / "conf"
    shutil.copytree(PROJECT_ROOT / "conf", conf, ignore=shutil.ignore_patterns("local"))
    (conf / env).mkdir(exist_ok=True)
    tracking_uri = f"sqlite:///{tmp / 'mlflow.db'}"
    data_root = data_root or tmp / "data"
    local_globals = {
        "mimic_iv_dir": str(mimic_iv_dir),
        "mimic_cxr_jpg_dir": str(mimic_cxr_jpg_dir),
        "data_root": str(data_root),
        "mlflow_tracking_uri": tracking_uri,
    }
    (conf / env / "globals.yml").write_text(yaml.safe_dump(local_globals))
    # Artifacts (and logged models) next to the tmp store, not in the working directory's mlruns/.
    mlflow_conf = yaml.safe_load((conf / "base" / "mlflow.yml").read_text())
    mlflow_conf["tracking"]["experiment"]["create_experiment_kwargs"]["artifact_location"] = str(
        tmp / "mlruns"
    )
    (conf / env / "mlflow.yml").write_text(yaml.safe_dump(mlflow_conf))
    return ProjectRun(conf=conf, data_root=data_root, tracking_uri=tracking_uri, env=env)
