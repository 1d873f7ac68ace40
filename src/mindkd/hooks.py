"""Project hooks.

``TrackingHook`` is kedro-mlflow's hook with one change: Kedro validates ``params:`` inputs into pydantic
models before nodes run, and kedro-mlflow only flattens plain dicts, so it would log a whole config as one
string. We hand it the models' plain-dict form, so every parameter is its own filterable MLflow param
(``distill.alpha``). The plugin's own auto-registered hook is disabled in ``settings.py``.
"""

from __future__ import annotations

from dataclasses import asdict, is_dataclass
from typing import Any

from kedro.framework.hooks import hook_impl
from kedro.io import DataCatalog
from kedro.pipeline import Node
from kedro_mlflow.framework.hooks.mlflow_hook import MlflowHook
from pydantic import BaseModel


def plain_params(value: Any) -> Any:
    """A parameter value as plain Python (dicts, lists, scalars), whatever typed object holds it."""
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    if is_dataclass(value) and not isinstance(value, type):
        return asdict(value)
    return value


class TrackingHook(MlflowHook):
    @hook_impl
    def before_node_run(
        self, node: Node, catalog: DataCatalog, inputs: dict[str, Any], is_async: bool
    ) -> None:
        plain = {k: plain_params(v) if k.startswith("params:") else v for k, v in inputs.items()}
        super().before_node_run(node=node, catalog=catalog, inputs=plain, is_async=is_async)
