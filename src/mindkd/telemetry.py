"""Telemetry off, and no call home, in every process that imports ``mindkd``.

MIND-KD handles clinical data: nothing may leave the machine. Three libraries of the stack would
otherwise talk to the internet on their own:

- **MLflow** (3.x) builds a telemetry client at ``import mlflow`` unless ``MLFLOW_DISABLE_TELEMETRY``
  or ``DO_NOT_TRACK`` is set in the process (``mlflow.telemetry.utils.is_telemetry_disabled`` reads
  them at every call). The client writes an installation id under ``$XDG_CONFIG_HOME/mlflow`` and,
  at the first tracked call (``create_run``, ``log_metric``, ``log_model`` ...), starts threads that
  fetch a config and post usage records.
- **kedro-telemetry** (a hard dependency of Kedro) posts CLI commands and project statistics to Heap
  unless ``KEDRO_DISABLE_TELEMETRY`` / ``DO_NOT_TRACK`` is set or the project's ``.telemetry`` file
  says ``consent: false`` (both hold here). kedro-viz injects the same Heap script into its page
  under the same consent.
- **kedro-viz** asks PyPI for its latest version when ``kedro viz run`` starts and when the page
  loads ``/api/version`` (``requests.get`` with a 30 s timeout).

``disable_telemetry`` runs first thing in ``mindkd/__init__.py``, so every entry point gets it
before any project code: ``kedro`` CLI commands (Kedro imports ``mindkd.settings``, hence
``mindkd``, while it bootstraps the project, before any plugin command or hook runs),
``python -m mindkd...``, a notebook or a plain ``import mindkd``, and the logged student (its
``model_code.py`` calls it again). It

1. sets the three variables in ``os.environ`` (inherited by every child process: decode workers,
   the kedro-viz server, anything launched from here), overriding a value already there;
2. drops MLflow's telemetry client when ``mlflow`` was imported before ``mindkd`` (a plugin or a
   notebook cell may import it first): a client that never recorded has sent nothing, and without
   a client nothing can be recorded later;
3. replaces kedro-viz's PyPI version check by one that answers "unknown".

Limits: a process that imports ``mlflow`` and makes a tracked MLflow call before it imports
``mindkd`` has already started MLflow's telemetry; ``mlflow ui`` / ``mlflow server`` started by hand
never import ``mindkd``. For those, export ``MLFLOW_DISABLE_TELEMETRY=true`` (the Makefile does).
"""

from __future__ import annotations

import importlib.util
import os
import sys
from types import MappingProxyType

# Every variable the stack's libraries read as "telemetry off" (MLflow, kedro-telemetry and the
# DO_NOT_TRACK convention other tools follow). MLFLOW_ENABLE_TELEMETRY is not one of them.
TELEMETRY_OFF: MappingProxyType[str, str] = MappingProxyType(
    {
        "MLFLOW_DISABLE_TELEMETRY": "true",
        "KEDRO_DISABLE_TELEMETRY": "true",
        "DO_NOT_TRACK": "true",
    }
)

# Modules of kedro-viz that hold its PyPI version check (the second binds it at import).
_VIZ_VERSION_CHECK = ("kedro_viz.integrations.pypi", "kedro_viz.api.rest.responses.version")


def disable_telemetry() -> None:
    """Turn MLflow's and Kedro's telemetry and kedro-viz's update check off in this process.

    Idempotent and cheap; see the module docstring for what it covers and why here.
    """
    os.environ.update(TELEMETRY_OFF)
    _drop_mlflow_client()
    _skip_kedro_viz_update_check()


def _drop_mlflow_client() -> None:
    if "mlflow.telemetry.client" not in sys.modules:
        return  # mlflow is not imported yet: the variables keep its client from being built
    from mlflow.telemetry import get_telemetry_client, set_telemetry_client

    client = get_telemetry_client()
    if client is not None:
        client.flush(terminate=True)  # stops its threads if a tracked call had started them
    set_telemetry_client()  # re-reads is_telemetry_disabled(), now True: the client is dropped


def _no_latest_version() -> None:
    """kedro-viz's ``get_latest_version`` without the request: the latest version is unknown."""
    return None


def _skip_kedro_viz_update_check() -> None:
    if "kedro_viz" not in sys.modules and importlib.util.find_spec("kedro_viz") is None:
        return  # e.g. a serving environment with only the student's requirements
    try:
        importlib.import_module(_VIZ_VERSION_CHECK[0])
    except ImportError:  # a kedro-viz that cannot be imported cannot run either
        return
    for name in _VIZ_VERSION_CHECK:
        module = sys.modules.get(name)
        if module is not None:
            module.get_latest_version = _no_latest_version  # type: ignore[attr-defined]
