"""Advisory file locks that keep two ``kedro run`` processes out of each other's way.

- **One run per data root.** A run writes unversioned intermediates (samples, cohorts, stores) that
  a second run on the same data root would overwrite or read half-made, and each would record
  its own settings while training on the other's data. ``hold_data_root`` takes an exclusive lock
  on ``<data_root>/.mindkd-run.lock`` for the run; a second run is refused at once with who holds
  it and what to do.
- **One creator of a new MLflow store at a time.** Two first runs on a fresh sqlite store both
  create its tables (``table experiments already exists``); ``store_lock`` serialises that.

The locks are ``fcntl.flock`` locks: the kernel releases them when the holding process dies, even
by ``kill -9``, so a crashed run never leaves a stale lock. The lock file keeps the holder's pid,
host, start time and command for the refusal message (informative only: the lock itself decides).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import socket
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

RUN_LOCK = ".mindkd-run.lock"


class RunLockError(RuntimeError):
    """Another run holds the lock: the message says who and what to do."""


@dataclass
class HeldLock:
    """An acquired lock; ``release`` (or the end of the process) frees it."""

    path: Path
    handle: IO[str] | None

    def release(self) -> None:
        if self.handle is not None:
            fcntl.flock(self.handle, fcntl.LOCK_UN)
            self.handle.close()
            self.handle = None


def _holder(handle: IO[str]) -> dict[str, Any]:
    handle.seek(0)
    try:
        return dict(json.loads(handle.read() or "{}"))
    except ValueError:
        return {}


def hold_data_root(data_root: Path, command: str = "") -> HeldLock:
    """Lock ``data_root`` for this process's run, or raise ``RunLockError`` naming the holder."""
    data_root.mkdir(parents=True, exist_ok=True)
    path = data_root / RUN_LOCK
    handle = path.open("a+")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError as exc:
        holder = _holder(handle)
        handle.close()
        since = time.strftime("%H:%M:%S", time.localtime(holder.get("started", 0)))
        raise RunLockError(
            f"another kedro run is using the data root {data_root} (pid {holder.get('pid', '?')} "
            f"on {holder.get('host', '?')}, started {since}: {holder.get('command', '?')}). Two "
            "runs on one data root would overwrite each other's intermediates and train on each "
            "other's data. Wait for it to finish, or give this run its own data root "
            "(`data_root` in the globals of another config environment: `kedro run --env ...`)."
        ) from exc
    handle.seek(0)
    handle.truncate()
    record = {
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "started": time.time(),
        "command": command or " ".join(sys.argv),
    }
    handle.write(json.dumps(record))
    handle.flush()
    return HeldLock(path, handle)


@contextlib.contextmanager
def store_lock(tracking_uri: str) -> Iterator[None]:
    """Serialise the creation of a local sqlite MLflow store (``sqlite:///<file>``); else no-op."""
    prefix = "sqlite:///"
    if not tracking_uri.startswith(prefix):
        yield
        return
    database = Path(tracking_uri[len(prefix) :])
    database.parent.mkdir(parents=True, exist_ok=True)
    with (database.parent / f".{database.name}.lock").open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
