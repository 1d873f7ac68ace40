"""Read-only Kedro datasets over the raw MIMIC-IV files, read in place from the PhysioNet layout.

- ``MimicTableDataset(filepath, table)`` loads a small table (patients, admissions, icustays,
  diagnoses_icd, ...) whole, as a pandas DataFrame with the dtypes of ``mindkd.mimic.schemas``:
  integers as nullable ``Int64``, times as ``datetime64[s]``, numbers as ``float64``, text as
  ``str``.
- ``MimicEventsDataset(filepath, table, block_size)`` loads a lazy ``MimicEventReader`` for the
  event tables (chartevents ≈ 313 M rows, labevents ≈ 120 M rows): loading checks the header and
  nothing else; iterating streams arrow record batches from the gzip file with
  ``pyarrow.csv.open_csv`` (only the needed columns converted, types from the schema). A
  background thread decompresses and parses ``prefetch`` blocks ahead of the consumer, so the
  read overlaps the consumer's work on a second core while memory stays bounded by a few blocks
  (arrow's own parallel parser, ``use_threads``, reads ahead without bound and was no faster on
  gzip input, where decompression is the bottleneck: ``benchmarks/ehr_ingest.py``).

Both check the header first: a missing file, or a missing column, raises ``MimicSourceError`` naming
the file, the table, the column, the columns found and the config key to set. Extra columns are fine
(real exports add some). A file that ends early (a truncated download: "Truncated compressed
stream") or holds a header and no row raises ``MimicSourceError`` naming the file and what to do;
no MIMIC-IV table the pipeline reads is empty in a real export. Saving raises: the sources are never
written.

Example catalog entries::

    icustays:
      type: mindkd.io.raw.MimicTableDataset
      filepath: ${globals:mimic_iv_dir}/icu/icustays.csv.gz
      table: icustays
    chartevents:
      type: mindkd.io.raw.MimicEventsDataset
      filepath: ${globals:mimic_iv_dir}/icu/chartevents.csv.gz
      table: chartevents
"""

from __future__ import annotations

import csv
import io
import logging
import queue
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.csv as pa_csv
from kedro.io import AbstractDataset, DatasetError

from mindkd.mimic.schemas import MIMIC_IV_DIR_HINT, MimicSourceError, TableSchema, table_schema

logger = logging.getLogger(__name__)

DEFAULT_BLOCK_SIZE = 2 << 20
DEFAULT_USE_THREADS = False
DEFAULT_PREFETCH = 2
_HEADER_PROBE = 1 << 16


def _check_exists(path: Path, schema: TableSchema) -> None:
    if not path.is_file():
        raise MimicSourceError(
            f"MIMIC-IV file not found: {path} (table '{schema.name}', expected at "
            f"<mimic_iv_dir>/{schema.relpath}); {MIMIC_IV_DIR_HINT}."
        )


def read_header(path: Path) -> list[str]:
    """The column names of a (gzip) CSV file, read from its first line only."""
    with pa.input_stream(str(path), compression="detect") as stream:
        chunk = b""
        while b"\n" not in chunk:
            more = stream.read(_HEADER_PROBE)
            if not more:
                break
            chunk += more
    line = chunk.split(b"\n", 1)[0].decode("utf-8-sig").rstrip("\r")
    return next(csv.reader(io.StringIO(line)), [])


def check_columns(path: Path, schema: TableSchema, needed: Sequence[str]) -> list[str]:
    """Check that the file at ``path`` has every column of ``needed``; return the header."""
    _check_exists(path, schema)
    try:
        header = read_header(path)
    except (OSError, UnicodeDecodeError, pa.ArrowException) as exc:
        raise MimicSourceError(
            f"Cannot read the header of {path} (table '{schema.name}'): {exc}; is it a complete "
            f"gzip CSV export of MIMIC-IV (check with `gzip -t {path}`)? {MIMIC_IV_DIR_HINT}."
        ) from exc
    missing = [c for c in needed if c not in header]
    if missing:
        raise MimicSourceError(
            f"{path} (table '{schema.name}') is missing column(s) {missing}; columns found: "
            f"{header}. Expected the PhysioNet layout of <mimic_iv_dir>/{schema.relpath}; "
            f"{MIMIC_IV_DIR_HINT}."
        )
    return header


def _convert_options(schema: TableSchema, columns: Sequence[str]) -> pa_csv.ConvertOptions:
    types = schema.column_types
    return pa_csv.ConvertOptions(
        column_types={c: types[c] for c in columns},
        include_columns=list(columns),
        null_values=[""],
        true_values=[],
        false_values=[],
        strings_can_be_null=True,
        quoted_strings_can_be_null=True,
        timestamp_parsers=[pa_csv.ISO8601],
    )


def _unreadable(path: Path, schema: TableSchema, exc: Exception) -> MimicSourceError:
    return MimicSourceError(
        f"{path} (table '{schema.name}') cannot be read to its end: {exc}. The file is truncated "
        f"or corrupt (an interrupted download?): check it with `gzip -t {path}` and download it "
        f"again; {MIMIC_IV_DIR_HINT}."
    )


