"""A keyed store of large arrays, persisted as a folder of ``.npy`` files and read by memory map.

``ArrayStore`` holds named arrays that share their first axis (one row per sample) and an index
table that maps a stable key (``dicom_id``, ``stay_id``) to the ``row`` of that sample in every
array. Code asks for samples by key (``store.rows(keys)``), never by position, so a store stays
valid whatever order filtering or pairing leaves a table in.

``ArrayStoreDataset`` persists one as a folder::

    <filepath>/                      (or <filepath>/<version>/<name>/ with ``versioned: true``)
        <array name>.npy     one per array, standard NumPy format
        index.parquet        the key column, ``row`` and any other per-row columns
        meta.json            key column, shapes, dtypes, the store's metadata (e.g. image size)

and loads the arrays with ``np.load(mmap_mode="r")``: training reads pages on demand, nothing is
copied into memory. Saving streams each array file-wise: an array that is already an ``np.memmap``
(for example the temporary file the image decoder writes into) is copied byte range to byte range by
the kernel, any other array in bounded chunks, so saving never holds a second full copy in memory.

Catalog entry::

    cxr_images:
      type: mindkd.io.array_store.ArrayStoreDataset
      filepath: ${globals:data_root}/05_model_input/cxr_images
      versioned: true
"""

from __future__ import annotations

import errno
import json
import logging
import os
import re
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pandas as pd
from kedro.io.core import DatasetError, Version

from mindkd.io.fsspec_base import FsspecVersionedDataset, incomplete, staged

logger = logging.getLogger(__name__)

ROW_COLUMN = "row"
INDEX_FILE = "index.parquet"
META_FILE = "meta.json"
FORMAT_NAME = "mindkd.array_store"
FORMAT_VERSION = 1
_ARRAY_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*")
_RESERVED_NAMES = frozenset({"index", "meta"})
_CHUNK_BYTES = 64 * 1024 * 1024
_NO_COPY_FILE_RANGE = frozenset(
    {errno.EXDEV, errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP, errno.EBADF, errno.EPERM}
)


@dataclass
class ArrayStore:
    """Named arrays sharing their first axis, plus an index from a stable key to each sample's row.

    Attributes:
        arrays: name -> array of shape ``(N, ...)``; every array has the same ``N``.
        index: one row per stored sample: the ``key`` column (unique), ``row`` (the position of that
            sample in every array, ``0 <= row < N``) and any other per-sample columns.
        key: the name of the key column; defaults to the first column of ``index`` that is not
            ``row``.
        metadata: JSON-serialisable facts about the store (image size, source, ...), saved in
            meta.json.
    """

    arrays: dict[str, np.ndarray]
    index: pd.DataFrame
    key: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    _lookup: pd.Index | None = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.key is None:
            candidates = [c for c in self.index.columns if c != ROW_COLUMN]
            if not candidates:
                raise ValueError("ArrayStore index needs a key column besides 'row'")
            self.key = str(candidates[0])
        problems = _validate(self.arrays, self.index, self.key)
        if problems:
            raise ValueError("invalid ArrayStore:\n  - " + "\n  - ".join(problems))

    def __len__(self) -> int:
        return len(self.index)

    @property
    def keys(self) -> pd.Series:
        """The stored keys, in index order."""
        assert self.key is not None
        return self.index[self.key]

    def rows(self, keys: Iterable[Any] | pd.Series | np.ndarray) -> np.ndarray:
        """Row positions (int64) of ``keys`` in the arrays, in the order given.

        Raises ``KeyError`` naming the key column, how many keys are missing and a few of them.
        """
        if self._lookup is None:
            self._lookup = pd.Index(self.keys.to_numpy())
        wanted = pd.Index(keys if not np.isscalar(keys) else [keys])
        positions = self._lookup.get_indexer(wanted)
        missing = positions < 0
        if missing.any():
            examples = wanted[missing][:10].tolist()
            raise KeyError(
                f"{int(missing.sum())} of {len(wanted)} {self.key} value(s) are not in the store "
                f"(it holds {len(self)}), e.g. {examples}"
            )
        return self.index[ROW_COLUMN].to_numpy(dtype=np.int64)[positions]

    def take(self, name: str, keys: Iterable[Any] | pd.Series | np.ndarray) -> np.ndarray:
        """The rows of array ``name`` for ``keys`` (a copy, in the order of ``keys``)."""
        if name not in self.arrays:
            raise KeyError(f"no array {name!r} in the store; it has {sorted(self.arrays)}")
        return np.asarray(self.arrays[name][self.rows(keys)])


