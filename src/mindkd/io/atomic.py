"""kedro-datasets' file datasets, written atomically and checked on load.

``ParquetDataset``, ``CSVDataset``, ``JSONDataset``, ``TextDataset`` and ``MatplotlibDataset`` are the
kedro-datasets classes of the same names (same arguments, same formats, same versioning, previews
and fsspec protocols) with two additions:

- **Atomic save** on the local filesystem: kedro-datasets writes to ``self._get_save_path()``; while
  one of these saves, that path is a staging sibling from ``mindkd.io.fsspec_base.staged``
  (``.<name>.tmp-<pid>-<random>``), renamed onto the real name only once kedro-datasets' own save
  returned. A run killed while writing leaves no half file under the real name (and no version
  Kedro would take for the latest); the next save of the dataset deletes the leftovers of killed
  runs. Remote protocols are written as kedro-datasets writes them.
- **A damaged file names itself**: a load that finds the file cut short or not valid in its format
  (no Parquet footer, cut-off JSON, a CSV that stops mid-line) raises ``DatasetError`` with the
  file, what is wrong and the catalog's ``rebuild`` hint, instead of a pyarrow or json traceback.

They work where kedro-datasets' classes do: with ``versioned: true``, in dataset factories, and as
the ``dataset:`` of kedro-mlflow's ``MlflowArtifactDataset`` (unversioned there, as kedro-mlflow
requires of any dataset). Catalog entry::

    "{task}.pairs":
      type: mindkd.io.atomic.ParquetDataset
      filepath: ${globals:data_root}/05_model_input/{task}/pairs.parquet
      rebuild: "re-run `kedro run --pipelines pairing`"
"""

from __future__ import annotations

import json
from pathlib import Path, PurePosixPath
from typing import Any, ClassVar

import pandas as pd
from kedro.io.core import get_filepath_str
from kedro_datasets.json import JSONDataset as _JSONDataset
from kedro_datasets.matplotlib import MatplotlibDataset as _MatplotlibDataset
from kedro_datasets.pandas import CSVDataset as _CSVDataset
from kedro_datasets.pandas import ParquetDataset as _ParquetDataset
from kedro_datasets.text import TextDataset as _TextDataset

from mindkd.io.fsspec_base import incomplete, staged

__all__ = ["CSVDataset", "JSONDataset", "MatplotlibDataset", "ParquetDataset", "TextDataset"]

_PARQUET_MAGIC = b"PAR1"


class _AtomicSave:
    """Mixin before a kedro-datasets class: its save writes into a staging path renamed when done.

    Kedro wraps every ``save`` and ``load`` in its version and error bookkeeping; the mixins call
    kedro-datasets' undecorated methods (``__wrapped__``, as kedro-mlflow's artifact wrapper does)
    so that it runs once.
    """

    _protocol: str
    _staging: Path | None = None

    def __init__(self, *, rebuild: str | None = None, **kwargs: Any) -> None:
        self._rebuild = rebuild
        super().__init__(**kwargs)

    @property
    def _init_args(self) -> dict[str, Any]:
        return self._config_args

    @_init_args.setter
    def _init_args(self, args: dict[str, Any]) -> None:
        # Kedro records the arguments of the outermost __init__ (``rebuild`` and ``**kwargs``
        # here) to rebuild the catalog config (``DataCatalog.to_config``): keep them flat.
        named = {key: value for key, value in args.items() if key != "kwargs"}
        self._config_args = {**args.get("kwargs", {}), **named}

    def save(self, data: Any) -> None:
        save = super().save.__wrapped__  # type: ignore[misc]  # kedro-datasets' own save
        if self._protocol != "file":
            save(self, data)
            return
        target = Path(get_filepath_str(self._get_save_path(), self._protocol))
        with staged(target) as staging:
            self._staging = staging
            try:
                save(self, data)
            finally:
                self._staging = None

    def _get_save_path(self) -> PurePosixPath:
        if self._staging is not None:
            return PurePosixPath(self._staging)
        return super()._get_save_path()  # type: ignore[misc]


class _CheckedLoad(_AtomicSave):
    """Adds to ``_AtomicSave`` a load that names a damaged file and the command to rebuild it."""

    # What the reader raises for a file that is not valid in its format (not: missing, unreadable).
    _DAMAGE: ClassVar[tuple[type[Exception], ...]] = (UnicodeDecodeError,)

    def load(self) -> Any:
        load = super().load.__wrapped__  # type: ignore[misc]
        location = get_filepath_str(self._get_load_path(), self._protocol)  # type: ignore[attr-defined]
        self._check_complete(location)
        try:
            return load(self)
        except self._DAMAGE as exc:
            raise incomplete(location, f"it cannot be parsed ({exc})", self._rebuild) from exc

    def _check_complete(self, location: str) -> None:
        """Raise ``incomplete`` for a cut-short file (nothing to check by default)."""


class ParquetDataset(_CheckedLoad, _ParquetDataset):
    """kedro-datasets' ``pandas.ParquetDataset``, saved atomically.

    A Parquet file starts and ends with ``PAR1`` (its footer comes last): a file without both is
    named as incomplete before pyarrow reads it.
    """

    def _check_complete(self, location: str) -> None:
        if self._fs.isdir(location):  # a folder of parts: pyarrow checks each one
            return
        with self._fs.open(location, "rb") as handle:
            head, tail = handle.read(4), b""
            size = handle.seek(0, 2)
            if size >= 12:  # magic, at least the footer length, magic
                handle.seek(size - 4)
                tail = handle.read(4)
        if head != _PARQUET_MAGIC or tail != _PARQUET_MAGIC:
            raise incomplete(location, "it does not end with a Parquet footer", self._rebuild)


class JSONDataset(_CheckedLoad, _JSONDataset):
    """kedro-datasets' ``json.JSONDataset``, saved atomically; a cut-off file names itself."""

    _DAMAGE = (json.JSONDecodeError, UnicodeDecodeError)


class TextDataset(_CheckedLoad, _TextDataset):
    """kedro-datasets' ``text.TextDataset``, saved atomically (text has no end to check)."""


class CSVDataset(_CheckedLoad, _CSVDataset):
    """kedro-datasets' ``pandas.CSVDataset``, saved atomically.

    A truncated CSV may still parse (its last row cut short), so an uncompressed ``.csv`` must end
    with the line break pandas writes after every row, or the load names it as incomplete.
    """

    _DAMAGE = (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError)
    _UNCOMPRESSED: ClassVar[tuple[str, ...]] = (".csv", ".tsv")

    def _check_complete(self, location: str) -> None:
        if not location.endswith(self._UNCOMPRESSED) or self._load_args.get("compression"):
            return
        with self._fs.open(location, "rb") as handle:
            size = handle.seek(0, 2)
            if size:
                handle.seek(size - 1)
            ends_a_line = size > 0 and handle.read(1) in (b"\n", b"\r")
        if not ends_a_line:
            problem = "it is empty" if size == 0 else "it stops in the middle of a line"
            raise incomplete(location, problem, self._rebuild)


class MatplotlibDataset(_AtomicSave, _MatplotlibDataset):
    """kedro-datasets' ``matplotlib.MatplotlibDataset`` (save only), saved atomically.

    A list or dict of figures is staged as a folder that replaces the previous folder as a whole,
    whatever ``overwrite`` says (kedro-datasets would merge into it unless ``overwrite: true``).
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._overwrite = False  # its "delete the old folder first" would target the staging path
