"""Scratch files named after the process that owns them, so the next run can delete a killed one's.

The decoded X-ray pixels (N·S² bytes, about 7.5 GB at real scale) and the hourly EHR tensors are
written into a scratch file in ``scratch_dir`` (default: ``TMPDIR``) before they are saved. A run
deletes its scratch when it is done or fails, but a run killed with SIGKILL cannot, so every scratch
file is named ``<prefix><pid>-<random><suffix>`` (as ``fsspec_base.staging_path`` names staging),
and ``new_scratch_file`` first deletes the files of its prefix whose process is gone. A live run's
scratch is never touched.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from mindkd.io.fsspec_base import pid_alive

logger = logging.getLogger(__name__)


def new_scratch_file(
    prefix: str, suffix: str, scratch_dir: str | os.PathLike[str] | None
) -> tuple[int, str]:
    """Create ``<scratch_dir>/<prefix><pid>-<random><suffix>``: ``(descriptor, path)`` as
    ``tempfile.mkstemp`` returns them, after removing the scratch of dead processes."""
    folder = Path(scratch_dir if scratch_dir is not None else tempfile.gettempdir())
    remove_stale_scratch(folder, prefix, suffix)
    return tempfile.mkstemp(prefix=f"{prefix}{os.getpid()}-", suffix=suffix, dir=folder)


@contextlib.contextmanager
def scratch_folder(prefix: str, scratch_dir: str | os.PathLike[str] | None) -> Iterator[Path]:
    """A new ``<scratch_dir>/<prefix><pid>-<random>`` folder, deleted on exit; the folders of its
    prefix left by dead processes are deleted first."""
    folder = Path(scratch_dir if scratch_dir is not None else tempfile.gettempdir())
    folder.mkdir(parents=True, exist_ok=True)
    remove_stale_scratch(folder, prefix, "")
    path = Path(tempfile.mkdtemp(prefix=f"{prefix}{os.getpid()}-", dir=folder))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def remove_stale_scratch(folder: Path, prefix: str, suffix: str) -> list[Path]:
    """Delete the ``<prefix><pid>-<random><suffix>`` files (or folders) in ``folder`` whose
    process is gone."""
    name = re.compile(rf"{re.escape(prefix)}(\d+)-\w+{re.escape(suffix)}")
    removed: list[Path] = []
    if not folder.is_dir():
        return removed
    for path in folder.iterdir():
        match = name.fullmatch(path.name)
        if match is None or pid_alive(int(match.group(1))):
            continue
        try:
            if path.is_dir():
                size = sum(f.stat().st_size for f in path.rglob("*") if f.is_file())
                shutil.rmtree(path)
            else:
                size = path.stat().st_size
                path.unlink()
        except FileNotFoundError:  # another run removed it first
            continue
        removed.append(path)
        logger.info("Removed %s (%.2f GB), left by an interrupted run", path, size / 1e9)
    return removed
