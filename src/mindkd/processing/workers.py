"""Worker processes that die with the run that started them.

A ``kill -9`` of ``kedro run`` gives its process pool no chance to stop the workers, and a
``ProcessPoolExecutor`` worker does not notice on its own: it finishes its chunk, then waits on its
task queue forever. Nor can it watch its parent: under the ``forkserver`` start method the parent is
the fork server, which stays alive as long as any of its children does (each holds the server's
"alive" pipe), so ``prctl(PR_SET_PDEATHSIG)`` never fires and ``os.getppid()`` never changes.

What the kernel does guarantee is that a dead process's file descriptors are closed, however it
died. So the run keeps the only write end of a pipe (``lifeline``) and each worker, in the pool's
``initializer`` (``die_with_run``), watches the read end from a daemon thread: end of file means
the run is gone, and the worker exits at once (it holds nothing that needs cleaning up). This works
with every start method and platform that multiprocessing supports.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import threading
from collections.abc import Iterator
from multiprocessing.connection import Connection


@contextlib.contextmanager
def lifeline() -> Iterator[Connection]:
    """The read end of a pipe whose write end only this process holds, until the block ends.

    Pass it to the workers as ``initializer=die_with_run, initargs=(line,)``.
    """
    reader, writer = multiprocessing.Pipe(duplex=False)
    try:
        yield reader
    finally:
        writer.close()
        reader.close()


def die_with_run(line: Connection) -> None:
    """Pool initializer: exit this worker as soon as the run holding ``line``'s write end is gone."""
    threading.Thread(target=_exit_at_eof, args=(line,), name="die-with-run", daemon=True).start()


def _exit_at_eof(line: Connection) -> None:
    try:
        while True:
            line.recv_bytes()  # nothing is ever sent: this returns only at end of file
    except (EOFError, OSError):
        os._exit(1)
