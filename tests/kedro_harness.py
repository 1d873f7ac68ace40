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

    def session(self, runtime_params: dict[str, Any] | None = None) -> Any:
        from kedro.framework.session import KedroSession
        from kedro.framework.startup import bootstrap_project

        bootstrap_project(PROJECT_ROOT)
        return KedroSession.create(
            project_path=PROJECT_ROOT,
            conf_source=str(self.conf),
            env="local",
            runtime_params=runtime_params,
        )

    def run(self, pipelines: list[str], runtime_params: dict[str, Any] | None = None) -> None:
        with self.session(runtime_params) as session:
            session.run(pipeline_names=pipelines)

    def catalog(self) -> Any:
        with self.session() as session:
            return session.load_context().catalog


def make_project_run(tmp: Path, mimic_iv_dir: Path, mimic_cxr_jpg_dir: Path) -> ProjectRun:
    """A copy of ``conf/`` in ``tmp`` whose local globals point at the given data and a tmp store."""
    conf = tmp / "conf"
    shutil.copytree(PROJECT_ROOT / "conf", conf, ignore=shutil.ignore_patterns("local"))
    (conf / "local").mkdir()
    tracking_uri = f"sqlite:///{tmp / 'mlflow.db'}"
    local_globals = {
        "mimic_iv_dir": str(mimic_iv_dir),
        "mimic_cxr_jpg_dir": str(mimic_cxr_jpg_dir),
        "data_root": str(tmp / "data"),
        "mlflow_tracking_uri": tracking_uri,
    }
    (conf / "local" / "globals.yml").write_text(yaml.safe_dump(local_globals))
    return ProjectRun(conf=conf, data_root=tmp / "data", tracking_uri=tracking_uri)
