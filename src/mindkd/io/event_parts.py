"""``EventPartsDataset``: a bucketed parquet store that saves a lazy event stream in flat memory.

The pattern, for streams too big for memory with Kedro's "nodes do not write files" rule:

1. A node returns a lazy stream instead of data: an object that iterates ``(bucket, pa.Table)``
   chunks and carries ``schema``, ``n_buckets`` and a ``stats`` dict that fills while it is consumed
   (``mindkd.processing.ingest.EventStream``). The node itself reads nothing.
2. The catalog entry of that output is an ``EventPartsDataset``. Its ``save`` consumes the stream,
   appending each chunk to its bucket's parquet file (one ``pyarrow.parquet.ParquetWriter`` per
   bucket; chunks are buffered per bucket up to ``row_group_rows`` rows, with at most
   ``buffer_bytes`` buffered over all buckets, so memory stays flat whatever the input size),
   then writes ``_stats.json`` with the stream's final stats. The folder is written under a
   temporary name and renamed when complete, so a failed run never leaves a half-written store.
3. Its ``load`` returns an ``EventParts``: the list of bucket files, ``stats``, ``read(bucket)`` and
   iteration over ``(bucket, table)``. The next node (e.g. pass 2, cleaning) works bucket by bucket
   and returns another stream, saved by another ``EventPartsDataset``.

Layout of one store (``versioned: true`` puts it under ``<filepath>/<version>/<name>/``)::

    <filepath>/part-00000.parquet ... part-<n_buckets - 1>.parquet, _stats.json

Example catalog entry::

    ehr_events_raw:
      type: mindkd.io.event_parts.EventPartsDataset
      filepath: data/02_intermediate/ehr_events_raw
      versioned: true
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path, PurePosixPath
from typing import Any, Protocol

import pyarrow as pa
import pyarrow.ipc
import pyarrow.parquet as pq
from kedro.io.core import AbstractVersionedDataset, DatasetError, Version

logger = logging.getLogger(__name__)

STATS_FILE = "_stats.json"
SCHEMA_FILE = "_schema.arrow"
PART_FORMAT = "part-{:05d}.parquet"


class EventStreamLike(Protocol):
    """What ``EventPartsDataset.save`` consumes (``mindkd.processing.ingest.EventStream``)."""

    schema: pa.Schema
    n_buckets: int
    stats: Mapping[str, Any]
    whole_buckets: bool  # each bucket comes in one chunk: its file is closed once written

    def __iter__(self) -> Iterator[tuple[int, pa.Table]]: ...


class EventParts:
    """A saved event store: one parquet file per bucket, plus the stats of the stream behind it."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        stats_path = self.path / STATS_FILE
        if not stats_path.is_file():
            raise DatasetError(f"{self.path} is not a complete event store: {STATS_FILE} missing.")
        self.stats: dict[str, Any] = json.loads(stats_path.read_text())
        self.files: list[Path] = sorted(self.path.glob("part-*.parquet"))
        self.n_buckets = len(self.files)
        expected = [self.path / PART_FORMAT.format(b) for b in range(self.n_buckets)]
        if self.files != expected:
            raise DatasetError(
                f"{self.path}: bucket files are not part-00000 .. part-N: {self.files}"
            )

        schema_path = self.path / SCHEMA_FILE
        # parquet has no second-resolution timestamps: the saved arrow schema restores them
        self.schema: pa.Schema = (
            pa.ipc.read_schema(pa.py_buffer(schema_path.read_bytes()))
            if schema_path.is_file()
            else pq.read_schema(self.files[0])
        )

    def read(self, bucket: int, columns: list[str] | None = None) -> pa.Table:
        """Bucket ``bucket`` whole, as one arrow table with the saved schema."""
        data = pq.read_table(self.files[bucket], columns=columns)
        names = data.schema.names
        return data.cast(pa.schema([self.schema.field(n) for n in names]))

    def num_rows(self) -> int:
        return sum(pq.ParquetFile(f).metadata.num_rows for f in self.files)

    def __iter__(self) -> Iterator[tuple[int, pa.Table]]:
        for bucket in range(self.n_buckets):
            yield bucket, self.read(bucket)

    def __len__(self) -> int:
        return self.n_buckets

    def to_table(self, columns: list[str] | None = None) -> pa.Table:
        """Every bucket in one table (small data only)."""
        return pa.concat_tables(self.read(b, columns) for b in range(self.n_buckets))

    def __repr__(self) -> str:
        return f"EventParts({str(self.path)!r}, n_buckets={self.n_buckets})"


