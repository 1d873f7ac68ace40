"""kedro-datasets' file datasets as ``mindkd.io.atomic`` writes them: a save killed midway (in a real
process) leaves nothing under the real name, the next save removes its leftover, and a damaged file
names itself and the rebuild command. Also inside kedro-mlflow's artifact wrapper and a factory."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import matplotlib
import pandas as pd
import pytest
from kedro.io import DataCatalog
from kedro.io.core import AbstractDataset, DatasetError, Version

from mindkd.io import atomic

matplotlib.use("Agg")

REBUILD = "re-run `kedro run --pipelines pairing`"


def _figure(points: int) -> Any:
    from matplotlib.figure import Figure

    figure = Figure(figsize=(2, 2))
    figure.add_subplot().plot(range(points))
    return figure


def _table(rows: int) -> pd.DataFrame:
    return pd.DataFrame({"stay_id": range(rows), "value": [0.5 * i for i in range(rows)]})


# name -> (dataset class, file name, versioned, data of n rows/points); the catalog uses each type
# unversioned and versioned; one of each is enough to show both layouts.
CASES: dict[str, tuple[type[AbstractDataset], str, bool, Callable[[int], Any]]] = {
    "parquet": (atomic.ParquetDataset, "pairs.parquet", False, _table),
    "csv": (atomic.CSVDataset, "evaluation.csv", True, _table),
    "json": (atomic.JSONDataset, "report.json", True, lambda n: {"stays": list(range(n))}),
    "text": (atomic.TextDataset, "comparison.md", True, lambda n: "| row |\n" * n),
    "plot": (atomic.MatplotlibDataset, "roc.png", False, _figure),
}


def dataset(name: str, folder: str) -> AbstractDataset:
    kind, file, versioned, _ = CASES[name]
    version = Version(None, None) if versioned else None
    return kind(filepath=f"{folder}/{file}", version=version, rebuild=REBUILD)


def data(name: str, size: int) -> Any:
    return CASES[name][3](size)


KILLED_SAVE = """
import os, sys
sys.path.insert(0, {tests!r})
from fsspec.implementations.local import LocalFileOpener
from test_atomic_files import data, dataset