def _read_failure(path: Path, schema: TableSchema, exc: Exception) -> MimicSourceError:
    """A value that does not parse, or a file that ends early (truncated gzip), named as such."""
    if isinstance(exc, pa.ArrowInvalid) and "compress" not in str(exc).lower():
        return _conversion_error(path, schema, exc)
    return _unreadable(path, schema, exc)


def _no_rows(path: Path, schema: TableSchema) -> MimicSourceError:
    return MimicSourceError(
        f"{path} (table '{schema.name}') has a header but no rows: a MIMIC-IV export never has "
        f"an empty {schema.name} (a failed download or an emptied file?); download it again; "
        f"{MIMIC_IV_DIR_HINT}."
    )


def _conversion_error(path: Path, schema: TableSchema, exc: Exception) -> MimicSourceError:
    return MimicSourceError(
        f"{path} (table '{schema.name}') has a value that does not parse as its expected type: "
        f"{exc}. Expected types: "
        f"{ {c.name: str(c.type) for c in schema.columns} }."
    )


def _read_only(name: str) -> DatasetError:
    return DatasetError(
        f"{name} is read-only: the MIMIC-IV sources are never written. Save the result under a "
        "different catalog entry."
    )


def _resolve_columns(schema: TableSchema, columns: Sequence[str] | None) -> tuple[str, ...]:
    names = schema.column_names if columns is None else tuple(columns)
    unknown = [c for c in names if c not in schema.column_types]
    if unknown:
        raise MimicSourceError(
            f"Column(s) {unknown} are not part of the '{schema.name}' schema "
            f"{list(schema.column_names)} (the `columns` argument of the catalog entry)."
        )
    return names


def read_mimic_table(
    filepath: str | Path, table: str, columns: Sequence[str] | None = None
) -> pa.Table:
    """Read a small MIMIC-IV table whole as an arrow table with the schema's types."""
    path = Path(filepath)
    schema = table_schema(table)
    names = _resolve_columns(schema, columns)
    check_columns(path, schema, names)
    try:
        data = pa_csv.read_csv(
            str(path),
            read_options=pa_csv.ReadOptions(block_size=DEFAULT_BLOCK_SIZE),
            convert_options=_convert_options(schema, names),
        )
    except (pa.ArrowInvalid, OSError) as exc:
        raise _read_failure(path, schema, exc) from exc
    if not data.num_rows:
        raise _no_rows(path, schema)
    for name in schema.non_nullable_text():
        if name in names:
            position = data.schema.get_field_index(name)
            data = data.set_column(position, name, data[name].fill_null(""))
    return data.select(list(names))


def arrow_to_pandas(data: pa.Table) -> pd.DataFrame:
    """Arrow to pandas with stable dtypes: ints ``Int64`` (nullable), times ``datetime64[s]``."""
    return data.to_pandas(types_mapper={pa.int64(): pd.Int64Dtype()}.get)


