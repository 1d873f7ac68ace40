"""``EventPartsDataset``: a bucketed parquet store that saves a lazy event stream in flat memory.

The pattern, for streams too big for memory with Kedro's "nodes do not write files" rule:

1. A node returns a lazy stream instead of data: an object that iterates chunks and carries
   ``schema``, ``n_buckets`` and a ``stats`` dict that fills while it is consumed
   (``mindkd.processing.ingest.EventStream``). A chunk is either a ``(bucket, pa.Table)`` pair or
   a ``pa.Table`` with a ``bucket`` column, its rows grouped by bucket (cheaper: one table per
   input batch instead of one per bucket). The node itself reads nothing.
2. The catalog entry of that output is an ``EventPartsDataset``. Its ``save`` consumes the stream
   into one parquet file per bucket (one ``pyarrow.parquet.ParquetWriter`` each): chunks are
   buffered up to ``buffer_bytes`` over all buckets, then every bucket's rows are appended as a
   row group, so memory stays flat whatever the input size. A stream of whole buckets
   (``whole_buckets``: a bucket's chunks come one after another, as pass 2 makes them) is
   written chunk by chunk, one row group each, and a bucket's file is closed when the next
   bucket starts. Then ``_parts.json`` gets the bucket count and the rows of every bucket,
   ``_schema.arrow`` the arrow schema and ``_stats.json`` (written last) the stream's final stats.
   The folder is written under a temporary name and renamed when complete, so a failed or killed
   run never leaves a half-written store (``mindkd.io.fsspec_base.staged``).
3. Its ``load`` checks the store is whole (every bucket file there, each with the rows
   ``_parts.json`` says) and returns an ``EventParts``: the list of bucket files, ``stats``,
   ``read(bucket)``, ``bucket_rows(bucket)`` and ``iter_batches(bucket)`` (a bucket too large
   to hold, in batches) and iteration over ``(bucket, table)``. The next node (e.g. pass 2,
   cleaning) works bucket by bucket and returns another stream, saved by another
   ``EventPartsDataset``.

Layout of one store (``versioned: true`` puts it under ``<filepath>/<version>/<name>/``)::

    <filepath>/part-00000.parquet ... part-<n_buckets - 1>.parquet, _stats.json, _schema.arrow

Example catalog entry::

    ehr_events_raw:
      type: mindkd.io.event_parts.EventPartsDataset
      filepath: data/02_intermediate/ehr_events_raw
      versioned: true
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path, PurePosixPath
from typing import Any, Protocol

import numpy as np
import pyarrow as pa
import pyarrow.ipc
import pyarrow.parquet as pq
from kedro.io.core import AbstractVersionedDataset, DatasetError, Version

from mindkd.io.fsspec_base import incomplete, staged

logger = logging.getLogger(__name__)

STATS_FILE = "_stats.json"
SCHEMA_FILE = "_schema.arrow"
PARTS_FILE = "_parts.json"
PART_FORMAT = "part-{:05d}.parquet"
DEFAULT_BUFFER_BYTES = 16 << 20
#: A chunk of a stream: one bucket's rows as ``(bucket, table)``, or a table of many buckets'
#: rows with a ``BUCKET_COLUMN`` (int), grouped by bucket (``mindkd.processing.ingest.Chunk``).
BUCKET_COLUMN = "bucket"
Chunk = tuple[int, pa.Table] | pa.Table


class EventStreamLike(Protocol):
    """What ``EventPartsDataset.save`` consumes (``mindkd.processing.ingest.EventStream``)."""

    schema: pa.Schema
    n_buckets: int
    stats: Mapping[str, Any]
    whole_buckets: bool  # a bucket's chunks are consecutive: its file closes when the next starts

    def __iter__(self) -> Iterator[Chunk]: ...


class EventParts:
    """A saved event store: one parquet file per bucket, plus the stats of the stream behind it."""

    def __init__(self, path: Path, rebuild: str | None = None) -> None:
        self.path = Path(path)
        stats_path = self.path / STATS_FILE
        if not stats_path.is_file():
            raise incomplete(str(self.path), f"{STATS_FILE} (written last) is missing", rebuild)
        self.stats: dict[str, Any] = json.loads(stats_path.read_text())
        self.files: list[Path] = sorted(self.path.glob("part-*.parquet"))
        self.n_buckets = len(self.files)
        expected = [self.path / PART_FORMAT.format(b) for b in range(self.n_buckets)]
        if self.files != expected:
            raise incomplete(
                str(self.path),
                f"bucket files are not part-00000 .. part-N: {[f.name for f in self.files]}",
                rebuild,
            )
        self._check_parts(rebuild)
        schema_path = self.path / SCHEMA_FILE
        # parquet has no second-resolution timestamps: the saved arrow schema restores them
        self.schema: pa.Schema = (
            pa.ipc.read_schema(pa.py_buffer(schema_path.read_bytes()))
            if schema_path.is_file()
            else pq.read_schema(self.files[0])
        )

    def _check_parts(self, rebuild: str | None) -> None:
        """Every bucket written has its file, with the rows written (from ``_parts.json``)."""
        parts_path = self.path / PARTS_FILE
        if not parts_path.is_file():  # a store from before _parts.json: the file count only
            return
        parts = json.loads(parts_path.read_text())
        if parts["n_buckets"] != self.n_buckets:
            raise incomplete(
                str(self.path),
                f"{self.n_buckets} bucket files, {PARTS_FILE} says {parts['n_buckets']}",
                rebuild,
            )
        for bucket, (file, rows) in enumerate(zip(self.files, parts["rows"], strict=True)):
            try:
                found = pq.ParquetFile(file).metadata.num_rows
            except (OSError, pa.ArrowException) as exc:
                raise incomplete(str(self.path), f"{file.name}: {exc}", rebuild) from exc
            if found != rows:
                raise incomplete(
                    str(self.path),
                    f"bucket {bucket} ({file.name}) holds {found} rows, {PARTS_FILE} says {rows}",
                    rebuild,
                )

    def read(self, bucket: int, columns: list[str] | None = None) -> pa.Table:
        """Bucket ``bucket`` whole, as one arrow table with the saved schema."""
        return self._typed(pq.read_table(self.files[bucket], columns=columns))

    def _typed(self, data: pa.Table) -> pa.Table:
        return data.cast(pa.schema([self.schema.field(n) for n in data.schema.names]))

    def bucket_rows(self, bucket: int) -> int:
        """Rows of bucket ``bucket``, from the file's footer (no data read)."""
        return int(pq.ParquetFile(self.files[bucket]).metadata.num_rows)

    def iter_batches(
        self, bucket: int, columns: list[str] | None = None, batch_rows: int = 1 << 17
    ) -> Iterator[pa.Table]:
        """Bucket ``bucket`` in file order, ``batch_rows`` rows at a time (memory: one batch)."""
        with pq.ParquetFile(self.files[bucket]) as file:
            for batch in file.iter_batches(batch_size=batch_rows, columns=columns):
                yield self._typed(pa.Table.from_batches([batch]))

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