def die(self, *exc_info):  # the file written up to half, then a hard kill before it is closed
    if not self.f.closed:
        self.f.flush()
    os.truncate(self.path, os.path.getsize(self.path) // 2)
    os._exit(9)

LocalFileOpener.close = LocalFileOpener.__exit__ = die
dataset({name!r}, {folder!r}).save(data({name!r}, 40))
"""


def _kill_a_save(name: str, folder: Path) -> None:
    script = KILLED_SAVE.format(tests=str(Path(__file__).parent), name=name, folder=str(folder))
    child = subprocess.run(
        [sys.executable, "-c", script], check=False, capture_output=True, text=True, timeout=120
    )
    assert child.returncode == 9, child.stderr


def _leftovers(folder: Path) -> list[Path]:
    return [path for path in folder.rglob("*") if ".tmp-" in path.name]


def _content(name: str, folder: Path) -> Any:
    """What a reader gets from the latest save (the PNG's bytes for the save-only plot)."""
    if name == "plot":
        return (folder / CASES[name][1]).read_bytes()
    return dataset(name, str(folder)).load()


def _size(name: str, content: Any) -> int:
    if name == "plot":
        return len(content)
    if name == "json":
        return len(content["stays"])
    if name == "text":
        return content.count("\n")
    return len(content)


@pytest.mark.parametrize("name", sorted(CASES))
def test_a_save_killed_midway_leaves_the_previous_one_and_is_cleaned_up(
    name: str, tmp_path: Path
) -> None:
    dataset(name, str(tmp_path)).save(data(name, 12))
    before = _content(name, tmp_path)
    _kill_a_save(name, tmp_path)
    assert len(_leftovers(tmp_path)) == 1  # the killed save's half file, under no real name
    if name == "plot":
        assert _content(name, tmp_path) == before  # the PNG of the previous save, intact
    else:
        assert _size(name, _content(name, tmp_path)) == 12  # still the complete previous save
    dataset(name, str(tmp_path)).save(data(name, 30))
    assert _leftovers(tmp_path) == []
    if CASES[name][2]:  # versioned: the killed run's version folder, left empty, is gone too
        assert len(list((tmp_path / CASES[name][1]).iterdir())) == 2
    after = _content(name, tmp_path)
    assert _size(name, after) != _size(name, before)
    if name != "plot":
        assert _size(name, after) == 30


@pytest.mark.parametrize(
    ("name", "problem"),
    [
        ("parquet", "it does not end with a Parquet footer"),
        ("json", r"it cannot be parsed \((Unterminated string|Expecting)"),
        ("csv", "it stops in the middle of a line"),
    ],
)
def test_a_truncated_file_names_itself_and_the_rebuild(
    name: str, problem: str, tmp_path: Path
) -> None:
    saved = dataset(name, str(tmp_path))
    saved.save(data(name, 30))
    file = next(path for path in tmp_path.rglob(CASES[name][1]) if path.is_file())
    file.write_bytes(file.read_bytes()[: file.stat().st_size // 2])
    with pytest.raises(DatasetError) as error:
        dataset(name, str(tmp_path)).load()
    message = str(error.value)
    assert message.startswith(f"{file} is not a complete dataset: ")
    assert REBUILD in message
    assert error.match(problem)


def test_an_empty_csv_is_named_and_other_errors_keep_kedros_message(tmp_path: Path) -> None:
    (tmp_path / "flow.csv").write_bytes(b"")
    flow = atomic.CSVDataset(filepath=str(tmp_path / "flow.csv"), rebuild=REBUILD)
    with pytest.raises(DatasetError, match=r"flow\.csv is not a complete dataset: it is empty"):
        flow.load()
    missing = atomic.ParquetDataset(filepath=str(tmp_path / "none.parquet"), rebuild=REBUILD)
    with pytest.raises(DatasetError, match="Failed while loading data") as error:
        missing.load()
    assert "not a complete dataset" not in str(error.value)
    atomic.ParquetDataset(filepath=str(tmp_path / "p.parquet")).save(_table(2))
    wrong_column = atomic.ParquetDataset(
        filepath=str(tmp_path / "p.parquet"), load_args={"columns": ["nope"]}, rebuild=REBUILD
    )
    with pytest.raises(DatasetError, match="nope") as error:  # a config error, not damage
        wrong_column.load()
    assert "not a complete dataset" not in str(error.value)
    versioned = atomic.JSONDataset(filepath=str(tmp_path / "r.json"), version=Version(None, None))
    with pytest.raises(DatasetError, match="Did not find any versions"):
        versioned.load()


def test_the_catalog_forms_work_factory_versioned_and_inside_mlflow(tmp_path: Path) -> None:
    import mlflow

    config = {
        "{task}.pairs": {
            "type": "mindkd.io.atomic.ParquetDataset",
            "filepath": str(tmp_path / "{task}" / "pairs.parquet"),
            "versioned": True,
            "rebuild": REBUILD,
        },
        "{task}.report_table": {
            "type": "kedro_mlflow.io.artifacts.MlflowArtifactDataset",
            "artifact_path": "{task}/teachers",
            "dataset": {
                "type": "mindkd.io.atomic.CSVDataset",
                "filepath": str(tmp_path / "{task}" / "report.csv"),
                "rebuild": REBUILD,
            },
        },
    }
    catalog = DataCatalog.from_config(config)
    catalog.save("ihm.pairs", _table(5))
    assert len(catalog.load("ihm.pairs")) == 5
    assert catalog.to_config()[0]["ihm.pairs"] == {**config["{task}.pairs"], "filepath": str(
        tmp_path / "ihm" / "pairs.parquet"
    )}  # fmt: skip
    with mlflow.start_run() as run:
        catalog.save("ihm.report_table", _table(7))
    logged = mlflow.MlflowClient().list_artifacts(run.info.run_id, "ihm/teachers")
    assert [artifact.path for artifact in logged] == ["ihm/teachers/report.csv"]
    assert len(catalog.load("ihm.report_table")) == 7
    assert _leftovers(tmp_path) == []
    (tmp_path / "ihm" / "report.csv").write_text("stay_id,value\n0,0.0\n1,0.")
    with pytest.raises(DatasetError, match=r"report\.csv is not a complete dataset.*pairing"):
        catalog.load("ihm.report_table")


def test_a_live_save_is_untouched_and_a_remote_protocol_writes_in_place(tmp_path: Path) -> None:
    live = tmp_path / f".pairs.parquet.tmp-{os.getpid()}-0123abcd"  # this process: alive
    live.write_bytes(b"half")
    atomic.ParquetDataset(filepath=str(tmp_path / "pairs.parquet")).save(_table(3))
    assert live.read_bytes() == b"half"
    memory = atomic.JSONDataset(filepath=f"memory://{tmp_path.name}/r.json", rebuild=REBUILD)
    memory.save({"a": 1})
    assert memory.load() == {"a": 1}