def _validate(arrays: Mapping[str, np.ndarray], index: pd.DataFrame, key: str) -> list[str]:
    problems: list[str] = []
    if not arrays:
        problems.append("no arrays")
    for name, array in arrays.items():
        if not isinstance(name, str) or not _ARRAY_NAME.fullmatch(name) or name in _RESERVED_NAMES:
            problems.append(
                f"array name {name!r} is not a plain file name (letters, digits, _ . -)"
            )
        if not isinstance(array, np.ndarray) or array.ndim == 0:
            problems.append(f"array {name!r} must be a numpy array with a first (sample) axis")
        elif array.dtype.hasobject:
            problems.append(f"array {name!r} has dtype object; only numeric dtypes can be stored")
    lengths = {n: a.shape[0] for n, a in arrays.items() if isinstance(a, np.ndarray) and a.ndim}
    if len(set(lengths.values())) > 1:
        problems.append(f"arrays differ in their first axis: {lengths}")
    for column in (key, ROW_COLUMN):
        if column not in index.columns:
            problems.append(f"index lacks column {column!r} (has {list(index.columns)})")
    if problems:
        return problems
    n_rows = next(iter(lengths.values()))
    if index[key].isna().any():
        problems.append(f"index column {key!r} has missing values")
    duplicated = index[key][index[key].duplicated()]
    if len(duplicated):
        problems.append(f"index column {key!r} has duplicates, e.g. {duplicated.head(5).tolist()}")
    row = index[ROW_COLUMN]
    if not pd.api.types.is_integer_dtype(row):
        problems.append(f"index column 'row' must be integer, got {row.dtype}")
    elif len(row) and (row.min() < 0 or row.max() >= n_rows):
        problems.append(
            f"index column 'row' must lie in [0, {n_rows}), got [{row.min()}, {row.max()}]"
        )
    return problems


class ArrayStoreDataset(FsspecVersionedDataset[ArrayStore, ArrayStore]):
    """Kedro dataset for an ``ArrayStore``: ``.npy`` files, ``index.parquet`` and ``meta.json``.

    Loads memory-mapped (``load_args: {mmap_mode: r}`` by default; ``mmap_mode: null`` reads into
    memory). Supports ``versioned: true``, fsspec protocols (remote folders are staged locally on
    save and read into memory on load, since a remote file cannot be memory-mapped),
    ``credentials``, ``fs_args`` and Kedro's ``metadata``.
    """

    DEFAULT_LOAD_ARGS: ClassVar[dict[str, Any]] = {"mmap_mode": "r"}
    MARKER = META_FILE  # written last: a folder without it is an interrupted save

    def __init__(
        self,
        *,
        filepath: str,
        load_args: dict[str, Any] | None = None,
        version: Version | None = None,
        credentials: dict[str, Any] | None = None,
        fs_args: dict[str, Any] | None = None,
        metadata: dict[str, Any] | None = None,
        optional: bool = False,
        rebuild: str | None = None,
    ) -> None:
        super().__init__(
            filepath=filepath,
            version=version,
            credentials=credentials,
            fs_args=fs_args,
            metadata=metadata,
            rebuild=rebuild,
        )
        self._optional = optional
        self._load_args = {**self.DEFAULT_LOAD_ARGS, **(load_args or {})}

    def _describe(self) -> dict[str, Any]:
        return {**super()._describe(), "load_args": self._load_args}

    def load(self) -> ArrayStore | None:
        """The store; with ``optional: true``, ``None`` when none was saved yet (a cache's first run)."""
        if self._optional and not self._exists():
            return None
        folder = self._load_location()
        meta_path = f"{folder}/{META_FILE}"
        if not self._fs.exists(meta_path):
            raise incomplete(folder, f"{META_FILE} (written last) is missing", self._rebuild)
        with self._fs.open(meta_path, "r") as handle:
            meta = json.load(handle)
        if meta.get("format") != FORMAT_NAME:
            raise DatasetError(
                f"{meta_path}: format {meta.get('format')!r}, expected {FORMAT_NAME!r}"
            )
        with self._fs.open(f"{folder}/{INDEX_FILE}", "rb") as handle:
            index = pd.read_parquet(handle)
        arrays = {
            name: self._load_array(folder, name, spec) for name, spec in meta["arrays"].items()
        }
        return ArrayStore(arrays=arrays, index=index, key=meta["key"], metadata=meta["metadata"])

    def _load_array(self, folder: str, name: str, spec: Mapping[str, Any]) -> np.ndarray:
        path = f"{folder}/{spec['file']}"
        try:
            if self._protocol == "file":
                mode = self._load_args.get("mmap_mode")
                array = np.load(path, mmap_mode=mode, allow_pickle=False)
            else:
                with self._fs.open(path, "rb") as handle:
                    array = np.load(handle, allow_pickle=False)
        except (OSError, ValueError, EOFError) as exc:
            raise incomplete(
                folder, f"{spec['file']} cannot be read ({exc})", self._rebuild
            ) from exc
        if list(array.shape) != list(spec["shape"]) or str(array.dtype) != spec["dtype"]:
            raise incomplete(
                folder,
                f"{spec['file']} has shape {array.shape} / dtype {array.dtype}, {META_FILE} says "
                f"{tuple(spec['shape'])} / {spec['dtype']}",
                self._rebuild,
            )
        return array

    def save(self, data: ArrayStore) -> None:
        if not isinstance(data, ArrayStore):
            raise DatasetError(f"ArrayStoreDataset saves an ArrayStore, got {type(data).__name__}")
        target = self._save_location()
        if self._protocol == "file" and _is_stored_at(data, Path(target)):
            logger.info("%s already holds this store (a cache hit): nothing to write", target)
        elif self._protocol == "file":
            _write_local_atomic(data, Path(target))
        else:
            with tempfile.TemporaryDirectory(prefix="array_store_") as staging:
                files = _write_folder(data, Path(staging))
                self._fs.makedirs(target, exist_ok=True)
                for file in files:
                    self._fs.put_file(str(file), f"{target}/{file.name}")
        self._invalidate_cache()