class MimicTableDataset(AbstractDataset[None, pd.DataFrame]):
    """A small MIMIC-IV table loaded whole as a typed pandas DataFrame (read-only)."""

    def __init__(
        self,
        filepath: str,
        table: str,
        columns: list[str] | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> None:
        self._filepath = Path(filepath)
        self._schema = table_schema(table)
        self._columns = _resolve_columns(self._schema, columns)
        self.metadata = metadata

    def load(self) -> pd.DataFrame:
        data = read_mimic_table(self._filepath, self._schema.name, self._columns)
        logger.info("Read %s: %s rows from %s", self._schema.name, data.num_rows, self._filepath)
        return arrow_to_pandas(data)

    def save(self, data: None) -> None:
        raise _read_only(f"MimicTableDataset('{self._schema.name}', {self._filepath})")

    def _exists(self) -> bool:
        return self._filepath.is_file()

    def _describe(self) -> dict[str, Any]:
        return {"filepath": str(self._filepath), "table": self._schema.name}


class MimicEventReader:
    """A lazy, re-iterable stream of arrow record batches over one MIMIC-IV event file.

    Nothing is read until iteration, except the header (checked at construction). Each iteration
    opens the file again and streams it with ``pyarrow.csv.open_csv``: gzip is decompressed on the
    fly, ``block_size`` bytes of text at a time, and only ``columns`` are converted, to the schema's
    types. ``bytes_read`` tracks the compressed bytes consumed, for progress against ``size_bytes``.
    A value that does not parse raises ``MimicSourceError`` naming the file.
    """

    def __init__(
        self,
        path: Path,
        table: str,
        *,
        columns: Sequence[str] | None = None,
        block_size: int = DEFAULT_BLOCK_SIZE,
        use_threads: bool = DEFAULT_USE_THREADS,
        prefetch: int = DEFAULT_PREFETCH,
    ) -> None:
        self.path = Path(path)
        self.prefetch = int(prefetch)
        self.schema = table_schema(table)
        default = self.schema.stream_columns or self.schema.column_names
        self.columns = _resolve_columns(self.schema, default if columns is None else columns)
        self.block_size = int(block_size)
        self.use_threads = use_threads
        self.header = check_columns(self.path, self.schema, self.columns)
        self.size_bytes = self.path.stat().st_size
        self.bytes_read = 0

    @property
    def table(self) -> str:
        return self.schema.name

    @property
    def arrow_schema(self) -> pa.Schema:
        return self.schema.arrow_schema(self.columns)

    def __repr__(self) -> str:
        return (
            f"MimicEventReader({self.schema.name!r}, {str(self.path)!r}, "
            f"columns={list(self.columns)}, block_size={self.block_size})"
        )

    def __iter__(self) -> Iterator[pa.RecordBatch]:
        return self.batches()

    def batches(self) -> EventBatches:
        """Stream the file as record batches with the columns (in order) of ``self.columns``.

        With ``prefetch`` > 0 a background thread decompresses and parses up to ``prefetch``
        batches ahead (arrow releases the GIL), so the consumer's work overlaps the read while
        memory stays bounded by ``prefetch + 1`` batches. The iterator keeps ``size_bytes`` and
        ``bytes_read`` for progress and sizing.
        """
        source = self._read() if self.prefetch <= 0 else _prefetched(self._read(), self.prefetch)
        return EventBatches(self, source)

    def _read(self) -> Iterator[pa.RecordBatch]:
        self.bytes_read = 0
        compression = "gzip" if self.path.suffix == ".gz" else None
        with pa.OSFile(str(self.path), "rb") as raw:
            stream = pa.CompressedInputStream(raw, compression) if compression else raw
            try:
                reader = pa_csv.open_csv(
                    stream,
                    read_options=pa_csv.ReadOptions(
                        block_size=self.block_size, use_threads=self.use_threads
                    ),
                    convert_options=_convert_options(self.schema, self.columns),
                )
            except (pa.ArrowInvalid, OSError) as exc:
                raise _read_failure(self.path, self.schema, exc) from exc
            order = list(self.columns)
            rows = 0
            while True:
                try:
                    batch = reader.read_next_batch()
                except StopIteration:
                    break
                except (pa.ArrowInvalid, OSError) as exc:
                    raise _read_failure(self.path, self.schema, exc) from exc
                self.bytes_read = raw.tell()
                rows += batch.num_rows
                if batch.schema.names != order:
                    batch = batch.select(order)
                yield batch
            if not rows:
                raise _no_rows(self.path, self.schema)
        self.bytes_read = self.size_bytes


class EventBatches(Iterator[pa.RecordBatch]):
    """One pass over a ``MimicEventReader``: an iterator that also knows the file's size."""

    def __init__(self, reader: MimicEventReader, source: Iterator[pa.RecordBatch]) -> None:
        self._reader = reader
        self._source = source

    @property
    def size_bytes(self) -> int:
        return self._reader.size_bytes

    @property
    def bytes_read(self) -> int:
        return self._reader.bytes_read

    def __next__(self) -> pa.RecordBatch:
        return next(self._source)

    def close(self) -> None:
        """Stop reading (and the background thread) before the end of the file."""
        close = getattr(self._source, "close", None)
        if close is not None:
            close()


_DONE = object()


def _prefetched(source: Iterator[Any], depth: int) -> Iterator[Any]:
    """Run ``source`` in a background thread, at most ``depth`` items ahead of the consumer."""
    items: queue.Queue[Any] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def produce() -> None:
        try:
            for item in source:
                while not stop.is_set():
                    try:
                        items.put(item, timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            items.put(_DONE)
        except BaseException as exc:  # handed to the consumer, raised there
            items.put(exc)

    worker = threading.Thread(target=produce, name="mimic-csv-reader", daemon=True)
    worker.start()
    try:
        while True:
            item = items.get()
            if item is _DONE:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        while worker.is_alive():
            try:
                items.get(timeout=0.1)
            except queue.Empty:
                continue
        worker.join()


class MimicEventsDataset(AbstractDataset[None, MimicEventReader]):
    """A MIMIC-IV event table (chartevents, labevents) loaded as a lazy ``MimicEventReader``."""

    def __init__(
        self,
        filepath: str,
        table: str,
        block_size: int = DEFAULT_BLOCK_SIZE,
        *,
        columns: list[str] | None = None,
        use_threads: bool = DEFAULT_USE_THREADS,
        prefetch: int = DEFAULT_PREFETCH,
        metadata: dict[str, Any] | None = None,
    ) -> None:
        self._filepath = Path(filepath)
        self._table = table_schema(table).name
        self._prefetch = int(prefetch)
        self._block_size = int(block_size)
        self._columns = columns
        self._use_threads = use_threads
        self.metadata = metadata

    def load(self) -> MimicEventReader:
        return MimicEventReader(
            self._filepath,
            self._table,
            columns=self._columns,
            block_size=self._block_size,
            use_threads=self._use_threads,
            prefetch=self._prefetch,
        )

    def save(self, data: None) -> None:
        raise _read_only(f"MimicEventsDataset('{self._table}', {self._filepath})")

    def _exists(self) -> bool:
        return self._filepath.is_file()

    def _describe(self) -> dict[str, Any]:
        return {
            "filepath": str(self._filepath),
            "table": self._table,
            "block_size": self._block_size,
            "columns": self._columns,
            "prefetch": self._prefetch,
        }
