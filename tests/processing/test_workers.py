"""Decode workers die with the run that started them, and the run's pixel scratch is removed by the
next decode: a real process tree, its parent killed with SIGKILL."""

from __future__ import annotations

import contextlib
import errno
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import psutil
from PIL import Image

from mindkd.processing.images import build_image_store

DECODE = """
import pandas as pd
from mindkd.processing.images import build_image_store

table = pd.DataFrame({{"dicom_id": ["a", "b"], "path": ["files/a.jpg", "files/b.jpg"]}})
build_image_store(table, {root!r}, size=8, workers=2, chunk_size=1, scratch_dir={scratch!r},
                  progress=False)
"""


def _until(condition: Callable[[], bool], seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def _gone(process: psutil.Process) -> bool:
    try:
        return process.status() == psutil.STATUS_ZOMBIE  # dead, waiting for init to reap it
    except psutil.NoSuchProcess:
        return True


@contextlib.contextmanager
def _hold_fifos(fifos: list[Path], seconds: float) -> Iterator[None]:
    """Wait until a decoder has opened each FIFO, then keep it blocked reading (no data, no EOF)."""
    held: list[int] = []

    def opened(fifo: Path) -> bool:
        try:
            held.append(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
        except OSError as exc:
            assert exc.errno == errno.ENXIO  # no reader yet
            return False
        return True

    try:
        for fifo in fifos:
            _until(lambda fifo=fifo: opened(fifo), seconds, f"a worker to open {fifo.name}")
        yield
    finally:
        for descriptor in held:
            os.close(descriptor)


def test_a_killed_decode_takes_its_workers_and_the_next_removes_its_scratch(
    tmp_path: Path,
) -> None:
    root, scratch = tmp_path / "cxr", tmp_path / "scratch"
    (root / "files").mkdir(parents=True)
    scratch.mkdir()
    fifos = [root / "files" / "a.jpg", root / "files" / "b.jpg"]
    for fifo in fifos:
        os.mkfifo(fifo)  # a worker that opens it blocks: a decode that never ends by itself
    run = subprocess.Popen(
        [sys.executable, "-c", DECODE.format(root=str(root), scratch=str(scratch))]
    )
    tree: list[psutil.Process] = []
    try:
        with _hold_fifos(fifos, seconds=120):
            tree = psutil.Process(run.pid).children(recursive=True)
            assert len(tree) >= 3  # the fork server and two workers (and the resource tracker)
            left = list(scratch.glob(f"cxr_images_{run.pid}-*.u8"))
            assert len(left) == 1 and left[0].stat().st_size == 2 * 8 * 8
            run.send_signal(signal.SIGKILL)
            run.wait(timeout=60)
            _until(lambda: all(_gone(p) for p in tree), 10, "the workers to die with the run")
    finally:
        run.kill()
        run.wait(timeout=60)
        for survivor in tree:  # do not leak them when the test fails
            with contextlib.suppress(psutil.NoSuchProcess):
                survivor.kill()
    assert left[0].exists()  # a SIGKILL leaves the scratch; the next decode removes it

    Image.fromarray(np.full((16, 16), 7, dtype=np.uint8)).save(root / "files" / "c.jpg")
    table = pd.DataFrame({"dicom_id": ["c"], "path": ["files/c.jpg"]})
    store, _ = build_image_store(table, root, size=8, workers=1, scratch_dir=scratch)
    assert not left[0].exists()
    assert [p.name.split("-")[0] for p in scratch.iterdir()] == [f"cxr_images_{os.getpid()}"]
    assert int(store.arrays["images"][0, 4, 4]) == 7