def _is_stored_at(store: ArrayStore, folder: Path) -> bool:
    """True when every array of ``store`` is a memory map of a file inside ``folder``."""
    if not (folder / META_FILE).is_file():
        return False
    folder = folder.resolve()
    for array in store.arrays.values():
        byte_range = _memmap_byte_range(array)
        if byte_range is None or Path(byte_range[0]).resolve().parent != folder:
            return False
    return True


def _write_local_atomic(store: ArrayStore, target: Path) -> None:
    """Write into a hidden sibling folder, then swap it in, so a crash never leaves half a store."""
    with staged(target) as staging:
        _write_folder(store, staging)


def _write_folder(store: ArrayStore, folder: Path) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=False)
    files: list[Path] = []
    specs: dict[str, dict[str, Any]] = {}
    for name, array in store.arrays.items():
        path = folder / f"{name}.npy"
        write_npy(array, path)
        files.append(path)
        specs[name] = {"file": path.name, "shape": list(array.shape), "dtype": str(array.dtype)}
    index = store.index.reset_index(drop=True)
    index.to_parquet(folder / INDEX_FILE, index=False)
    files.append(folder / INDEX_FILE)
    meta = {
        "format": FORMAT_NAME,
        "format_version": FORMAT_VERSION,
        "key": store.key,
        "n_rows": len(index),
        "arrays": specs,
        "metadata": store.metadata,
    }
    (folder / META_FILE).write_text(json.dumps(meta, indent=2, default=_json_default) + "\n")
    files.append(folder / META_FILE)
    logger.debug("Wrote array store %s (%d rows, arrays %s)", folder, len(index), list(specs))
    return files


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"ArrayStore metadata value {value!r} is not JSON-serialisable")


def write_npy(array: np.ndarray, path: Path) -> None:
    """Write ``array`` as a C-order ``.npy`` file without materialising a second copy in memory.

    A C-contiguous ``np.memmap`` is copied from its backing file by the kernel
    (``copy_file_range``); any other array is written in chunks of about 64 MB.
    """
    header = {
        "descr": np.lib.format.dtype_to_descr(array.dtype),
        "fortran_order": False,
        "shape": tuple(array.shape),
    }
    source = _memmap_byte_range(array)
    with open(path, "wb") as out:
        np.lib.format.write_array_header_2_0(out, header)
        if source is not None:
            out.flush()
            _copy_byte_range(source[0], source[1], array.nbytes, out)
            return
        rows_per_chunk = max(1, _CHUNK_BYTES // max(1, array[:1].nbytes))
        for start in range(0, array.shape[0], rows_per_chunk):
            chunk = np.ascontiguousarray(array[start : start + rows_per_chunk])
            out.write(memoryview(chunk).cast("B"))


def _memmap_byte_range(array: np.ndarray) -> tuple[str, int] | None:
    """(file, byte offset) of a C-contiguous memmap's data in its backing file, else None."""
    if not isinstance(array, np.memmap) or not array.flags.c_contiguous or array.size == 0:
        return None
    root: np.ndarray = array
    while isinstance(root.base, np.memmap):
        root = root.base
    filename = getattr(root, "filename", None)
    if filename is None or not isinstance(root, np.memmap) or not os.path.exists(filename):
        return None
    if array.flags.writeable:
        array.flush()
    # The root memmap starts at byte `offset` of the file; views lie inside it.
    return filename, int(root.offset) + (array.ctypes.data - root.ctypes.data)


def _copy_byte_range(source: str, offset: int, nbytes: int, out: Any) -> None:
    """Append bytes [offset, offset + nbytes) of ``source`` to the open file ``out``.

    Uses ``os.copy_file_range`` (in-kernel, no user-space buffer); falls back to 64 MB reads where
    the filesystems do not support it.
    """
    remaining, position = nbytes, offset
    with open(source, "rb") as src:
        while remaining:
            try:
                copied = os.copy_file_range(src.fileno(), out.fileno(), remaining, position)
            except OSError as exc:
                if exc.errno not in _NO_COPY_FILE_RANGE:
                    raise
                logger.debug("copy_file_range unsupported (%s); copying %s by blocks", exc, source)
                break
            if copied == 0:
                raise OSError(f"{source}: file ends before byte {position + remaining}")
            remaining -= copied
            position += copied
        src.seek(position)
        while remaining:
            block = src.read(min(remaining, _CHUNK_BYTES))
            if not block:
                raise OSError(f"{source}: file ends before byte {position + remaining}")
            out.write(block)
            remaining -= len(block)
            position += len(block)