class _BucketWriter:
    """Per-bucket parquet writers with bounded per-bucket buffers."""

    def __init__(
        self,
        folder: Path,
        schema: pa.Schema,
        row_group_rows: int,
        buffer_bytes: int,
        compression: str,
        whole_buckets: bool = False,
    ) -> None:
        self.folder = folder
        self.whole_buckets = whole_buckets
        self.closed: set[int] = set()
        self.schema = schema
        self.row_group_rows = row_group_rows
        self.buffer_bytes = buffer_bytes
        self.compression = compression
        self.writers: dict[int, pq.ParquetWriter] = {}
        self.pending: dict[int, list[pa.Table]] = {}
        self.pending_rows: dict[int, int] = {}
        self.pending_bytes: dict[int, int] = {}
        self.rows: dict[int, int] = {}

    def add(self, bucket: int, table: pa.Table) -> None:
        if bucket in self.closed:
            raise DatasetError(f"Bucket {bucket} came twice in a stream of whole buckets")
        if self.whole_buckets:
            self._write(bucket, [table])
            self.writers.pop(bucket).close()
            self.closed.add(bucket)
            return
        self.pending.setdefault(bucket, []).append(table)
        self.pending_rows[bucket] = self.pending_rows.get(bucket, 0) + table.num_rows
        self.pending_bytes[bucket] = self.pending_bytes.get(bucket, 0) + table.nbytes
        if self.pending_rows[bucket] >= self.row_group_rows:
            self.flush(bucket)
        while sum(self.pending_bytes.values()) > self.buffer_bytes:
            self.flush(max(self.pending_bytes, key=self.pending_bytes.__getitem__))

    def flush(self, bucket: int) -> None:
        tables = self.pending.pop(bucket, [])
        self.pending_rows.pop(bucket, None)
        self.pending_bytes.pop(bucket, None)
        if tables:
            self._write(bucket, tables)

    def _write(self, bucket: int, tables: list[pa.Table]) -> None:
        writer = self.writers.get(bucket)
        if writer is None:
            writer = pq.ParquetWriter(
                self.folder / PART_FORMAT.format(bucket), self.schema, compression=self.compression
            )
            self.writers[bucket] = writer
        data = pa.concat_tables([self._conform(t) for t in tables])
        writer.write_table(data, row_group_size=max(self.row_group_rows, data.num_rows))
        self.rows[bucket] = self.rows.get(bucket, 0) + data.num_rows

    def _conform(self, table: pa.Table) -> pa.Table:
        if table.schema == self.schema:
            return table
        return table.select(self.schema.names).cast(self.schema)

    def close(self, n_buckets: int) -> None:
        for bucket in list(self.pending):
            self.flush(bucket)
        for writer in self.writers.values():
            writer.close()
        for bucket in range(n_buckets):
            if bucket not in self.writers and bucket not in self.closed:
                pq.write_table(
                    self.schema.empty_table(),
                    self.folder / PART_FORMAT.format(bucket),
                    compression=self.compression,
                )

    def abort(self) -> None:
        for writer in self.writers.values():
            try:
                writer.close()
            except (OSError, pa.ArrowException):  # already failing: keep the first error
                logger.debug("Ignoring an error while closing a writer after a failure")


def write_event_parts(
    stream: Iterable[tuple[int, pa.Table]],
    path: Path,
    schema: pa.Schema,
    n_buckets: int,
    *,
    stats: Mapping[str, Any] | None = None,
    row_group_rows: int = 1 << 18,
    buffer_bytes: int = 32 << 20,
    compression: str = "snappy",
    whole_buckets: bool = False,
) -> dict[int, int]:
    """Consume ``stream`` into the store at ``path`` (replaced atomically); return rows per bucket.

    ``stats`` is read after the stream is exhausted (a lazy stream's stats are final only then);
    when None, the stream's own ``stats`` attribute is used.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    staging = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    writer = _BucketWriter(
        staging, schema, row_group_rows, buffer_bytes, compression, whole_buckets=whole_buckets
    )
    try:
        for bucket, table in stream:
            if not 0 <= bucket < n_buckets:
                raise DatasetError(f"Chunk for bucket {bucket} outside 0..{n_buckets - 1}")
            if table.num_rows:
                writer.add(bucket, table)
        writer.close(n_buckets)
        final_stats = stats if stats is not None else getattr(stream, "stats", {})
        (staging / SCHEMA_FILE).write_bytes(schema.serialize().to_pybytes())
        (staging / STATS_FILE).write_text(json.dumps(final_stats, indent=2, sort_keys=False))
        if path.exists():
            shutil.rmtree(path)
        staging.rename(path)
    except BaseException:
        writer.abort()
        shutil.rmtree(staging, ignore_errors=True)
        raise
    logger.info("Wrote %s rows in %s buckets to %s", sum(writer.rows.values()), n_buckets, path)
    return writer.rows


class EventPartsDataset(AbstractVersionedDataset[EventStreamLike, EventParts]):
    """Saves a lazy event stream bucket by bucket to parquet; loads it back as ``EventParts``.

    Args:
        filepath: the store's folder (local filesystem).
        row_group_rows: rows buffered per bucket before they are written as a parquet row group.
        buffer_bytes: the most bytes buffered over all buckets; past it, the biggest buffer is
            written.
        compression: parquet codec.
        version: Kedro versioning (``versioned: true`` in the catalog).
    """

    def __init__(
        self,
        filepath: str,
        *,
        row_group_rows: int = 1 << 18,
        buffer_bytes: int = 32 << 20,
        compression: str = "snappy",
        version: Version | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(PurePosixPath(Path(filepath).as_posix()), version)
        self._row_group_rows = int(row_group_rows)
        self._buffer_bytes = int(buffer_bytes)
        self._compression = compression
        self.metadata = metadata

    def load(self) -> EventParts:
        return EventParts(Path(str(self._get_load_path())))

    def save(self, data: EventStreamLike) -> None:
        for attribute in ("schema", "n_buckets", "stats"):
            if not hasattr(data, attribute):
                raise DatasetError(
                    f"EventPartsDataset saves an event stream (with schema, n_buckets, stats), "
                    f"got {type(data).__name__}"
                )
        write_event_parts(
            data,
            Path(str(self._get_save_path())),
            data.schema,
            data.n_buckets,
            row_group_rows=self._row_group_rows,
            buffer_bytes=self._buffer_bytes,
            compression=self._compression,
            whole_buckets=bool(getattr(data, "whole_buckets", False)),
        )

    def _exists(self) -> bool:
        try:
            path = Path(str(self._get_load_path()))
        except DatasetError:
            return False
        return (path / STATS_FILE).is_file()

    def _describe(self) -> dict[str, Any]:
        return {
            "filepath": str(self._filepath),
            "version": self._version,
            "row_group_rows": self._row_group_rows,
            "compression": self._compression,
        }
