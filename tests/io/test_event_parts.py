"""EventPartsDataset: a lazy stream saved bucket by bucket, loaded back as EventParts."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from kedro.io import DatasetError
from kedro.io.core import Version

from mindkd.io.event_parts import (
    STATS_FILE,
    EventParts,
    EventPartsDataset,
    MemoryEventParts,
    bucket_slices,
)
from mindkd.processing.ingest import EventStream

SCHEMA = pa.schema([("stay_id", pa.int64()), ("charttime", pa.timestamp("s")), ("v", pa.float32())])


def chunk(stays: list[int], start: int = 0) -> pa.Table:
    return pa.table(
        {
            "stay_id": pa.array(stays, pa.int64()),
            "charttime": pa.array([start + i for i in range(len(stays))], pa.int64()).cast(
                pa.timestamp("s")
            ),
            "v": pa.array([float(s % 7) for s in stays], pa.float32()),
        },
        schema=SCHEMA,
    )


def make_stream(n_buckets: int = 4, fail_after: int | None = None) -> EventStream:
    stats: dict[str, Any] = {"complete": False, "chunks": 0}

    def chunks() -> Iterator[tuple[int, pa.Table]]:
        for i, stays in enumerate([[1, 5], [2], [5, 9, 13], [1], [6, 2]]):
            if fail_after is not None and i == fail_after:
                raise RuntimeError("source broke")
            stats["chunks"] += 1
            yield stays[0] % n_buckets, chunk(stays, start=100 * i)
        stats["complete"] = True

    return EventStream(chunks(), SCHEMA, n_buckets, stats)


def test_save_then_load_round_trip(tmp_path: Path) -> None:
    dataset = EventPartsDataset(str(tmp_path / "events"), buffer_bytes=1)  # flush every chunk
    dataset.save(make_stream())
    parts = dataset.load()
    assert isinstance(parts, EventParts)
    assert parts.n_buckets == 4
    assert [f.name for f in parts.files] == [f"part-{b:05d}.parquet" for b in range(4)]
    assert parts.read(1)["stay_id"].to_pylist() == [1, 5, 5, 9, 13, 1]
    assert parts.read(2)["stay_id"].to_pylist() == [2, 6, 2]
    assert parts.read(0).num_rows == 0 and parts.read(3).num_rows == 0  # empty buckets exist
    assert parts.read(1).schema == SCHEMA  # second-resolution timestamps survive parquet
    assert parts.read(1)["charttime"].cast(pa.int64()).to_pylist() == [0, 1, 200, 201, 202, 300]
    assert parts.num_rows() == 9
    assert [b for b, _ in parts] == [0, 1, 2, 3]
    assert pq.ParquetFile(parts.files[1]).metadata.num_row_groups == 3
    # stats are those of the exhausted stream, not of the moment save started
    assert parts.stats == {"complete": True, "chunks": 5}
    assert json.loads((tmp_path / "events" / STATS_FILE).read_text())["complete"] is True


def test_overwrite_replaces_old_buckets(tmp_path: Path) -> None:
    dataset = EventPartsDataset(str(tmp_path / "events"))
    dataset.save(make_stream(n_buckets=8))
    dataset.save(make_stream(n_buckets=2))
    assert dataset.load().n_buckets == 2


def test_versioned(tmp_path: Path) -> None:
    dataset = EventPartsDataset(str(tmp_path / "events"), version=Version(None, None))
    assert not dataset.exists()
    dataset.save(make_stream())
    assert dataset.exists()
    parts = dataset.load()
    assert parts.path.parent.parent == tmp_path / "events"
    assert parts.path.name == "events"
    assert parts.num_rows() == 9


def test_failed_stream_leaves_nothing(tmp_path: Path) -> None:
    dataset = EventPartsDataset(str(tmp_path / "events"))
    with pytest.raises(DatasetError, match="source broke"):
        dataset.save(make_stream(fail_after=3))
    assert not dataset.exists()
    assert list(tmp_path.iterdir()) == []


def test_stream_is_single_use() -> None:
    stream = make_stream()
    list(stream)
    with pytest.raises(RuntimeError, match="already consumed"):
        iter(stream)


def test_rejects_something_else(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="saves an event stream"):
        EventPartsDataset(str(tmp_path / "x")).save(pa.table({"a": [1]}))  # type: ignore[arg-type]


def test_buffer_writes_one_row_group_per_bucket_per_flush(tmp_path: Path) -> None:
    dataset = EventPartsDataset(str(tmp_path / "events"), buffer_bytes=1 << 20)
    dataset.save(make_stream())
    parts = dataset.load()
    assert pq.ParquetFile(parts.files[1]).metadata.num_row_groups == 1  # all chunks buffered
    assert parts.read(1)["stay_id"].to_pylist() == [1, 5, 5, 9, 13, 1]


@pytest.mark.parametrize("grouped", [True, False])
def test_chunks_with_a_bucket_column(tmp_path: Path, grouped: bool) -> None:
    bucket = pa.array([0, 0, 1, 1, 3] if grouped else [0, 1, 0, 3, 1], pa.int32())
    stays = [4, 8, 1, 5, 3] if grouped else [4, 1, 8, 3, 5]
    table = chunk(stays).add_column(0, "bucket", bucket)
    stream = EventStream(iter([table, (2, chunk([6]))]), SCHEMA, 4, {})
    assert [b for b, _ in bucket_slices(table)] == [0, 1, 3]
    parts = MemoryEventParts(EventStream(iter([table]), SCHEMA, 4, {}))
    assert parts.read(1)["stay_id"].to_pylist() == [1, 5]  # kept in arrival order
    EventPartsDataset(str(tmp_path / "e"), buffer_bytes=1).save(stream)
    saved = EventParts(tmp_path / "e")
    assert [saved.read(b).num_rows for b in range(4)] == [2, 2, 1, 1]
    assert saved.read(0)["stay_id"].to_pylist() == [4, 8]


def test_bucket_out_of_range_is_an_error(tmp_path: Path) -> None:
    stream = EventStream(iter([(7, chunk([7]))]), SCHEMA, 4, {})
    with pytest.raises(DatasetError, match=r"bucket 7 outside 0\.\.3"):
        EventPartsDataset(str(tmp_path / "e")).save(stream)


def test_whole_buckets_are_written_bucket_after_bucket(tmp_path: Path) -> None:
    def chunks() -> Iterator[tuple[int, pa.Table]]:
        yield 2, chunk([2, 6])
        yield 0, chunk([4])

    stream = EventStream(chunks(), SCHEMA, 4, {"ok": True}, whole_buckets=True)
    EventPartsDataset(str(tmp_path / "e")).save(stream)
    parts = EventParts(tmp_path / "e")
    assert [parts.read(b).num_rows for b in range(4)] == [1, 0, 2, 0]

    def consecutive() -> Iterator[tuple[int, pa.Table]]:  # a bucket cleaned in slices
        yield 1, chunk([1])
        yield 1, chunk([5, 9])
        yield 3, chunk([3])

    stream = EventStream(consecutive(), SCHEMA, 4, {}, whole_buckets=True)
    EventPartsDataset(str(tmp_path / "g")).save(stream)
    parts = EventParts(tmp_path / "g")
    assert parts.read(1)["stay_id"].to_pylist() == [1, 5, 9]
    assert pq.ParquetFile(parts.files[1]).metadata.num_row_groups == 2  # one per chunk
    assert [parts.bucket_rows(b) for b in range(4)] == [0, 3, 0, 1]
    assert [t.num_rows for t in parts.iter_batches(1, ["stay_id"], batch_rows=2)] == [2, 1]

    def twice() -> Iterator[tuple[int, pa.Table]]:
        yield 1, chunk([1])
        yield 2, chunk([2])
        yield 1, chunk([5])

    with pytest.raises(DatasetError, match="came twice"):
        EventPartsDataset(str(tmp_path / "f")).save(
            EventStream(twice(), SCHEMA, 4, {}, whole_buckets=True)
        )