def bucket_slices(chunk: Chunk) -> Iterator[tuple[int, pa.Table]]:
    """The ``(bucket, rows)`` pieces of one stream chunk (zero-copy slices when grouped)."""
    if isinstance(chunk, pa.Table):
        bucket = chunk.column(BUCKET_COLUMN).to_numpy()
        body = chunk.drop_columns([BUCKET_COLUMN])
        if len(bucket) > 1 and bool(np.any(bucket[1:] < bucket[:-1])):  # not grouped: group it
            order = np.argsort(bucket, kind="stable")
            body, bucket = body.take(pa.array(order)), bucket[order]
        if not len(bucket):
            return
        starts = np.flatnonzero(np.concatenate([[True], bucket[1:] != bucket[:-1]]))
        ends = np.append(starts[1:], len(bucket))
        for start, end in zip(starts.tolist(), ends.tolist(), strict=True):
            yield int(bucket[start]), body.slice(start, end - start)
        return
    bucket_id, table = chunk
    yield int(bucket_id), table


class MemoryEventParts:
    """An event stream collected in memory, bucket by bucket (tests and small data)."""

    def __init__(self, stream: EventStreamLike) -> None:
        pieces: dict[int, list[pa.Table]] = {}
        for chunk in stream:
            for bucket, table in bucket_slices(chunk):
                pieces.setdefault(bucket, []).append(table)
        self.schema = stream.schema
        self.n_buckets = stream.n_buckets
        self.stats = stream.stats
        empty = stream.schema.empty_table()
        self._tables = {
            b: pa.concat_tables(pieces.get(b, [empty])).combine_chunks()
            for b in range(self.n_buckets)
        }

    def read(self, bucket: int) -> pa.Table:
        return self._tables[bucket]

    def bucket_rows(self, bucket: int) -> int:
        return self._tables[bucket].num_rows

    def iter_batches(
        self, bucket: int, columns: list[str] | None = None, batch_rows: int = 1 << 17
    ) -> Iterator[pa.Table]:
        table = self._tables[bucket]
        table = table.select(columns) if columns is not None else table
        for start in range(0, table.num_rows, batch_rows):
            yield table.slice(start, batch_rows)

    def __iter__(self) -> Iterator[tuple[int, pa.Table]]:
        return iter(self._tables.items())

    def to_table(self) -> pa.Table:
        return pa.concat_tables(self._tables.values())


