"""Where the project's MLflow runs are: the tracking URI and base experiment from ``conf/``."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

SQLITE = "sqlite:///"
# The parts of settings.CONFIG_LOADER_ARGS that reading mlflow.yml needs (settings.py itself imports
# the project hooks, kedro-mlflow and MLflow's model code: seconds and warnings for a CLI).
LOADER_ARGS = {
    "base_env": "base",
    "default_run_env": "local",
    "merge_strategy": {"globals": "soft"},
    "config_patterns": {"mlflow": ["mlflow*", "mlflow*/**", "**/mlflow*"]},
}


@dataclass(frozen=True)
class TrackingStore:
    uri: str  # absolute: the same store whatever the working directory
    experiment: str  # the base experiment (``mindkd``); tasks add ``-<task>``


def project_store(project_path: Path, env: str | None = None) -> TrackingStore:
    """The store a ``kedro run`` in ``project_path`` writes to (``conf/<env>`` over ``conf/base``).

    Reads ``mlflow.yml`` through the project's config loader, so ``globals`` (and an override in
    ``conf/local``) apply exactly as in a run. A relative sqlite path is relative to the project.
    """
    import warnings

    from kedro.config import OmegaConfigLoader

    with warnings.catch_warnings():  # omegaconf's resolver deprecation, raised inside Kedro
        warnings.simplefilter("ignore", UserWarning)
        loader = OmegaConfigLoader(conf_source=str(project_path / "conf"), env=env, **LOADER_ARGS)
        mlflow_conf = loader["mlflow"]
    uri = mlflow_conf["server"]["mlflow_tracking_uri"]
    experiment = mlflow_conf.get("tracking", {}).get("experiment", {}).get("name") or "mindkd"
    return TrackingStore(uri=absolute_uri(uri, project_path), experiment=experiment)


def absolute_uri(uri: str, project_path: Path) -> str:
    """``sqlite:///mlflow.db`` -> ``sqlite:////<project>/mlflow.db``; other URIs unchanged."""
    if uri.startswith(SQLITE):
        path = Path(uri[len(SQLITE) :])
        if not path.is_absolute():
            return f"{SQLITE}{(project_path / path).resolve()}"
    return uri
