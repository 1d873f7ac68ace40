"""Datasets are written atomically and checked on load: a run killed while saving leaves nothing that
loads as complete, its leftovers are removed by the next save, and a damaged dataset names its
folder and how to rebuild it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pytest
from kedro.io.core import DatasetError, Version

from mindkd.io.array_store import ArrayStore, ArrayStoreDataset
from mindkd.io.event_parts import PARTS_FILE, EventPartsDataset
from mindkd.io.fsspec_base import remove_stale_staging
from mindkd.io.logit_cache import LogitCache, LogitCacheDataset
from mindkd.io.torch_state import TorchStateDictDataset
from mindkd.processing.ingest import RAW_EVENT_SCHEMA, EventStream

REBUILD = "re-run `kedro run --pipelines teachers`"


def _cache(rows: int = 20) -> LogitCache:
    table = pd.DataFrame(
        {
            "modality": ["ehr"] * rows,
            "key": np.arange(rows, dtype=np.int64),
            "member": ["lstm_small"] * rows,
            "split": ["train"] * rows,
            "logit_0": np.linspace(-1, 1, rows, dtype=np.float32),
        }
    )
    return LogitCache(table=table, provenance={"task": "ihm"})


KILLED_SAVE = """
import os, sys
import pandas as pd
from kedro.io.core import Version
sys.path.insert(0, {tests!r})
from test_atomic_writes import _cache
from mindkd.io.logit_cache import LogitCacheDataset

def die(self, handle, *args, **kwargs):  # half the parquet written, then a hard kill
    handle.write(b"PAR1" + b"x" * 1000)
    handle.flush()
    os._exit(9)

pd.DataFrame.to_parquet = die
LogitCacheDataset(filepath={path!r}, version=Version(None, None)).save(_cache())
"""


def test_a_save_killed_midway_leaves_no_version_and_is_cleaned_up(tmp_path: Path) -> None:
    path = tmp_path / "teacher_logits"
    LogitCacheDataset(filepath=str(path), version=Version(None, None)).save(_cache(12))
    child = subprocess.run(
        [
            sys.executable,
            "-c",
            KILLED_SAVE.format(tests=str(Path(__file__).parent), path=str(path)),
        ],
        check=False,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert child.returncode == 9, child.stderr
    leftovers = [p for p in path.rglob("*") if ".tmp-" in p.name]
    assert len(leftovers) == 1  # the killed run's staging folder, under no real name
    # the killed save is no version: the latest complete cache is the one before it
    before = LogitCacheDataset(filepath=str(path), version=Version(None, None)).load()
    assert len(before.table) == 12
    LogitCacheDataset(filepath=str(path), version=Version(None, None)).save(_cache())
    assert not [p for p in path.rglob("*") if ".tmp-" in p.name]  # the leftover is gone
    versions = [p for p in path.iterdir() if p.is_dir()]
    assert len(versions) == 2  # the killed run's version folder, left empty, is gone too
    loaded = LogitCacheDataset(filepath=str(path), version=Version(None, None)).load()
    assert len(loaded.table) == 20


def test_a_live_runs_staging_is_never_removed(tmp_path: Path) -> None:
    mine = tmp_path / f".cache.tmp-{os.getpid()}-abcd1234"
    mine.mkdir()
    dead = tmp_path / ".cache.tmp-999999999-abcd1234"  # no such pid
    dead.mkdir()
    assert remove_stale_staging(tmp_path) == [dead]
    assert mine.is_dir() and not dead.exists()


def test_a_damaged_logit_cache_names_its_folder_and_the_rebuild(tmp_path: Path) -> None:
    dataset = LogitCacheDataset(filepath=str(tmp_path / "cache"), rebuild=REBUILD)
    dataset.save(_cache())
    (tmp_path / "cache" / "logits.parquet").write_bytes(b"")  # emptied after the save
    with pytest.raises(DatasetError, match=r"cache is not a complete dataset: logits\.parquet "
                       r"cannot be read.*re-run `kedro run --pipelines teachers`"):  # fmt: skip
        dataset.load()
    dataset.save(_cache(30))
    _cache(10).table.to_parquet(tmp_path / "cache" / "logits.parquet", index=False)
    with pytest.raises(DatasetError, match=r"holds 10 rows, provenance\.json says 30"):
        dataset.load()


def _stream(buckets: int) -> EventStream:
    rows = 40
    table = pa.Table.from_pandas(
        pd.DataFrame(
            {
                "stay_id": np.arange(rows, dtype=np.int64),
                "charttime": pd.Series([pd.Timestamp("2180-01-01")] * rows).astype("datetime64[s]"),
                "itemid": np.full(rows, 220045),
                "value": ["80"] * rows,
                "valuenum": np.full(rows, 80.0),
                "valueuom": ["bpm"] * rows,
                "source": ["chart"] * rows,
            }
        ),
        RAW_EVENT_SCHEMA,
        preserve_index=False,
    )
    bucket = pc.bit_wise_and(table["stay_id"], buckets - 1)
    chunks = [(b, table.filter(pc.equal(bucket, b))) for b in range(buckets)]
    return EventStream(iter(chunks), RAW_EVENT_SCHEMA, buckets, {"complete": True})


def test_an_event_store_missing_a_bucket_or_rows_is_refused(tmp_path: Path) -> None:
    dataset = EventPartsDataset(
        str(tmp_path / "events"), rebuild="re-run `kedro run --pipelines ehr`"
    )
    dataset.save(_stream(4))
    assert dataset.load().num_rows() == 40
    assert (tmp_path / "events" / PARTS_FILE).is_file()
    (tmp_path / "events" / "part-00003.parquet").unlink()  # the last bucket lost in a copy
    with pytest.raises(DatasetError, match=r"events is not a complete dataset: 3 bucket files, "
                       r"_parts\.json says 4.*--pipelines ehr"):  # fmt: skip
        dataset.load()
    dataset.save(_stream(4))
    one = pd.read_parquet(tmp_path / "events" / "part-00001.parquet").head(2)
    one.to_parquet(tmp_path / "events" / "part-00001.parquet", index=False)
    with pytest.raises(DatasetError, match=r"bucket 1 \(part-00001\.parquet\) holds 2 rows"):
        dataset.load()


def test_truncated_weights_and_arrays_are_refused(tmp_path: Path) -> None:
    import torch

    weights = TorchStateDictDataset(filepath=str(tmp_path / "w.pt"), rebuild=REBUILD)
    weights.save({"w": torch.ones(100)})
    data = (tmp_path / "w.pt").read_bytes()
    (tmp_path / "w.pt").write_bytes(data[: len(data) // 2])
    with pytest.raises(DatasetError, match=r"w\.pt is not a complete dataset: torch cannot read"):
        weights.load()
    store = ArrayStoreDataset(filepath=str(tmp_path / "store"))
    store.save(
        ArrayStore(
            arrays={"values": np.ones((4, 3), dtype=np.float32)},
            index=pd.DataFrame({"stay_id": [1, 2, 3, 4], "row": [0, 1, 2, 3]}),
            key="stay_id",
        )
    )
    npy = tmp_path / "store" / "values.npy"
    npy.write_bytes(npy.read_bytes()[:-20])
    with pytest.raises(DatasetError, match=r"store is not a complete dataset: values\.npy"):
        store.load()
