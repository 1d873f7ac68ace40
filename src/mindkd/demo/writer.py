"""Streaming gzip CSV writers: parallel compression, byte-identical output, flat memory.

Each ``CsvGzWriter`` owns one ``.csv.gz`` file holding one gzip member (header with mtime 0 and no
file name, so equal content gives equal bytes). Tables are appended in chunks; each chunk is cut
into pieces that background threads format (pyarrow's CSV writer) and compress (raw deflate ending
in a sync flush, as pigz does), both of which release the GIL. The pieces are written in order by
the calling thread, which also keeps the CRC-32 and length for the gzip trailer. Any gzip reader
sees one ordinary stream.
"""

from __future__ import annotations

import csv
import io
import logging
import struct
import zlib
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from types import TracebackType

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

logger = logging.getLogger(__name__)

_NEEDS_QUOTES = r'[,"\r\n]'
#: gzip header: magic, deflate, no flags, mtime 0, "fastest" extra flags, unknown OS.
_GZIP_HEADER = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x04\xff"
_PIECE_ROWS = 131_072
_THREADS = 2
_MAX_PENDING = 6


def _needs_quotes(table: pa.Table) -> bool:
    """Whether some text field holds a comma, a quote or a line break."""
    for column in table.columns:
        if pa.types.is_string(column.type) and table.num_rows:
            if pc.any(pc.match_substring_regex(column, _NEEDS_QUOTES)).as_py():
                return True
    return False


def table_to_csv(table: pa.Table) -> bytes | pa.Buffer:
    """CSV rows without a header, formatted like the PhysioNet exports.

    Fields are bare (no quotes) unless they hold a comma, quote or line break, as PostgreSQL
    writes them; numbers use the shortest representation (``91``, ``98.6``), times
    ``YYYY-MM-DD HH:MM:SS``, nulls an empty field. The fast path is pyarrow's writer; tables
    that need quotes (the dictionary tables) go through Python's ``csv`` module. Headers are
    written by the callers: pyarrow quotes column names, PhysioNet does not.
    """
    if _needs_quotes(table):
        text = io.StringIO()
        writer = csv.writer(text, lineterminator="\n", quoting=csv.QUOTE_MINIMAL)
        columns = [pc.cast(c, pa.string()).to_pylist() for c in table.columns]
        writer.writerows(zip(*columns, strict=True))
        return text.getvalue().encode()
    sink = pa.BufferOutputStream()  # native sink: formatting runs without the GIL
    options = pacsv.WriteOptions(include_header=False, quoting_style="none")
    pacsv.write_csv(table, sink, options)
    return sink.getvalue()


def _encode(table: pa.Table, level: int) -> tuple[bytes | pa.Buffer, bytes]:
    """(CSV bytes, raw deflate of them ending in a sync flush): one piece of a gzip member."""
    raw = table_to_csv(table)
    deflate = zlib.compressobj(level, zlib.DEFLATED, -15)
    return raw, deflate.compress(raw) + deflate.flush(zlib.Z_SYNC_FLUSH)


class CsvGzWriter:
    """Append pyarrow tables with one fixed column list to a gzip CSV file."""

    def __init__(self, path: Path, columns: tuple[str, ...], level: int, pool: WriterPool) -> None:
        self.path = path
        self.columns = columns
        self.level = level
        self.rows = 0
        self._pool = pool
        self._crc = 0
        self._size = 0
        path.parent.mkdir(parents=True, exist_ok=True)
        self._file = path.open("wb")
        self._file.write(_GZIP_HEADER)
        self.append_piece((",".join(columns) + "\n").encode(), None)

    def write(self, table: pa.Table) -> None:
        """Queue ``table`` (columns in the file's order) for formatting and compression."""
        if tuple(table.column_names) != self.columns:
            raise ValueError(
                f"{self.path.name}: columns {table.column_names} differ from {list(self.columns)}"
            )
        self.rows += table.num_rows
        for start in range(0, table.num_rows, _PIECE_ROWS):
            self._pool.submit(self, table.slice(start, _PIECE_ROWS))

    def append_piece(self, raw: bytes | pa.Buffer, compressed: bytes | None) -> None:
        if compressed is None:
            deflate = zlib.compressobj(self.level, zlib.DEFLATED, -15)
            compressed = deflate.compress(raw) + deflate.flush(zlib.Z_SYNC_FLUSH)
        self._crc = zlib.crc32(raw, self._crc)
        self._size += raw.size if isinstance(raw, pa.Buffer) else len(raw)
        self._file.write(compressed)

    def close(self) -> None:
        """Finish the deflate stream and write the gzip trailer (CRC-32, length mod 2**32)."""
        self._file.write(zlib.compressobj(self.level, zlib.DEFLATED, -15).flush(zlib.Z_FINISH))
        self._file.write(struct.pack("<II", self._crc, self._size & 0xFFFFFFFF))
        self._file.close()


class WriterPool:
    """Background threads shared by all writers; results are written in submission order."""

    def __init__(self, threads: int = _THREADS) -> None:
        self._executor = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="demo-csv")
        self._pending: deque[tuple[CsvGzWriter, Future[tuple[bytes | pa.Buffer, bytes]]]] = deque()
        self._writers: list[CsvGzWriter] = []

    def open(self, path: Path, columns: tuple[str, ...], level: int) -> CsvGzWriter:
        writer = CsvGzWriter(path, columns, level, self)
        self._writers.append(writer)
        return writer

    def submit(self, writer: CsvGzWriter, table: pa.Table) -> None:
        self._pending.append((writer, self._executor.submit(_encode, table, writer.level)))
        while self._pending and (len(self._pending) > _MAX_PENDING or self._pending[0][1].done()):
            self._write_oldest()

    def _write_oldest(self) -> None:
        writer, future = self._pending.popleft()
        writer.append_piece(*future.result())

    def drain(self) -> None:
        """Wait until every queued piece is written (re-raises a formatting error)."""
        while self._pending:
            self._write_oldest()

    def close(self) -> None:
        try:
            self.drain()
        finally:
            self._executor.shutdown(wait=True)
            for writer in self._writers:
                writer.close()

    def __enter__(self) -> WriterPool:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def write_csv_gz(path: Path, table: pa.Table, level: int) -> None:
    """Write one small table at once (the dictionary tables)."""
    with WriterPool(threads=1) as pool:
        pool.open(path, tuple(table.column_names), level).write(table)
