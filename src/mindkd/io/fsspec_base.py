"""The fsspec + versioning plumbing shared by the project's own datasets.

``FsspecVersionedDataset`` holds what every one of them needs and Kedro does not provide: the protocol
and the fsspec filesystem of ``filepath`` (local folders created on save), Kedro versioning, an
existence check that looks for the file that marks a complete save, and the fsspec cache release.
Subclasses implement ``load`` and ``save`` and, for a dataset saved as a folder, set ``MARKER`` to the
file written last (a folder without it is an interrupted save, not a dataset).

Writes are atomic on the local filesystem: ``staged(target)`` gives a hidden sibling
(``.<name>.tmp-<pid>-<random>``) to write into and renames it onto ``target`` only when the write
finished, so a killed run never leaves a half-written dataset under its real name (nor a version
folder that Kedro would take for the latest). ``remove_stale_staging`` deletes the staging left by
killed processes (their pid no longer runs); a live run's staging is never touched. A load that
finds a dataset incomplete raises ``incomplete(...)``: the folder, what is wrong and how to rebuild
it (the dataset's ``rebuild`` argument, e.g. ``kedro run --pipelines teachers``).
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import shutil
import uuid
from collections.abc import Iterator
from copy import deepcopy
from pathlib import Path, PurePosixPath
from typing import Any, ClassVar, TypeVar

import fsspec
from kedro.io.core import (
    AbstractVersionedDataset,
    DatasetError,
    Version,
    get_filepath_str,
    get_protocol_and_path,
)

logger = logging.getLogger(__name__)

_DI = TypeVar("_DI")
_DO = TypeVar("_DO")
_STAGING = re.compile(r"^\..+\.tmp-(\d+)(-[0-9a-f]+)?$")
#: A Kedro version folder (``2026-12-07T11.27.03.910Z``).
_VERSION = re.compile(r"^\d{4}-\d\d-\d\dT\d\d\.\d\d\.\d\d\.\d{3}Z$")
DEFAULT_REBUILD = "delete it and re-run the pipeline that writes it (`kedro run --pipelines ...`)"


def incomplete(location: str, problem: str, rebuild: str | None) -> DatasetError:
    """The error of a load that finds ``location`` incomplete or inconsistent."""
    return DatasetError(
        f"{location} is not a complete dataset: {problem}. It was probably written by an "
        f"interrupted run or modified since; {rebuild or DEFAULT_REBUILD}."
    )


def pid_alive(pid: int) -> bool:
    """Whether process ``pid`` still runs (or is a zombie not yet reaped)."""
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's live process
        return True
    return True


def remove_stale_staging(parent: Path) -> list[Path]:
    """Delete the staging folders and files in ``parent`` whose writing process is gone."""
    removed: list[Path] = []
    if not parent.is_dir():
        return removed
    for path in parent.iterdir():
        match = _STAGING.match(path.name)
        if match is None or pid_alive(int(match.group(1))):
            continue
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
        removed.append(path)
        logger.info("Removed %s, left by an interrupted run", path)
    return removed


def staging_path(target: Path) -> Path:
    """A hidden sibling of ``target`` owned by this process (``.<name>.tmp-<pid>-<random>``)."""
    return target.parent / f".{target.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}"


def _remove_stale_versions(target: Path) -> None:
    """In a versioned dataset's folder, the staging of killed runs in every version folder, and
    the version folders they leave empty (never this run's)."""
    root = target.parent.parent
    for version in root.iterdir():
        if version == target.parent or not _VERSION.match(version.name) or not version.is_dir():
            continue
        if remove_stale_staging(version) and not any(version.iterdir()):
            version.rmdir()


@contextlib.contextmanager
def staged(target: Path) -> Iterator[Path]:
    """Yield a staging path to write ``target`` into (a folder or a file); on success move it onto
    ``target`` (replacing an older one), on any error or interruption delete it. The staging of
    killed runs next to it (and, for a versioned dataset, in its other versions) is removed."""
    target.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_staging(target.parent)
    if _VERSION.match(target.parent.name):
        _remove_stale_versions(target)
    staging = staging_path(target)
    try:
        yield staging
        if target.is_dir() and staging.is_dir():
            shutil.rmtree(target)
        os.replace(staging, target)
    finally:
        if staging.is_dir():
            shutil.rmtree(staging, ignore_errors=True)
        elif staging.exists():
            staging.unlink(missing_ok=True)


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
        rebuild: str | None = None,
    ) -> None:
        self._rebuild = rebuild
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
