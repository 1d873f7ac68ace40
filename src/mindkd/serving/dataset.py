"""``StudentModelDataset``: the trained student logged as an MLflow pyfunc model of the run.

kedro-mlflow's ``MlflowModelTrackingDataset`` (flavor ``mlflow.pyfunc``, workflow
``python_model``) passes the node's output as ``python_model`` and only static ``save_args``, so it
cannot attach the per-run weights and spec as artifacts. This subclass writes them to a scratch
folder at save time and logs them with the signature, the ``mindkd`` code and the requirements
(``mindkd.serving.pyfunc.model_arguments``); loading is kedro-mlflow's (the last logged model, or
``load_args: {model_uri: ...}``). The node that feeds it never calls MLflow.

Catalog entry::

    "{task}.distill.mind.mlflow_model":
      type: mindkd.serving.dataset.StudentModelDataset
      name: "{task}_mind_student"
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from kedro.io.core import DatasetError
from kedro_mlflow.io.models import MlflowModelTrackingDataset

from mindkd.tracking.registry import SERVING_TAG, TASK_TAG

from .pyfunc import StudentPyfunc, model_arguments


class StudentModelDataset(MlflowModelTrackingDataset):
    """Saves a built ``StudentPyfunc`` as the pyfunc model ``name`` of the active MLflow run.

    ``save_args`` go to ``mlflow.pyfunc.log_model`` after the computed ones (so they can override
    e.g. ``pip_requirements``). The logged model is tagged ``mindkd.serving=student_pyfunc`` and
    ``mindkd.task=<task>``, the marks ``mindkd.tracking.registry`` looks for.
    """

    def __init__(
        self,
        *,
        name: str,
        save_args: dict[str, Any] | None = None,
        load_args: dict[str, Any] | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(
            flavor="mlflow.pyfunc",
            pyfunc_workflow="python_model",
            save_args={"name": name, **(save_args or {})},
            load_args=load_args,
            metadata=metadata,
        )

    def _save(self, model: StudentPyfunc) -> None:
        if not isinstance(model, StudentPyfunc) or model.model is None:
            raise DatasetError(
                f"{type(self).__name__} saves a built StudentPyfunc(spec, weights), got "
                f"{type(model).__name__}"
            )
        configured = dict(self._save_args)  # type: ignore[has-type]
        with tempfile.TemporaryDirectory() as scratch:
            computed = model_arguments(model, Path(scratch))
            python_model = computed.pop("python_model")
            tags = {
                SERVING_TAG[0]: SERVING_TAG[1],
                TASK_TAG: model.spec.task if model.spec else "",
                **configured.get("tags", {}),
            }
            self._save_args = {**computed, **configured, "tags": tags}
            try:
                super()._save(python_model)
            finally:
                self._save_args = configured
