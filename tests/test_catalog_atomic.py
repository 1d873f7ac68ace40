"""Every file a pipeline writes goes through a dataset that writes atomically, and every one that is
loaded back names, in ``rebuild:``, a pipeline that really writes it."""

from __future__ import annotations

import re
from typing import Any

import pytest
from kedro.config import OmegaConfigLoader
from kedro.io import DataCatalog
from kedro_mlflow.io.models import MlflowModelTrackingDataset

from kedro_harness import PROJECT_ROOT
from mindkd.io import atomic
from mindkd.io.event_parts import EventPartsDataset
from mindkd.io.fsspec_base import FsspecVersionedDataset

ATOMIC = (
    atomic.ParquetDataset,
    atomic.CSVDataset,
    atomic.JSONDataset,
    atomic.TextDataset,
    atomic.MatplotlibDataset,
    FsspecVersionedDataset,  # array store, logit cache, state dicts
    EventPartsDataset,
)


@pytest.fixture(scope="module")
def written() -> dict[str, tuple[Any, set[str]]]:
    """Each dataset some pipeline outputs: its catalog object and the pipelines that write it."""
    from kedro.framework.project import pipelines
    from kedro.framework.startup import bootstrap_project

    bootstrap_project(PROJECT_ROOT)
    loader = OmegaConfigLoader(str(PROJECT_ROOT / "conf"), base_env="base", default_run_env="base")
    catalog = DataCatalog.from_config(dict(loader["catalog"]))
    writers: dict[str, set[str]] = {}
    for name, pipeline in pipelines.items():
        if name != "__default__":
            for output in pipeline.all_outputs():
                writers.setdefault(output, set()).add(name)
    return {name: (catalog.get(name), who) for name, who in writers.items() if name in catalog}


def test_every_file_a_pipeline_writes_is_written_atomically(written) -> None:
    files = {
        name: ds
        for name, (ds, _) in written.items()
        if hasattr(ds, "_filepath")
        and not isinstance(ds, MlflowModelTrackingDataset)  # logged into an MLflow run
    }
    assert len(files) > 100  # both tasks, every member and variant
    assert {name for name, ds in files.items() if not isinstance(ds, ATOMIC)} == set()


def test_every_rebuild_hint_names_a_pipeline_that_writes_the_dataset(written) -> None:
    wrong = {}
    for name, (dataset, writers) in written.items():
        if not isinstance(dataset, ATOMIC) or isinstance(dataset, atomic.MatplotlibDataset):
            continue  # MLflow metrics and models; plots are never loaded
        named = set(re.findall(r"`kedro run --pipelines (\w+)`", dataset._rebuild or ""))
        if not named & writers:  # a task pattern names its stage and the avdigits chain
            wrong[name] = (dataset._rebuild, sorted(writers))
    assert wrong == {}
