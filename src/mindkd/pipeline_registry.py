"""Project pipelines: one per stage, found under ``mindkd.pipelines``.

``__default__`` runs every stage but ``tune`` (the val-split search of every method,
``mindkd.pipelines.tune``): ``kedro run`` trains with the values the config holds, and a search
runs only when asked for (``kedro run --pipelines tune``).
"""

from __future__ import annotations

from kedro.framework.project import find_pipelines
from kedro.pipeline import Pipeline

ON_REQUEST = ("tune",)  # registered, never part of __default__


def register_pipelines() -> dict[str, Pipeline]:
    pipelines = find_pipelines(raise_errors=True)
    stages = [p for name, p in pipelines.items() if name not in ON_REQUEST]
    pipelines["__default__"] = sum(stages, Pipeline([]))
    return pipelines