class _BucketWriter:
    """One parquet writer per bucket, fed from a buffer of at most ``buffer_bytes``.

    When the buffer is full every bucket's buffered rows are written as one row group, so
    row groups hold about ``buffer_bytes / n_buckets`` and memory stays flat whatever the input.
    """

    def __init__(
        self,
        folder: Path,
        schema: pa.Schema,
        n_buckets: int,
        *,
        buffer_bytes: int,
        compression: str,
        whole_buckets: bool = False,
    ) -> None:
        self.folder = folder
        self.schema = schema
        self.n_buckets = n_buckets
        self.buffer_bytes = buffer_bytes
        self.compression = compression
        self.whole_buckets = whole_buckets
        self.writers: dict[int, pq.ParquetWriter] = {}
        self.closed: set[int] = set()
        self.current: int | None = None  # whole buckets: the bucket being written
        self.pending: dict[int, list[pa.Table]] = {}
        self.pending_bytes = 0
        self.rows: dict[int, int] = {}

    def add(self, chunk: Chunk) -> None:
        for bucket, table in bucket_slices(chunk):
            if not 0 <= bucket < self.n_buckets:
                raise DatasetError(f"Chunk for bucket {bucket} outside 0..{self.n_buckets - 1}")
            if self.whole_buckets and bucket != self.current:
                self._close_current()
            if bucket in self.closed:
                raise DatasetError(
                    f"Bucket {bucket} came twice, after another bucket, in a stream of whole buckets"
                )
            if self.whole_buckets:
                self.current = bucket
                if table.num_rows:
                    self._write(bucket, [table])
                continue
            if not table.num_rows:
                continue
            self.pending.setdefault(bucket, []).append(table)
            self.pending_bytes += table.nbytes
        if self.pending_bytes >= self.buffer_bytes:
            self.flush()

    def _close_current(self) -> None:
        if self.current is None:
            return
        writer = self.writers.pop(self.current, None)
        if writer is not None:
            writer.close()
        self.closed.add(self.current)
        self.current = None

    def flush(self) -> None:
        pending, self.pending, self.pending_bytes = self.pending, {}, 0
        for bucket in sorted(pending):
            self._write(bucket, pending[bucket])

    def _write(self, bucket: int, tables: list[pa.Table]) -> None:
        writer = self.writers.get(bucket)
        if writer is None:
            writer = pq.ParquetWriter(
                self.folder / PART_FORMAT.format(bucket),
                self.schema,
                compression=self.compression,
                # dictionaries pay off for text only; statistics never (buckets are read whole)
                use_dictionary=[f.name for f in self.schema if pa.types.is_string(f.type)],
                write_statistics=False,
            )
            self.writers[bucket] = writer
        data = pa.concat_tables([self._conform(t) for t in tables])
        writer.write_table(data, row_group_size=max(1, data.num_rows))
        self.rows[bucket] = self.rows.get(bucket, 0) + data.num_rows

    def _conform(self, table: pa.Table) -> pa.Table:
        if table.schema == self.schema:
            return table
        return table.select(self.schema.names).cast(self.schema)

    def close(self) -> None:
        self.flush()
        self._close_current()
        for writer in self.writers.values():
            writer.close()
        for bucket in range(self.n_buckets):
            if bucket not in self.rows:  # never written: an empty file
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
    stream: Iterable[Chunk],
    path: Path,
    schema: pa.Schema,
    n_buckets: int,
    *,
    stats: Mapping[str, Any] | None = None,
    buffer_bytes: int = DEFAULT_BUFFER_BYTES,
    compression: str = "snappy",
    whole_buckets: bool = False,
) -> dict[int, int]:
    """Consume ``stream`` into the store at ``path`` (replaced atomically); return rows per bucket.

    ``stats`` is read after the stream is exhausted (a lazy stream's stats are final only then);
    when None, the stream's own ``stats`` attribute is used.
    """
    path = Path(path)
    with staged(path) as staging:
        staging.mkdir()
        writer = _BucketWriter(
            staging,
            schema,
            n_buckets,
            buffer_bytes=buffer_bytes,
            compression=compression,
            whole_buckets=whole_buckets,
        )
        try:
            for chunk in stream:
                writer.add(chunk)
            writer.close()
        except BaseException:
            writer.abort()
            raise
        final_stats = stats if stats is not None else getattr(stream, "stats", {})
        rows = [writer.rows.get(b, 0) for b in range(n_buckets)]
        (staging / PARTS_FILE).write_text(json.dumps({"n_buckets": n_buckets, "rows": rows}))
        (staging / SCHEMA_FILE).write_bytes(schema.serialize().to_pybytes())
        (staging / STATS_FILE).write_text(json.dumps(final_stats, indent=2, sort_keys=False))
    logger.info("Wrote %s rows in %s buckets to %s", sum(writer.rows.values()), n_buckets, path)
    return writer.rows


class EventPartsDataset(AbstractVersionedDataset[EventStreamLike, EventParts]):
    """Saves a lazy event stream bucket by bucket to parquet; loads it back as ``EventParts``.

    Args:
        filepath: the store's folder (local filesystem).
        buffer_bytes: the most bytes buffered over all buckets; then every bucket's rows are
            written as a row group.
        compression: parquet codec.
        version: Kedro versioning (``versioned: true`` in the catalog).
    """

    def __init__(
        self,
        filepath: str,
        *,
        buffer_bytes: int = DEFAULT_BUFFER_BYTES,
        compression: str = "snappy",
        version: Version | None = None,
        metadata: dict[str, Any] | None = None,
        rebuild: str | None = None,
    ) -> None:
        super().__init__(PurePosixPath(Path(filepath).as_posix()), version)
        self._rebuild = rebuild
        self._buffer_bytes = int(buffer_bytes)
        self._compression = compression
        self.metadata = metadata

    def load(self) -> EventParts:
        return EventParts(Path(str(self._get_load_path())), self._rebuild)

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
            "buffer_bytes": self._buffer_bytes,
            "compression": self._compression,
        }
