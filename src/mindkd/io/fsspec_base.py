"""The fsspec + versioning plumbing shared by the project's own datasets.

``FsspecVersionedDataset`` holds what every one of them needs and Kedro does not provide: the protocol
and the fsspec filesystem of ``filepath`` (local folders created on save), Kedro versioning, an
existence check that looks for the file that marks a complete save, and the fsspec cache release.
Subclasses implement ``load`` and ``save`` and, for a dataset saved as a folder, set ``MARKER`` to the
file written last (a folder without it is an interrupted save, not a dataset).
"""

from __future__ import annotations

from copy import deepcopy
from pathlib import PurePosixPath
from typing import Any, ClassVar, TypeVar

import fsspec
from kedro.io.core import (
    AbstractVersionedDataset,
    DatasetError,
    Version,
    get_filepath_str,
    get_protocol_and_path,
)

_DI = TypeVar("_DI")
_DO = TypeVar("_DO")


class FsspecVersionedDataset(AbstractVersionedDataset[_DI, _DO]):
    """A versioned dataset at ``filepath`` on any fsspec filesystem (local, s3://, gcs://, ...)."""

    MARKER: ClassVar[str | None] = None  # folder datasets: the file whose presence means "saved"

    def __init__(
        self,
        *,
        filepath: str,
        version: Version | None = None,
        credentials: dict[str, Any] | None = None,
        fs_args: dict[str, Any] | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> None:
        protocol, path = get_protocol_and_path(filepath, version)
        _fs_args = deepcopy(fs_args) or {}
        if protocol == "file":
            _fs_args.setdefault("auto_mkdir", True)
        self._protocol = protocol
        self._fs = fsspec.filesystem(protocol, **(credentials or {}), **_fs_args)
        self.metadata = metadata
        super().__init__(
            filepath=PurePosixPath(path),
            version=version,
            exists_function=self._fs.exists,
            glob_function=self._fs.glob,
        )

    def _describe(self) -> dict[str, Any]:
        return {"filepath": self._filepath, "protocol": self._protocol, "version": self._version}

    def _load_location(self) -> str:
        """The path to load from (the resolved version), as the filesystem spells it."""
        return get_filepath_str(self._get_load_path(), self._protocol)

    def _save_location(self) -> str:
        """The path to save to (this run's version), as the filesystem spells it."""
        return get_filepath_str(self._get_save_path(), self._protocol)

    def _exists(self) -> bool:
        try:
            location = self._load_location()
        except DatasetError:  # no version saved yet
            return False
        if self.MARKER is not None:
            location = f"{location}/{self.MARKER}"
        return bool(self._fs.exists(location))

    def _release(self) -> None:
        super()._release()
        self._invalidate_cache()

    def _invalidate_cache(self) -> None:
        self._fs.invalidate_cache(get_filepath_str(self._filepath, self._protocol))
